"""The MicroPython test mechanism itself: a failing MicroPython test must fail pytest, per test."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = '''
INTERPRETERS = ("cpython", "micropython")
import sys

def test_passes():
    assert 1 + 1 == 2

def test_fails_only_on_micropython():
    assert sys.implementation.name != "micropython", "ran on " + sys.implementation.name

def test_raises_error():
    raise ValueError("boom")
'''


def _run_sample(tmp_path, text):
    project = tmp_path / "proj"
    (project / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "conftest.py", project / "conftest.py")
    shutil.copy(ROOT / "tests" / "mpy_harness.py", project / "tests" / "mpy_harness.py")
    (project / "tests" / "test_sample.py").write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "-o", "addopts=",
         "-p", "no:xdist", "tests"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    return proc


def test_each_micropython_test_is_reported_and_failures_fail(tmp_path):
    proc = _run_sample(tmp_path, SAMPLE)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "PASSED tests/test_sample.py::test_passes\n" in out or "PASSED tests/test_sample.py::test_passes " in out
    assert "PASSED tests/test_sample.py::test_passes[micropython]" in out, out
    assert "FAILED tests/test_sample.py::test_fails_only_on_micropython[micropython]" in out, out
    assert "PASSED tests/test_sample.py::test_fails_only_on_micropython" in out, out
    assert "FAILED tests/test_sample.py::test_raises_error[micropython]" in out, out
    assert "ran on micropython" in out
    assert "5 passed" not in out


def test_module_that_cannot_import_fails_every_item(tmp_path):
    proc = _run_sample(tmp_path, 'INTERPRETERS = ("micropython",)\nimport no_such_module\n\ndef test_a():\n    pass\n')
    assert proc.returncode == 1, proc.stdout
    assert "FAILED tests/test_sample.py::test_a[micropython]" in proc.stdout
    assert "no result from MicroPython" in proc.stdout
