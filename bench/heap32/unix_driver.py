"""Drives bench/heap32/harness.py on the MicroPython unix port (64-bit): the same call sequence as
bench/heap32/run.mjs on the webassembly port.

    micropython -X heapsize=2M unix_driver.py OPTS_FILE     # OPTS_FILE: the JSON harness.setup() takes
"""

import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
import harness

with open(sys.argv[1]) as f:
    opts = f.read()
harness.setup(opts)
opts = None
while True:
    state = harness.step()
    harness.sample()
    if state == "done":
        break
print("RESULT " + harness.result())
