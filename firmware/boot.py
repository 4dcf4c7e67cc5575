# Boot counter and safe-mode decision. Kept tiny and crash-proof: anything that goes wrong here must
# still leave a REPL. On the ESP32 MicroPython runs this file before main.py; on the unix port
# firmware/main.py calls run() itself (nothing runs boot.py there).
import json

MAX_FAILED = 3  # consecutive boots that never became healthy -> safe mode
STATE = "bootstate.json"


def _path(root):
    return (root.rstrip("/") + "/" if root else "") + STATE


def read(root=""):
    try:
        with open(_path(root)) as f:
            st = json.load(f)
        if isinstance(st, dict):
            return st
    except Exception:
        pass
    return {"boots": 0, "failed": 0, "safe": None}


def write(root, st):
    path = _path(root)
    try:
        with open(path + ".tmp", "w") as f:
            json.dump(st, f)
        import os

        os.rename(path + ".tmp", path)  # a power cut leaves the old or the new file, never half of one
    except Exception as exc:
        print("ERROR boot: cannot write %s: %s" % (path, exc))


def run(root=""):
    """Counts this boot; returns the state. `failed` counts boots not yet marked good (this one included)."""
    st = read(root)
    st["boots"] = st.get("boots", 0) + 1
    prev = st.get("failed", 0)
    st["failed"] = prev + 1
    if prev >= MAX_FAILED and not st.get("safe"):
        st["safe"] = "%d consecutive boots never became healthy" % prev
    write(root, st)
    return st


def mark_good(root=""):
    st = read(root)
    st["failed"] = 0
    write(root, st)
    return st


def clear(root=""):
    """Leave safe mode at the next boot (console command `clear`)."""
    st = read(root)
    st["failed"] = 0
    st["safe"] = None
    write(root, st)
    return st


if __name__ == "__main__":
    try:
        import sys

        if sys.platform == "esp32":
            run("")
    except Exception as exc:  # never let the boot counter stop the REPL
        print("ERROR boot: %s" % exc)
