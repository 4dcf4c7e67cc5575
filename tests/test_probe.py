"""`emlog probe` against emulated instruments on ptys.

Expected values come from the scenario (engineering values) rounded by hand the way the template's type
stores them (float32 via struct), and from the template text (unit, range, status masks); never from
probe's own decoding or from the emulator's encoder.
"""

import json
import os
import struct
import subprocess
import sys
import termios

import pytest
import serial

from host_tools import REPO_ROOT, cli
from host_tools.emulators.bus import EmulatedBus
from host_tools.emulators.instruments import Instrument
from host_tools.emulators.scenario import Scenario, SimClock

START = 1714492800
CEMS = {"so2": 123.4, "no": 20.5, "o2": 6.5, "no2": 3.75, "nox": 40.0}
# Template text of scs900uv.json, read by a person: units, ranges and the status masks.
CEMS_UNITS = {"so2": "mg/m3", "no": "mg/m3", "o2": "%", "no2": "mg/m3", "nox": "mg/m3"}


def f32(v):
    return struct.unpack(">f", struct.pack(">f", v))[0]


def f32_words(v):
    b = struct.pack(">f", v)
    return [(b[0] << 8) | b[1], (b[2] << 8) | b[3]]


def scenario():
    return Scenario(
        {
            "start": START,
            "devices": {
                "cems": {"points": dict(CEMS, alarm_cal=0, maintain=0)},
                # A calibrating analyser: the status window sets a bit under the C mask (alarm_cal & 0x00FF).
                "cal": {"points": dict(CEMS), "status": [{"from": 0, "to": 10**9, "flag": "C"}]},
                # SO2 above the 0..500 measuring range: flag T on so2 only.
                "over": {"points": dict(CEMS, so2=650.0)},
                "damper": {"points": {"di1": 1, "di2": 0, "di3": 1, "di4": 0}},
                "voc": {"points": {"status": 0, "nmhc": 18.25, "thc": 21.5, "ch4": 2.125}},
            },
        }
    )


class BaudBus(EmulatedBus):
    """A bus whose instruments only hear requests sent at `line_baud` (a pty keeps the speed the master
    set with tcsetattr, so the emulator can read it); at any other speed it stays silent, like a real
    instrument that sees framing errors."""

    def __init__(self, *a, line_baud=9600, **kw):
        super().__init__(*a, **kw)
        self.line_speed = getattr(termios, "B%d" % line_baud)
        self.wrong_baud = 0

    def _serve(self, frame, now):
        if termios.tcgetattr(self.slave)[4] != self.line_speed:
            self.wrong_baud += 1
            return
        super()._serve(frame, now)


def make_bus(specs, cls=EmulatedBus, **kw):
    scn = scenario()
    clock = SimClock(START + 100, 1.0)
    insts = [Instrument(name, tpl, addr, scn.device(name), scn.start) for name, tpl, addr in specs]
    return cls("test", insts, clock, **kw)


@pytest.fixture
def emlog(monkeypatch, capsys):
    # Only our commands: the test must not depend on every other sub-command importing.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["host_tools.probe"])

    def run(*argv):
        code = cli.main(["probe"] + list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def bus():
    b = make_bus(
        [
            ("cems", "scs900uv", 7),
            ("cal", "scs900uv", 8),
            ("over", "scs900uv", 9),
            ("damper", "di4", 3),
            ("voc", "nmhc_fid", 11),
        ]
    ).start()
    yield b
    b.stop()


def by_point(result):
    return {p["point"]: p for p in result["points"]}


def test_json_values_match_scenario(emlog, bus):
    code, out, err = emlog("--port", bus.path, "--template", "scs900uv", "--address", "7", "--json")
    assert code == 0, err
    res = json.loads(out)
    pts = by_point(res)
    assert res["address"] == 7 and res["template"] == "scs900uv"
    assert res["serial"] == {"baud": 9600, "parity": "N", "stop_bits": 1}
    for name, v in CEMS.items():
        assert pts[name]["value"] == f32(v), name
        assert pts[name]["raw"] == f32_words(v), name
        assert pts[name]["unit"] == CEMS_UNITS[name]
        assert pts[name]["flag"] == "N"
    assert pts["alarm_cal"]["value"] == 0 and pts["maintain"]["value"] == 0
    assert res["status"] is None
    # Same read plan as the firmware: registers 10..21 in one FC3 read (scs900uv: one contiguous block).
    assert res["reads"] == [{"function": 3, "address": 10, "count": 12}]
    assert [(e["fc"], e["start"], e["count"]) for e in bus.entries("cems")] == [(3, 10, 12)]


def test_status_mask_gives_flag_to_every_value(emlog, bus):
    code, out, err = emlog("--port", bus.path, "--template", "scs900uv", "--address", "8", "--json")
    assert code == 0, err
    res = json.loads(out)
    pts = by_point(res)
    # Calibration: a bit of alarm_cal's low byte (mask 255 in the template) is set, the alarm byte is clear.
    raw = pts["alarm_cal"]["raw"][0]
    assert raw & 0x00FF and not raw & 0xFF00
    assert res["status"]["flag"] == "C" and res["status"]["point"] == "alarm_cal"
    assert {p["flag"] for p in res["points"]} == {"C"}
    assert pts["so2"]["value"] == f32(CEMS["so2"])


def test_over_range_gives_T(emlog, bus):
    code, out, err = emlog("--port", bus.path, "--template", "scs900uv", "--address", "9", "--json")
    assert code == 0, err
    pts = by_point(json.loads(out))
    assert pts["so2"]["value"] == 650.0 and pts["so2"]["flag"] == "T"
    assert all(pts[n]["flag"] == "N" for n in ("no", "o2", "no2", "nox"))


def test_table_output(emlog, bus):
    code, out, err = emlog("--port", bus.path, "--template", "scs900uv", "--address", "9")
    assert code == 0, err
    lines = out.splitlines()
    assert "scs900uv" in lines[0] and "address 9" in lines[0] and "9600 8N1" in lines[0]
    assert lines[1].split() == ["point", "value", "unit", "raw", "flag"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:] if ln.split() and ln.split()[0] in CEMS}
    assert set(rows) == set(CEMS)
    expect = dict(CEMS, so2=650.0)
    for name, v in expect.items():
        cols = rows[name]
        assert float(cols[1]) == pytest.approx(v, rel=1e-6)
        assert cols[2] == CEMS_UNITS[name]
        assert [int(w, 16) for w in cols[3:5]] == f32_words(v)
        assert cols[5] == ("T" if name == "so2" else "N")
    assert lines[-1].startswith("status:")


def test_discrete_inputs_and_input_registers(emlog, bus):
    code, out, err = emlog("--port", bus.path, "--template", "di4", "--address", "3", "--json")
    assert code == 0, err
    pts = by_point(json.loads(out))
    assert {n: pts[n]["value"] for n in pts} == {"di1": 1, "di2": 0, "di3": 1, "di4": 0}
    assert [(e["fc"], e["start"], e["count"]) for e in bus.entries("damper")] == [(2, 0, 4)]

    code, out, err = emlog("--port", bus.path, "--template", "nmhc_fid", "--address", "11", "--json")
    assert code == 0, err
    pts = by_point(json.loads(out))
    for name in ("nmhc", "thc", "ch4"):
        assert pts[name]["value"] == f32({"nmhc": 18.25, "thc": 21.5, "ch4": 2.125}[name])
    assert {e["fc"] for e in bus.entries("voc")} == {4}


def test_serial_overrides(emlog, bus):
    # The pty's nominal speed is what the port was set to: check probe applies --baud/--parity/--stop-bits.
    code, out, err = emlog(
        "--port",
        bus.path,
        "--template",
        "di4",
        "--address",
        "3",
        "--baud",
        "19200",
        "--parity",
        "E",
        "--stop-bits",
        "2",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["serial"] == {"baud": 19200, "parity": "E", "stop_bits": 2}
    assert termios.tcgetattr(bus.slave)[4] == termios.B19200


def test_scan_finds_instrument_at_other_address_and_baud(emlog):
    b = make_bus([("cems", "scs900uv", 23)], cls=BaudBus, line_baud=19200).start()
    try:
        code, out, err = emlog(
            "--port",
            b.path,
            "--scan",
            "--template",
            "scs900uv",
            "--addresses",
            "20-25",
            "--bauds",
            "9600,19200,4800",
            "--json",
        )
    finally:
        b.stop()
    assert code == 0, err
    res = json.loads(out)
    assert res["found"] == [{"address": 23, "baud": 19200, "reply": "ok"}]
    assert by_point({"points": res["points"][0]})["so2"]["value"] == f32(CEMS["so2"])
    assert b.wrong_baud == 6  # every address at 9600 was tried and heard nothing
    assert "scanning 9600 8N1" in err and "scanning 19200 8N1" in err
    assert "scanning 4800" not in err  # stops after the baud rate that answered


def test_scan_without_template_counts_exception_as_answer(emlog, bus):
    code, out, err = emlog("--port", bus.path, "--scan", "--addresses", "6-9", "--bauds", "9600")
    assert code == 0, err
    assert "address 7 at 9600 8N1: answered" in out and "address 9 at 9600 8N1: answered" in out
    assert "address 6 " not in out
    # Without a template the scan reads holding register 0, which scs900uv does not have.
    assert "exception 2 (illegal data address)" in out


# ---- errors -----------------------------------------------------------------------------------
def test_no_such_port(emlog):
    code, out, err = emlog("--port", "/dev/ttyEMLOG-NOPE", "--template", "di4", "--address", "1")
    assert code == 2
    assert "/dev/ttyEMLOG-NOPE does not exist" in err and "Traceback" not in err


def test_busy_port(emlog, bus):
    holder = serial.Serial(bus.path, 9600, exclusive=True)
    try:
        code, out, err = emlog("--port", bus.path, "--template", "di4", "--address", "3")
    finally:
        holder.close()
    assert code == 2 and "is busy" in err


def test_unknown_template_lists_known(emlog, bus):
    code, out, err = emlog("--port", bus.path, "--template", "scs-9000", "--address", "7")
    assert code == 2
    assert "unknown template 'scs-9000'" in err
    for name in sorted(p.stem for p in (REPO_ROOT / "protocols" / "templates").glob("*.json")):
        assert name in err


def test_no_answer_says_what_was_tried(emlog, bus):
    code, out, err = emlog(
        "--port", bus.path, "--template", "scs900uv", "--address", "42", "--timeout", "0.1"
    )
    assert code == 2
    for part in ("no answer from address 42", "9600 8N1", "A/B", "parity", "--scan"):
        assert part in err


def test_exception_response_is_named(emlog, bus):
    # An NMHC template against the CEMS: input registers it does not have.
    code, out, err = emlog("--port", bus.path, "--template", "nmhc_fid", "--address", "7")
    assert code == 2
    assert "exception 2 (illegal data address)" in err and "FC4" in err and "template" in err


def test_scan_nothing_found(emlog, bus):
    code, out, err = emlog(
        "--port", bus.path, "--scan", "--addresses", "30-31", "--bauds", "9600", "--timeout", "0.05"
    )
    assert code == 2
    assert "nothing answered" in err and "2 address(es) x 1 baud rate(s)" in err and "A/B" in err


def test_errors_have_no_traceback_in_a_real_process(bus):
    code = (
        "import sys; from host_tools import cli; cli.COMMAND_MODULES[:] = ['host_tools.probe']; "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    for argv, needle in (
        (["--port", "/dev/ttyEMLOG-NOPE", "--template", "di4", "--address", "1"], "does not exist"),
        (["--port", bus.path, "--template", "nope", "--address", "1"], "unknown template"),
        (["--port", bus.path, "--template", "di4", "--address", "5", "--timeout", "0.1"], "no answer"),
    ):
        p = subprocess.run(
            [sys.executable, "-c", code, "probe"] + argv,
            capture_output=True,
            text=True,
            env=env,
            cwd=str(REPO_ROOT),
            timeout=60,
        )
        assert p.returncode == 2, p.stderr
        assert needle in p.stderr and "Traceback" not in p.stderr
