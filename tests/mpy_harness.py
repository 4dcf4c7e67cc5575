"""Runs one test module under the MicroPython unix port and prints one result line per test.

Invoked by conftest.py as:  micropython -X heapsize=H tests/mpy_harness.py REPO_ROOT MODULE [TEST ...]
Each result is a line "@@EMLOG-RESULT <json>" so pytest can report every test on its own; the
process exits non-zero if any test failed, so a lost result line can never look like a pass.
"""

import io
import json
import sys

MARK = "@@EMLOG-RESULT "


def _run(fn):
    try:
        fn()
        return None
    except Exception as exc:  # report everything, keep going with the next test
        buf = io.StringIO()
        sys.print_exception(exc, buf)
        return buf.getvalue()


def main():
    root, module_path = sys.argv[1], sys.argv[2]
    wanted = sys.argv[3:]
    tests_dir = root + "/tests"
    for p in (root, tests_dir):
        if p not in sys.path:
            sys.path.insert(0, p)
    name = module_path.replace("/", ".")
    if name.endswith(".py"):
        name = name[:-3]
    module = __import__(name)
    for part in name.split(".")[1:]:
        module = getattr(module, part)
    names = wanted or sorted(n for n in dir(module) if n.startswith("test_"))
    failed = 0
    for test_name in names:
        fn = getattr(module, test_name, None)
        error = "no such test in module" if fn is None else _run(fn)
        failed += error is not None
        print(MARK + json.dumps({"name": test_name, "ok": error is None, "error": error}))
    sys.exit(1 if failed else 0)


main()
