"""Runs test modules under the MicroPython unix port as well as CPython.

A test module opts in with a top-level constant:

    INTERPRETERS = ("cpython", "micropython")   # shared code: both
    INTERPRETERS = ("micropython",)             # device-only code

Modules without it run on CPython only. Each MicroPython test is its own pytest item,
`test_x[micropython]`; the module runs once per session in one `micropython` process (see
tests/mpy_harness.py) and the items report its per-test results. A crash, a missing result line or a
non-zero exit fails the items, so a failure can never be reported as a pass.
An optional `MICROPYTHON_HEAP = "64k"` sets the emulated heap (default 256k).
"""

import ast
import json
import subprocess
from pathlib import Path

import pytest

from host_tools.micropython import micropython_executable

ROOT = Path(__file__).resolve().parent
HARNESS = ROOT / "tests" / "mpy_harness.py"
MARK = "@@EMLOG-RESULT "



def _module_settings(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    settings = {"INTERPRETERS": ("cpython",), "MICROPYTHON_HEAP": "256k"}
    tests = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in settings:
                settings[node.targets[0].id] = ast.literal_eval(node.value)
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            tests.append((node.name, node.lineno))
    return settings, tests


def pytest_pycollect_makemodule(module_path, parent):
    settings, _ = _module_settings(module_path)
    if "cpython" not in settings["INTERPRETERS"]:
        return MicroPythonOnly.from_parent(parent, path=module_path)
    return None


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("test_"):
        settings, _ = _module_settings(file_path)
        if "micropython" in settings["INTERPRETERS"]:
            return MicroPythonFile.from_parent(parent, path=file_path)
    return None


class MicroPythonOnly(pytest.File):
    """Placeholder so CPython does not import a device-only module."""

    def collect(self):
        return []


class MicroPythonFile(pytest.File):
    def collect(self):
        settings, tests = _module_settings(self.path)
        self.heap = settings["MICROPYTHON_HEAP"]
        self._results = None
        for name, lineno in tests:
            yield MicroPythonItem.from_parent(self, name=name + "[micropython]", test_name=name, lineno=lineno)

    def results(self):
        if self._results is None:
            rel = self.path.relative_to(ROOT).as_posix()
            proc = subprocess.run(
                [micropython_executable(), "-X", "heapsize=" + self.heap, str(HARNESS), str(ROOT), rel],
                cwd=str(ROOT), capture_output=True, text=True, timeout=600,
            )
            parsed = {}
            other = []
            for line in proc.stdout.splitlines():
                if line.startswith(MARK):
                    rec = json.loads(line[len(MARK):])
                    parsed[rec["name"]] = rec
                else:
                    other.append(line)
            self._results = (proc.returncode, parsed, "\n".join(other), proc.stderr)
        return self._results


class MicroPythonTestFailure(Exception):
    pass


class MicroPythonItem(pytest.Item):
    def __init__(self, *, test_name, lineno, **kwargs):
        super().__init__(**kwargs)
        self.test_name = test_name
        self.lineno = lineno

    def runtest(self):
        returncode, parsed, stdout, stderr = self.parent.results()
        rec = parsed.get(self.test_name)
        if rec is None:
            raise MicroPythonTestFailure(
                "no result from MicroPython (exit %d)\n--- stdout\n%s\n--- stderr\n%s" % (returncode, stdout, stderr)
            )
        if not rec["ok"]:
            raise MicroPythonTestFailure(rec["error"] + ("\n--- output\n" + stdout if stdout else ""))
        if returncode not in (0, 1):  # 1 = some other test failed; anything else is a crash
            raise MicroPythonTestFailure("micropython exited %d\n%s" % (returncode, stderr))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonTestFailure):
            return "MicroPython: " + str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, self.lineno - 1, self.name
