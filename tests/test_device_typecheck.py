"""host_tools.device_typecheck: fails on CPython-only APIs, passes valid MicroPython.

Expected failures are located by marker comments in the sample sources below, and the MicroPython facts the
tool relies on are re-checked against the real MicroPython unix port, not against the tool's own output.
"""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from host_tools import REPO_ROOT, device_typecheck

# Each `# expect: TEXT` line must get an error whose message contains TEXT.
DEVICE_BAD = textwrap.dedent('''\
    import json
    import os
    import time
    import typing  # expect: "typing" is not a MicroPython module
    import dataclasses  # expect: Import "dataclasses" could not be resolved
    import serial  # expect: Import "serial" could not be resolved


    def stamp(name):
        t = time.monotonic()  # expect: "monotonic" is not a known attribute of module "time"
        os.makedirs("/data")  # expect: "makedirs" is not a known attribute of module "os"
        short = str(name).removeprefix("x")  # expect: Attribute "removeprefix" is unknown
        padded = "7".zfill(3)  # expect: Attribute "zfill" is unknown
        try:
            open("/data/x")
        except FileNotFoundError:  # expect: "FileNotFoundError" is not defined
            pass
        return json.dumps({"t": t}, indent=2), short, padded  # expect: No overloads for "dumps"
''')

DEVICE_GOOD = textwrap.dedent('''\
    import asyncio
    import io
    import os
    import sys
    import time

    import machine
    import micropython
    from micropython import const

    _RETRIES = const(3)
    LIMIT = micropython.const(3)

    try:
        from time import ticks_ms
    except ImportError:  # CPython fallback: not held to the device stubs
        def ticks_ms():
            return int(time.monotonic() * 1000)


    class Port:
        on_frame = None  # assigned a callback later: inferred-type noise, not an error

        def __init__(self):
            self.uart = machine.UART(1, 9600)
            self.slots = [None] * 4

        def put(self, i, frame):
            self.slots[i] = bytes(frame)
            self.uart.write(frame)


    def override():
        if hasattr(os, "getenv"):  # the unix port's HIL runs only
            return os.getenv("EMLOG_OVERRIDE")
        return None


    def describe(exc):
        buf = io.StringIO()
        sys.print_exception(exc, buf)
        return buf.getvalue()


    async def poll():
        port = Port()
        start = time.ticks_ms()
        port.on_frame = describe
        await asyncio.sleep_ms(10)
        return time.ticks_diff(time.ticks_ms(), start) + ticks_ms()
''')


def expectations(source):
    out = []
    for lineno, line in enumerate(source.splitlines(), 1):
        m = re.search(r"# expect: (.+)$", line)
        if m:
            out.append((lineno, m.group(1).strip()))
    return out


def run_tool(*paths):
    proc = subprocess.run([sys.executable, "-m", "host_tools.device_typecheck", *map(str, paths)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_cpython_only_apis_fail_naming_each_error(tmp_path):
    bad = tmp_path / "bad_device.py"
    bad.write_text(DEVICE_BAD)
    code, out = run_tool(bad)
    assert code == 1, out
    reported = {}
    for m in re.finditer(r"bad_device\.py:(\d+):\d+: error: (.*)", out):
        reported.setdefault(int(m.group(1)), []).append(m.group(2))
    for lineno, text in expectations(DEVICE_BAD):
        assert any(text in msg for msg in reported.get(lineno, [])), (lineno, text, out)
    assert set(reported) == {n for n, _ in expectations(DEVICE_BAD)}, out
    m = re.search(r"1 files checked .*: (\d+) errors", out)
    assert m and int(m.group(1)) == sum(len(v) for v in reported.values()), out


def test_valid_micropython_passes(tmp_path):
    good = tmp_path / "good_device.py"
    good.write_text(DEVICE_GOOD)
    code, out = run_tool(tmp_path)
    assert code == 0, out
    assert "1 files checked" in out and ": 0 errors" in out, out
    # the fallback, the guarded call and the inferred-type cases were seen and set aside, not missed
    assert "1 in CPython fallbacks not reported" in out, out
    assert "1 behind hasattr() guards not reported" in out, out
    assert re.search(r"[1-9]\d* inferred-type mismatches not reported", out), out


def test_unix_only_firmware_files_are_skipped():
    unix_only = device_typecheck._is_unix_only
    assert unix_only(Path("hal/unix_uart.py"))
    assert unix_only(Path("hal/unix/pty.py"))
    assert unix_only(Path("hal/unixport/clock.py"))
    assert unix_only(Path("app/clock_unix.py"))
    assert not unix_only(Path("hal/esp32.py"))
    assert not unix_only(Path("app/main.py"))
    assert not unix_only(Path("main.py"))


def test_missing_explicit_path_is_an_error(tmp_path):
    code, out = run_tool(tmp_path / "nope")
    assert code == 2 and "does not exist" in out, out


def _micropython(script):
    proc = subprocess.run([device_typecheck.micropython_executable(), "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_stub_only_modules_are_missing_on_micropython():
    env = device_typecheck.stub_env()
    stdlib = env / "typeshed" / "stdlib"
    top = sorted({p.stem if p.suffix == ".pyi" else p.name for p in stdlib.iterdir()
                  if p.suffix == ".pyi" or p.is_dir()} - {"_typeshed"})
    names = sorted(set(top) | device_typecheck.STUB_ONLY_MODULES)
    imports = _micropython(textwrap.dedent('''\
        import json
        ok = {}
        for name in %s:
            try:
                __import__(name)
                ok[name] = True
            except ImportError:
                ok[name] = False
        print(json.dumps(ok))
    ''' % json.dumps(names)))
    for name in names:
        # stub-only exactly when MicroPython cannot import it
        assert imports[name] == (name not in device_typecheck.STUB_ONLY_MODULES), name


# Names the unix port has but the ESP32 build does not (unix-only os/sys extras).
UNIX_PORT_ONLY = {"os": {"getenv", "putenv", "unsetenv", "system"}, "sys": {"exc_info", "executable"}}


def test_os_and_sys_narrowing_matches_micropython():
    env = device_typecheck.stub_env()
    removed = json.loads((env / "removed.json").read_text())
    present = _micropython("import json, os, sys; print(json.dumps({'os': dir(os), 'sys': dir(sys)}))")
    for module in ("os", "sys"):
        wrongly = (set(removed[module]) & set(present[module])) - UNIX_PORT_ONLY[module]
        assert not wrongly, (module, sorted(wrongly))
    assert {"makedirs", "walk", "getpid", "fsencode"} <= set(removed["os"])
    assert {"getsizeof", "setrecursionlimit"} <= set(removed["sys"])


def test_builtins_narrowing_keeps_what_micropython_has():
    env = device_typecheck.stub_env()
    removed = set(json.loads((env / "removed.json").read_text())["builtins"])
    script = "import json, builtins\nprint(json.dumps({'builtins': dir(builtins), 'str': dir(''), "
    script += "'bytes': dir(b'')}))"
    present = _micropython(script)
    assert not removed & set(present["builtins"])
    assert not {n for n in removed if n.startswith("str.")} & {"str." + n for n in present["str"]}
    assert not {n for n in removed if n.startswith("bytes.")} & {"bytes." + n for n in present["bytes"]}
    assert {"FileNotFoundError", "TimeoutError", "str.zfill", "str.removeprefix"} <= removed


def test_pyright_knows_every_configured_rule():
    import pyright

    bundled = Path(pyright.__file__).parent / "dist" / "dist" / "pyright-internal.js"
    known = set(re.findall(r'"(report[A-Za-z]+)"', bundled.read_text(encoding="utf-8")))
    unknown = [k for k in device_typecheck.PYRIGHT_RULES if k.startswith("report") and k not in known]
    assert not unknown


def test_stub_patches_applied():
    # stub_env() raises when a patch no longer matches the installed stubs
    env = device_typecheck.stub_env()
    for module, (replacements, _) in device_typecheck.STUB_PATCHES.items():
        (path,) = device_typecheck._stub_module_files(env / "typeshed", module)
        text = path.read_text(encoding="utf-8")
        for _, new in replacements:
            assert new in text
