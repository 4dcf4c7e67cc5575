"""firmware/app/bus.py and app/reader.py against a scripted fake UART (real ms timing, small timeouts).

Replies are built here with a bit-by-bit CRC-16/MODBUS (not the firmware's table) from registers the
test chooses, so a decoded value can be compared with what was put on the wire.
"""

import sys

sys.path.insert(0, "firmware")
sys.path.insert(0, "tests/firmware")  # fake_bus

import asyncio
import time

from app.bus import Bus, BusBusy, BusTimeout
from fake_bus import TIMEOUT, FakePort, frame, regs_reply, run
from portable import raises

from protocols.modbus.errors import ModbusException

INTERPRETERS = ("micropython",)
# 64k is not enough to *compile* protocols/modbus/rtu.py from source on import (the device loads .mpy);
# the bus itself preallocates its buffers, see firmware/STATISTICS.md for the measured heap.
MICROPYTHON_HEAP = "128k"


REQ = frame(bytes((1, 3, 0, 0, 0, 2)))
GOOD = regs_reply(1, 3, (0x1234, 0xABCD))


def make(script, retries=1, backoff=(2, 8)):
    port = FakePort(script)
    bus = Bus("bus1", port, timeout_ms=TIMEOUT, retries=retries, turnaround_ms=2, backoff_s=backoff)
    return port, bus, bus.link("dev1", 1)


def test_ok_and_counters():
    port, bus, lk = make(lambda r: [(3, GOOD)])
    got = run(bus.transact(lk, REQ))
    assert bytes(got) == GOOD
    c = lk.state()
    assert (c["requests"], c["ok"], c["tx_bytes"], c["rx_bytes"], c["timeouts"]) == (1, 1, 8, 9, 0)
    assert port.sent == [REQ]


def test_chunked_reply_is_assembled():
    port, bus, lk = make(lambda r: [(2, GOOD[:1]), (8, GOOD[1:4]), (15, GOOD[4:])])
    assert bytes(run(bus.transact(lk, REQ))) == GOOD
    assert lk.state()["ok"] == 1 and lk.state()["garbage"] == 0 and lk.state()["retries"] == 0


def script_seq(*answers):
    state = {"i": 0}

    def script(req):
        i = state["i"]
        state["i"] = i + 1
        return answers[i] if i < len(answers) else []

    return script


def test_timeout_then_retry_succeeds():
    port, bus, lk = make(script_seq([], [(2, GOOD)]))
    t0 = time.ticks_ms()
    assert bytes(run(bus.transact(lk, REQ))) == GOOD
    assert time.ticks_diff(time.ticks_ms(), t0) >= TIMEOUT
    assert (lk.state()["timeouts"], lk.state()["retries"], lk.state()["requests"], lk.state()["ok"]) == (1, 1, 2, 1)


def test_crc_error_counted_and_never_accepted():
    bad = bytearray(GOOD)
    bad[4] ^= 0x01  # one data bit flipped on the line
    port, bus, lk = make(script_seq([(2, bytes(bad))], [(2, GOOD)]))
    assert bytes(run(bus.transact(lk, REQ))) == GOOD
    assert lk.state()["crc"] == 1 and lk.state()["ok"] == 1
    port, bus, lk = make(lambda r: [(2, bytes(bad))])
    with raises(Exception) as e:
        run(bus.transact(lk, REQ))
    assert e.value.reason == "crc" and lk.state()["crc"] == 2 and lk.state()["ok"] == 0


def test_wrong_address_and_garbage():
    other = regs_reply(2, 3, (1, 2))
    port, bus, lk = make(script_seq([(2, other)], [(2, b"\x01\x07\x55\xaa\x00")], [(2, GOOD)]), retries=2)
    assert bytes(run(bus.transact(lk, REQ))) == GOOD
    c = lk.state()
    assert (c["wrong_address"], c["garbage"], c["ok"], c["retries"]) == (1, 1, 1, 2)


def test_exception_reply_is_not_retried():
    port, bus, lk = make(lambda r: [(2, frame(bytes((1, 0x83, 2))))], retries=3)
    with raises(ModbusException) as e:
        run(bus.transact(lk, REQ))
    assert e.value.code == 2 and lk.state()["exceptions"] == 1 and lk.state()["requests"] == 1


def test_late_reply_is_stray_not_an_answer():
    # dev1 answers after the timeout; its late reply lands while dev2 is being asked
    req2 = frame(bytes((2, 3, 0, 0, 0, 2)))
    good2 = regs_reply(2, 3, (7, 8))

    def script(req):
        # dev1 answers too late: its reply lands just after dev2's request went out (scheduled on that
        # request, not on the clock, so a loaded host cannot drain it as stray before dev2 is asked)
        if req[0] == 1:
            return []
        return [(1, GOOD), (20, good2)]

    port = FakePort(script)
    bus = Bus("bus1", port, timeout_ms=TIMEOUT, retries=0, turnaround_ms=2)
    l1 = bus.link("dev1", 1)
    l2 = bus.link("dev2", 2)

    async def go():
        with raises(BusTimeout):
            await bus.transact(l1, REQ)
        return bytes(await bus.transact(l2, req2))

    # dev2's own reply is preceded by dev1's late one: wrong address first, never taken as dev2's data
    with raises(Exception) as e:
        run(go())
    assert e.value.reason == "wrong-address", e.value
    assert l2.state()["wrong_address"] == 1 and l2.state()["ok"] == 0 and l1.state()["timeouts"] == 1


def test_stray_bytes_before_a_request_are_drained():
    port, bus, lk = make(lambda r: [(2, GOOD)])
    port.pending.append((time.ticks_ms(), b"\x00\xff\x13"))  # noise already on the line
    assert bytes(run(bus.transact(lk, REQ))) == GOOD
    assert bus.c["stray_bytes"] == 3


def test_offline_backoff_and_recovery():
    alive = {"on": False}
    port, bus, lk = make(lambda r: [(2, GOOD)] if alive["on"] else [], retries=1, backoff=(2, 8))

    async def poll(now):
        if not bus.begin(lk, now):
            return "skipped"
        try:
            await bus.transact(lk, REQ)
        except BusTimeout:
            bus.end(lk, False, True, now)
            return "timeout"
        bus.end(lk, True, False, now)
        return "ok"

    async def go():
        res = []
        for now in range(24):
            res.append(await poll(now))
        alive["on"] = True
        for now in range(24, 40):
            res.append(await poll(now))
        return res

    res = run(go())
    # first failure at 0 (2 attempts), then probes (1 attempt) at 2, 6 (2 + 4), 14 (+8), 22 (+8 cap)
    tried = [i for i in range(len(res)) if res[i] != "skipped"]
    assert tried[:5] == [0, 2, 6, 14, 22], tried
    # 2 attempts at 0 (online: one retry), 4 single probes, the probe at 30, then 31..39 online
    assert lk.state()["requests"] == 2 + 4 + 1 + 9 and lk.state()["timeouts"] == 6
    assert res[30] == "ok" and res[29] == "skipped" and lk.online  # back within one backoff period
    assert all(r == "ok" for r in res[30:])
    assert lk.state()["offline"] == 1 and lk.state()["skipped"] == (24 - 5) + (30 - 24)


def test_bounded_queue():
    port, bus, lk = make(lambda r: [(5, GOOD)])
    bus.queue_max = 2

    async def go():
        tasks = [asyncio.create_task(bus.transact(lk, REQ)) for _ in range(3)]
        await asyncio.sleep_ms(0)
        with raises(BusBusy):
            await bus.transact(lk, REQ)
        for t in tasks:
            await t
        return bus.c["queue_full"], lk.state()["ok"]

    assert run(go()) == (1, 3)


def test_one_transaction_in_flight_and_gap():
    stamps = []

    def script(req):
        stamps.append(time.ticks_us())
        return [(3, GOOD)]

    port, bus, lk = make(script)

    async def go():
        await asyncio.gather(*[bus.transact(lk, REQ) for _ in range(4)])

    run(go())
    assert lk.state()["ok"] == 4 and len(stamps) == 4
    for a, b in zip(stamps, stamps[1:]):
        # next request only after the reply (3 ms) plus 3.5 chars + 2 ms turnaround
        assert time.ticks_diff(b, a) >= 3000 + 4011 + 2000, time.ticks_diff(b, a)
