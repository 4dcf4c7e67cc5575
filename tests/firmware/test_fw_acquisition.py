"""firmware/app/acquisition.py end to end over fake UARTs: two buses, a dead instrument, status flags,
records for the uplink; and run() against a scaled clock."""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")
sys.path.insert(0, "tests/firmware")  # fake_bus

import asyncio
import struct
import time

from app.acquisition import Acquisition
from fake_bus import crc
from portable import approx

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "256k"  # compiles every acquisition module from source on import

BJ = 8 * 3600
T0 = 1710432000 + 10 * 3600  # 10:00:00 Beijing


class Slaves:
    """Fake UART with Modbus slaves behind it: address -> dict of registers (None = dead)."""

    gap_us = 4011
    min_silence_ms = 5

    def __init__(self, slaves):
        self.slaves = slaves
        self.rx = b""
        self.requests = 0

    def write(self, req):
        self.requests += 1
        regs = self.slaves.get(req[0])
        if regs is None:
            return
        addr = (req[2] << 8) | req[3]
        count = (req[4] << 8) | req[5]
        data = b"".join(struct.pack(">H", regs.get(addr + i, 0)) for i in range(count))
        body = bytes((req[0], req[1], len(data))) + data
        self.rx = body + crc(body)

    async def read(self, buf, timeout_ms):
        n = len(self.rx)
        if n:
            buf[:n] = self.rx
            self.rx = b""
            return n
        await asyncio.sleep_ms(timeout_ms)
        return 0

    def drain(self, buf):
        n = len(self.rx)
        self.rx = b""
        return n


def f32(regs, addr, v):
    b = struct.pack(">f", v)
    regs[addr] = (b[0] << 8) | b[1]
    regs[addr + 1] = (b[2] << 8) | b[3]


CFG = {
    "site": {"name": "t", "utc_offset_min": 480},
    "logger": {"sample_s": 1, "rtd_interval_s": 30, "min_interval_min": 1, "valid_fraction": 0.75,
               "o2_guard": 19.0},
    "buses": [
        {"name": "bus1", "uart": 1, "timeout_ms": 30, "retries": 1, "turnaround_ms": 0, "backoff_s": [2, 8],
         "devices": [{"name": "cems", "template": "scs900uv", "address": 1, "poll_s": 1},
                     {"name": "flue", "template": "flue_params", "address": 2, "poll_s": 1}]},
        {"name": "bus2", "uart": 2, "timeout_ms": 30, "retries": 1, "turnaround_ms": 0, "backoff_s": [2, 8],
         "devices": [{"name": "voc", "template": "nmhc_fid", "address": 1, "poll_s": 1},
                     {"name": "dust", "template": "cwt_uwd", "address": 5, "poll_s": 1}]},
    ],
    "stations": [
        {"name": "boiler", "channels": [
            {"code": "a21003", "source": "cems.no"},
            {"code": "a21004", "source": "cems.no2"},
            {"code": "a21002", "nox_from": ["a21003", "a21004"], "o2_ref": 6},
            {"code": "a19001", "source": "cems.o2", "o2": True},
            {"code": "a00000", "source": "flue.flow", "flow": True}]},
        {"name": "voc", "channels": [{"code": "a24088", "source": "voc.nmhc"}]},
        {"name": "dust", "channels": [{"code": "a34002", "source": "dust.pm10", "unit": "mg/m3",
                                       "from_unit": "ug/m3"}]},
    ],
}


class Clock:
    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t

    async def sleep_until(self, t):
        self.t = max(self.t, t)


def setup(cfg=CFG):
    cems = {10: 0, 11: 0}
    f32(cems, 14, 30.0)  # NO
    f32(cems, 18, 2.0)  # NO2
    f32(cems, 16, 9.0)  # O2
    flue = {}
    f32(flue, 8, 40.0)
    dust = {508: 80}
    bus1 = Slaves({1: cems, 2: flue})
    bus2 = Slaves({5: dust})  # voc (address 1) is dead
    recs = []
    clock = Clock(T0)
    acq = Acquisition(cfg, None, clock, recs.append, ports={1: bus1, 2: bus2})
    return acq, clock, recs, cems, bus2


def drive(acq, clock, t0, t1):
    async def go():
        for t in range(t0, t1):
            clock.t = t + 0.05
            await asyncio.gather(*[acq._poll_bus(devs, t) for _, devs in acq.buses])
            acq.tick(t)

    asyncio.run(go())


def test_ticks_records_flags_and_dead_device():
    acq, clock, recs, cems, bus2 = setup()
    cems[10] = 0x0001  # calibration (C) for the first 20 s of the minute
    drive(acq, clock, T0, T0 + 20)
    cems[10] = 0
    drive(acq, clock, T0 + 20, T0 + 61)
    mins = [r for r in recs if r["kind"] == "min"]
    assert [(r["station"], r["t"]) for r in mins] == [("boiler", T0), ("voc", T0), ("dust", T0)]
    boiler = dict(mins[0]["values"])
    # 20 C + 40 N samples: 40 < 0.75 x 60 valid -> C; Min/Avg/Max over the 40 valid ones
    assert boiler["a21003"] == {"Flag": "C", "Min": 30.0, "Avg": 30.0, "Max": 30.0, "Cou": 30.0 * 40.0 * 1e-6 * 40}
    nox = 30.0 * 46 / 30 + 2.0
    assert approx(boiler["a21002"]["Avg"], nox) and approx(boiler["a21002"]["ZsAvg"], nox * 15 / 12)
    assert approx(boiler["a21002"]["Cou"], nox * 40.0 * 1e-6 * 40)  # 40 valid seconds
    assert approx(boiler["a00000"]["Cou"], 40.0 * 60)  # flow flag comes from its own device: all N
    assert dict(mins[1]["values"])["a24088"] == {"Flag": "B"}  # dead: no values at all
    assert approx(dict(mins[2]["values"])["a34002"]["Avg"], 0.08)
    rtd = [r for r in recs if r["kind"] == "rtd" and r["station"] == "boiler"]
    assert [r["t"] - T0 for r in rtd] == [0, 30, 60]
    assert dict(rtd[0]["values"])["a21003"]["Flag"] == "C" and dict(rtd[1]["values"])["a21003"]["Flag"] == "N"
    snap = acq.snapshot()
    assert snap["samples"]["boiler"]["expected"] == 61 and snap["samples"]["boiler"]["taken"]["a21003"] == 61
    assert snap["samples"]["voc"]["taken"]["a24088"] == 0
    voc = snap["buses"]["bus2"]["devices"]["voc"]
    # online at T0 (2 attempts), then probes at +2, +6, +14, +22, +30, ... (backoff 2, 4, 8, 8 ...)
    assert not voc["online"] and voc["offline"] == 1 and voc["timeouts"] == 2 + 8
    dust = snap["buses"]["bus2"]["devices"]["dust"]
    assert dust["polls_ok"] == 61 and dust["ok"] == 61  # cwt_uwd: one read per poll (its max_gap merges them)


def test_minute_flag_follows_validity_rule():
    acq, clock, recs, cems, _ = setup()
    cems[10] = 0x0100  # alarm (D) for 15 s: 45 valid of 60 -> N
    drive(acq, clock, T0, T0 + 15)
    cems[10] = 0
    drive(acq, clock, T0 + 15, T0 + 76)
    cems[10] = 0x0100  # 16 s of D in the next minute: 44 valid -> D
    drive(acq, clock, T0 + 76, T0 + 120)
    flags = [dict(r["values"])["a21003"]["Flag"] for r in recs if r["kind"] == "min" and r["station"] == "boiler"]
    assert flags == ["N", "D"], flags


def test_dead_device_recovers_within_one_backoff():
    acq, clock, recs, cems, bus2 = setup()
    drive(acq, clock, T0, T0 + 40)
    voc = {0: 0}
    f32(voc, 2, 12.5)
    bus2.slaves[1] = voc  # instrument comes back at +40
    drive(acq, clock, T0 + 40, T0 + 60)
    snap = acq.snapshot()
    taken = snap["samples"]["voc"]["taken"]["a24088"]
    assert snap["buses"]["bus2"]["devices"]["voc"]["online"]
    assert 60 - 40 - 8 <= taken <= 20, taken  # back at the next probe, at most one 8 s backoff later


def test_run_with_a_scaled_clock():
    acq, clock, recs, cems, bus2 = setup()
    bus2.slaves[1] = {}
    scale = 25.0  # sim seconds per real second
    start_ms = time.ticks_ms()
    base = T0 - 0.5

    class Scaled:
        def now(self):
            return base + time.ticks_diff(time.ticks_ms(), start_ms) * scale / 1000

        async def sleep_until(self, t):
            while self.now() < t:
                await asyncio.sleep_ms(int((t - self.now()) * 1000 / scale) + 1)

    acq.clock = Scaled()

    async def go():
        task = asyncio.create_task(acq.run())
        await asyncio.sleep_ms(int(65 * 1000 / scale))
        task.cancel()

    asyncio.run(go())
    snap = acq.snapshot()
    assert snap["lag"]["ticks"] >= 60
    mins = [r for r in recs if r["kind"] == "min"]
    assert [r["t"] for r in mins][:1] == [T0]
    # at 25x a 1 s tick is 40 ms real: every live device is polled in time on most ticks
    assert snap["samples"]["boiler"]["taken"]["a21003"] >= 0.9 * snap["samples"]["boiler"]["expected"], snap


def test_min_interval_change_ends_the_running_period_at_the_new_boundary():
    acq, clock, recs, cems, bus2 = setup()
    drive(acq, clock, T0, T0 + 30)
    clock.t = T0 + 30.5
    acq.set_min_interval(5)  # HJ 212 1064 at 10:00:30: the running minute ends at 10:05:00
    drive(acq, clock, T0 + 30, T0 + 601)
    mins = [r for r in recs if r["kind"] == "min" and r["station"] == "boiler"]
    assert [r["t"] - T0 for r in mins] == [0, 300]
    for r in mins:
        flow = dict(r["values"])["a00000"]
        # every one of the period's 300 samples counted once: 40 m3/s x 300 s, all valid
        assert flow["Flag"] == "N" and approx(flow["Cou"], 40.0 * 300)
    assert acq.min_interval == 5


def test_clock_step_back_within_the_minute_feeds_no_tick_twice():
    acq, clock, recs, cems, bus2 = setup()
    drive(acq, clock, T0, T0 + 30)
    acq.time_changed(T0 + 30.05, T0 + 20.05)  # platform time calibration, 10 s back
    drive(acq, clock, T0 + 20, T0 + 61)
    mins = [r for r in recs if r["kind"] == "min" and r["station"] == "boiler"]
    assert [r["t"] for r in mins] == [T0]
    flow = dict(mins[0]["values"])["a00000"]
    assert flow["Flag"] == "N" and approx(flow["Cou"], 40.0 * 60)  # 60 samples, none twice
    rtd = [r["t"] - T0 for r in recs if r["kind"] == "rtd" and r["station"] == "boiler"]
    assert rtd == [0, 30, 60]  # no realtime record produced twice either
    lag = acq.snapshot()["lag"]
    assert lag["replayed"] == 10 and lag["clock_steps"] == 1


def test_clock_step_back_beyond_the_minute_closes_the_periods_and_restarts():
    acq, clock, recs, cems, bus2 = setup()
    drive(acq, clock, T0, T0 + 90)
    n = len(recs)
    acq.time_changed(T0 + 90.05, T0 - 3600 + 0.05)  # the old clock was an hour fast
    closed = [(r["kind"], r["station"], r["t"] - T0) for r in recs[n:] if r["station"] == "boiler"]
    assert closed == [("min", "boiler", 60), ("hour", "boiler", 0), ("day", "boiler", -10 * 3600)]
    part = dict(recs[n]["values"])["a00000"]
    assert part["Flag"] == "B" and approx(part["Cou"], 40.0 * 30)  # 30 of 60 samples: the rest count as B
    drive(acq, clock, T0 - 3600, T0 - 3600 + 61)
    mins = [r["t"] - T0 for r in recs[n:] if r["kind"] == "min" and r["station"] == "boiler"]
    assert mins == [60, -3600]


class FakeRules:
    def __init__(self):
        self.events = 0
        self.calls = []

    def tick(self, t, values, points):
        b = values["boiler"]
        self.calls.append(("tick", t, b["a21003"], b["a21002"], dict(points)))
        if t == T0 + 5:
            self.events += 1

    def period(self, kind, t, record):
        self.calls.append(("period", kind, t, record["station"], len(record["values"])))


def test_rules_see_every_tick_their_points_and_closed_periods_before_the_uplink():
    cfg = dict(CFG)
    cfg["rules"] = {"list": [{"name": "flow-collapse", "type": "bypass", "kind": "main_flow", "input": "flue.flow",
                              "below": 3, "running": "cems.o2", "running_above": 5}]}
    acq, clock, recs, cems, bus2 = setup(cfg)
    assert sorted([k for k, _, _ in acq._rpoints]) == ["cems.o2", "flue.flow"]
    rules = FakeRules()
    changed = []
    seen = []
    acq.on_record = lambda r: seen.append((r["kind"], r["t"], len([c for c in rules.calls if c[0] == "period"])))
    acq.set_rules(rules, lambda: changed.append(acq.t))
    drive(acq, clock, T0, T0 + 61)
    ticks = [c for c in rules.calls if c[0] == "tick"]
    assert [c[1] - T0 for c in ticks] == list(range(61))
    _, t, no, nox, pts = ticks[3]
    assert no == (30.0, "N", None)
    assert nox[0] == 30.0 * 46 / 30 + 2.0 and nox[1] == "N" and approx(nox[2], nox[0] * 15 / 12)
    assert pts == {"flue.flow": (40.0, "N"), "cems.o2": (9.0, "N")}
    periods = [c for c in rules.calls if c[0] == "period"]
    assert [(c[1], c[2], c[3]) for c in periods] == [("min", T0, "boiler"), ("min", T0, "voc"), ("min", T0, "dust")]
    # each closed record reached the rules before the uplink saw it; realtime records never do
    assert [s for s in seen if s[0] == "min"] == [("min", T0, 1), ("min", T0, 2), ("min", T0, 3)]
    assert changed == [T0 + 5]


def test_devices_feeding_stations_are_polled_before_rule_only_devices():
    cfg = dict(CFG)
    bus2 = dict(CFG["buses"][1])
    bus2["devices"] = [{"name": "damper", "template": "di4", "address": 4, "poll_s": 1}] + CFG["buses"][1]["devices"]
    cfg["buses"] = [CFG["buses"][0], bus2]
    acq, clock, recs, cems, slaves2 = setup(cfg)
    order = []
    write = slaves2.write

    def logged(req):
        order.append(req[0])
        write(req)

    slaves2.write = logged
    slaves2.slaves[4] = {0: 1}
    drive(acq, clock, T0, T0 + 1)
    assert [d.name for d in acq.buses[1][1]] == ["voc", "dust", "damper"]
    # voc (1) is dead: its 2 attempts, then dust (5, one merged read), then the contact module (4) last
    assert order[:3] == [1, 1, 5] and order[3:] and set(order[3:]) == {4}, order
