"""Running `emlog` as a technician does (a separate process) and editing the site files it writes; shared
by the CLI tests in tests/ and hil_tests/."""

import os
import subprocess
import sys

from host_tools import REPO_ROOT

MN = "31000000A1B2C3D4E5F60708"


def emlog(*args, cwd):
    """Runs `python -m host_tools.cli ARGS` in `cwd`; a traceback on either stream fails the test."""
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli", *[str(a) for a in args]], cwd=cwd,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def fill(text, mn=MN, host="10.1.2.3", pw="pw-2024"):
    """What the technician types over a template's CHANGE-ME placeholders."""
    text = text.replace('"CHANGE-ME-24-HEX-DIGITS0"', '"%s"' % mn)
    text = text.replace('"CHANGE-ME.example"', '"%s"' % host)
    return text.replace('pw = "CHANGE"', 'pw = "%s"' % pw)


def edit(path, old, new):
    """Replaces the first `old` (the start of a line's content) and returns that line's 1-based number."""
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        if line.strip().startswith(old):
            lines[i] = line.replace(old, new, 1)
            path.write_text("\n".join(lines), encoding="utf-8")
            return i + 1
    raise AssertionError("%r not in %s" % (old, path))
