"""firmware/app/reader.py: templates -> planned reads -> values and flags, through the bus owner and a fake UART.

Replies are built here with a bit-by-bit CRC-16/MODBUS (not the firmware's table) from registers the
test chooses, so a decoded value can be compared with what was put on the wire.
"""

import sys

sys.path.insert(0, "firmware")
sys.path.insert(0, "tests/firmware")  # fake_bus

import struct

from app.bus import Bus
from app.reader import Device, load_template
from fake_bus import TIMEOUT, FakePort, regs_reply, run

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "128k"  # compiling the imported sources needs more than the 64k the device has



def slave(regs, slave_id=1, status=None):
    """A tiny FC3/FC4 responder over a register dict (0 for undefined registers)."""

    def script(req):
        if req[0] != slave_id:
            return []
        addr = (req[2] << 8) | req[3]
        count = (req[4] << 8) | req[5]
        return [(2, regs_reply(slave_id, req[1], [regs.get(addr + i, 0) for i in range(count)]))]

    return script


def f32_regs(addr, v):
    b = struct.pack(">f", v)
    return {addr: (b[0] << 8) | b[1], addr + 1: (b[2] << 8) | b[3]}


def test_reader_decodes_template_and_status_flags():
    tpl = load_template("scs900uv")
    regs = {10: 0, 11: 0}
    for addr, v in ((12, 35.5), (14, 28.25), (16, 8.5), (18, 2.0), (20, 45.75)):
        regs.update(f32_regs(addr, v))
    port = FakePort(slave(regs))
    bus = Bus("bus1", port, timeout_ms=TIMEOUT, retries=0)
    dev = Device({"name": "cems", "address": 1, "poll_s": 1}, tpl, bus)
    assert len(dev.requests) == 1  # registers 10..21 in one read
    assert run(dev.poll(100)) and dev.flag == "N"
    v = {n: dev.values[dev.point(n)] for n in ("so2", "no", "o2", "no2", "nox")}
    assert v == {"so2": 35.5, "no": 28.25, "o2": 8.5, "no2": 2.0, "nox": 45.75}
    for word, flag in ((0x0100, "D"), (0x0001, "C"), (0x0101, "D")):
        regs[10] = word
        assert run(dev.poll(101)) and dev.flag == flag
    regs[10] = 0
    regs[11] = 1
    assert run(dev.poll(102)) and dev.flag == "M"


def test_reader_poll_failure_gives_b_and_keeps_no_partial_values():
    tpl = dict(load_template("sdm630"), max_gap=0)  # unmerged: several reads
    regs = f32_regs(0, 230.0)
    port = FakePort(slave(regs))
    bus = Bus("bus2", port, timeout_ms=TIMEOUT, retries=0)
    dev = Device({"name": "pm", "address": 1, "poll_s": 1}, tpl, bus)
    assert len(dev.requests) > 1
    assert run(dev.poll(10)) and dev.values[dev.point("u1")] == 230.0
    calls = {"n": 0}

    def half(req):  # first read answered with a new value, second never
        calls["n"] += 1
        return slave(f32_regs(0, 999.0))(req) if calls["n"] == 1 else []

    port.script = half
    assert not run(dev.poll(11)) and dev.flag == "B"
    assert dev.values[dev.point("u1")] == 230.0  # the half poll's 999 is not used
    assert not dev.link.online


def test_reader_late_poll_not_used():
    tpl = load_template("flue_params")
    port = FakePort(slave(f32_regs(8, 12.5)))
    bus = Bus("bus1", port, timeout_ms=TIMEOUT, retries=0)
    dev = Device({"name": "flue", "address": 1, "poll_s": 1}, tpl, bus)
    clock = {"t": 50.2}
    assert run(dev.poll(50, lambda: clock["t"], 51)) and dev.values[dev.point("flow")] == 12.5
    clock["t"] = 51.0  # the reply completed in the next second: may hold that second's value
    assert not run(dev.poll(51, lambda: clock["t"], 51)) and dev.flag == "B" and dev.late == 1


def test_every_lost_sample_is_named_with_why_at_debug_only():
    from app import log

    lines = []
    log.setup(sink=lines.append)
    tpl = load_template("flue_params")
    port = FakePort(slave(f32_regs(8, 12.5)))
    bus = Bus("bus1", port, timeout_ms=TIMEOUT, retries=0, backoff_s=(2, 60))
    dev = Device({"name": "flue", "address": 1, "poll_s": 1}, tpl, bus)
    try:
        assert log.set_level("info")
        dev.miss(40)
        assert not run(dev.poll(41, lambda: 42.0, 42))
        assert lines == []  # a real logger does not log each lost second at INFO
        assert not log.set_level("verbose") and log.level == log.INFO
        assert log.set_level("DEBUG")
        dev.miss(43)
        assert not run(dev.poll(44, lambda: 45.5, 45))
        assert run(dev.poll(46, lambda: 46.1, 47))  # in time: nothing said
        port.script = lambda req: [(2, b"\x01\x03\x02\x00")]  # a broken reply
        assert not run(dev.poll(47))
        port.script = lambda req: []  # silent: timeout, then offline until the probe 2 s later
        assert not run(dev.poll(48)) and not dev.link.online
        assert not run(dev.poll(49))
    finally:
        log.setup(sink=print, min_level=log.INFO)
    assert [ln.split(": ", 1)[1] for ln in lines] == [
        "lost sample dev=flue tick=43 (missed)",
        "lost sample dev=flue tick=44 (late)",
        "lost sample dev=flue tick=47 (error)",
        "lost sample dev=flue tick=48 (timeout)",
        "lost sample dev=flue tick=49 (offline)",
    ]
    assert all(ln.startswith("DEBUG acq: ") for ln in lines)
