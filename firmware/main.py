# Entry point. ESP32: runs after boot.py from the filesystem root (app/, hal/, protocols/ at the root).
# Unix/HIL: `micropython -X heapsize=64k firmware/main.py` from the repo root; boot.py is not run by the
# port there, so the boot counter is counted here.
import sys

if sys.platform != "esp32":
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    for _p in (_here, _here + "/.."):  # firmware/ (app, hal, boot) and the repo root (protocols)
        if _p not in sys.path:
            sys.path.insert(0, _p)

import boot
import hal

if sys.platform == "esp32":
    _state = boot.read("")  # boot.py has counted this boot already
else:
    _root = getattr(hal, "fs_root", "")
    _state = boot.run(_root() if callable(_root) else _root)

from app import main as _main

_main.main(_state)
