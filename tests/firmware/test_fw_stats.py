"""firmware/app/stats.py against a reference written here from the rule in firmware/STATISTICS.md.

The reference keeps every sample and groups them by period; the firmware keeps running sums. Both see
the same scenario: hand-placed flag patterns (ties, the 75 % threshold, missing ticks before start-up)
plus a pseudo-random stretch, at 1 s sampling over two hours and at 60 s sampling across two Beijing days.
"""

import gc
import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from app.channels import Station
from app.stats import StationStats
from portable import approx

INTERPRETERS = ("cpython", "micropython")
MICROPYTHON_HEAP = "16m"  # the reference and two days of records; firmware memory is measured elsewhere

BJ = 8 * 3600
DAY0 = 1710432000  # 2024-03-15 00:00:00 Beijing
RANK = "DBCMTF"


class FakeDevice:
    def __init__(self, names, ranges):
        self.names = names
        self.units = ["mg/m3", "%", "m3/s"]
        self.ranges = ranges
        self.values = [None] * len(names)
        self.flag = "B"

    def point(self, name):
        return self.names.index(name)


CHANNELS = [
    {"code": "a21026", "source": "dev.so2", "o2_ref": 6},
    {"code": "a19001", "source": "dev.o2", "o2": True},
    {"code": "a00000", "source": "dev.flow", "flow": True},
]


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def scenario_1s(t, rnd):
    """(device flag, so2, o2, flow) for tick t (sample_s = 1)."""
    m = (t - DAY0) // 60 % 60  # local minute of the hour
    s = (t - DAY0) % 60
    so2 = 20.0 + (t % 97) * 0.5
    o2 = 8.0 + (t % 13) * 0.1
    flow = 30.0 + (t % 7)
    if m == 5:
        return ("C" if s < 30 else "M"), so2, o2, flow  # tie C/M -> C
    if m == 6:
        return ("B" if s < 15 else "D" if s < 30 else "N"), so2, o2, flow  # 30 valid < 45; tie B/D -> D
    if m == 7:
        return "N", (so2 if s < 44 else 999.0), o2, flow  # 44 valid + 16 T -> T
    if m == 8:
        return ("N" if s < 45 else "F"), so2, o2, flow  # exactly 45 valid -> N
    if m == 9:
        return ("S" if s < 50 else "N"), so2, (19.5 if s < 40 else o2), flow  # S valid; O2 over guard: no Zs
    if m == 10:
        return "N", so2, o2, flow  # (flow channel over range below)
    if m >= 40:
        r = rnd.next(100)
        flag = "N" if r < 70 else "BCDMTF"[r % 6]
        return flag, so2, o2, flow
    return "N", so2, o2, flow


def flow_override(t, flow):
    if (t - DAY0) // 60 % 60 == 10 and (t % 60) < 40:
        return 150.0  # flow over range: T on the flow channel, so no Cou for these samples
    return flow


def run(sample_s, min_interval, start, end, scen, seed=1, keep=False, changes=None):
    dev = FakeDevice(["so2", "o2", "flow"], [[0, 500], [0, 25], [0, 100]])
    st = Station({"name": "boiler", "channels": CHANNELS}, {"dev": dev}, 19.0)
    ss = StationStats(st, sample_s, min_interval, BJ, 0.75)
    rnd = Lcg(seed)
    # Preallocated: a growing list of thousands of long-lived records fragments MicroPython's heap.
    out = [None] * (2 * (end - start) // 60 + 10)  # at most one minute record per 60 s, fewer others
    n = 0
    tick = []
    samples = []  # only with keep: (t, [(v, flag, z)] per channel) as the firmware computed them
    t = start
    while t < end:
        flag, so2, o2, flow = scen(t, rnd)
        flow = flow_override(t, flow)
        dev.flag = flag
        dev.values = [so2, o2, flow] if flag != "B" else [None, None, None]
        st.sample()
        if keep:
            samples.append((t, [(st.v[i], st.f[i], st.z[i]) for i in range(3)]))
        if changes and t in changes:
            ss.set_min_interval(changes[t], t)  # HJ 212 1064 arriving just before this tick
        ss.add_tick(t, tick)
        for rec in tick:
            out[n] = rec
            n += 1
        del tick[:]
        if n % 256 == 255:
            gc.collect()  # as the firmware does at safe points: keeps long-lived records packed
        t += sample_s
    return out[:n], samples


def ref_samples(sample_s, start, end, scen, seed=1):
    """The scenario's samples as the rule says they should be, independently of the firmware."""
    rnd = Lcg(seed)
    t = start
    while t < end:
        flag, so2, o2, flow = scen(t, rnd)
        yield t, ref_sample(flag, so2, o2, flow_override(t, flow))
        t += sample_s


def ref_sample(dev_flag, so2, o2, flow, rmax=(500, 25, 100)):
    """The expected (v, flag, z) per channel of one tick, written out directly."""
    if dev_flag == "B":
        return [(None, "B", None)] * 3
    res = []
    for v, r in zip((so2, o2, flow), rmax):
        res.append((v, "T" if dev_flag == "N" and v > r else dev_flag))
    z = so2 * 15.0 / (21.0 - o2) if o2 < 19.0 else None
    return [(res[0][0], res[0][1], z), (res[1][0], res[1][1], None), (res[2][0], res[2][1], None)]


def reference(samples, length, sample_s, frac, last_end):
    """Records of every closed period, computed from the samples of one period at a time."""
    recs = []
    rows = []
    cur = None
    for t, chans in samples:
        start = t - (t + BJ) % length
        if start != cur:
            if rows:
                recs.append((cur, period(rows, length, sample_s, frac)))
            cur = start
            rows = []
        rows.append(chans)
    if rows and cur + length <= last_end:
        recs.append((cur, period(rows, length, sample_s, frac)))
    return recs


def period(rows, length, sample_s, frac):
    expected = length // sample_s
    values = []
    for i in range(3):
        valid = [r[i] for r in rows if r[i][0] is not None and r[i][1] in "NS"]
        counts = {}
        for r in rows:
            if not (r[i][0] is not None and r[i][1] in "NS"):
                counts[r[i][1]] = counts.get(r[i][1], 0) + 1
        counts["B"] = counts.get("B", 0) + expected - len(rows)
        if len(valid) >= frac * expected:
            flag = "N"
        else:
            flag = None
            for c in RANK:
                if counts.get(c, 0) and (flag is None or counts[c] > counts[flag]):
                    flag = c
        d = {"Flag": flag}
        use = valid or [r[i] for r in rows if r[i][0] is not None]
        if use:
            vs = [u[0] for u in use]
            d["Min"] = min(vs)
            d["Max"] = max(vs)
            d["Avg"] = sum(vs) / len(vs)
        cou = 0.0
        for r in rows:
            q = r[2][0] if r[2][0] is not None and r[2][1] in "NS" else None
            if q is not None and r[i][0] is not None and r[i][1] in "NS":
                cou += r[i][0] * sample_s if i == 2 else r[i][0] * q * sample_s * 1e-6
        if i != 1:
            d["Cou"] = cou
        if i == 0:
            zv = [u[2] for u in valid if u[2] is not None]
            if not valid:
                zv = [u[2] for u in use if u[2] is not None]
            if zv:
                d["ZsMin"] = min(zv)
                d["ZsMax"] = max(zv)
                d["ZsAvg"] = sum(zv) / len(zv)
        values.append(d)
    return values


def check(out, kind, ref):
    got = [r for r in out if r["kind"] == kind]
    assert [r["t"] for r in got] == [s for s, _ in ref], (kind, [r["t"] for r in got], [s for s, _ in ref])
    for rec, (start, values) in zip(got, ref):
        assert [c for c, _ in rec["values"]] == ["a21026", "a19001", "a00000"]
        for (code, d), want in zip(rec["values"], values):
            assert sorted(d) == sorted(want), (kind, start, code, d, want)
            for k in want:
                if k == "Flag":
                    assert d[k] == want[k], (kind, start, code, d, want)
                else:
                    assert approx(d[k], want[k], rel=1e-9, abs_tol=1e-12), (kind, start, code, k, d[k], want[k])


def test_channel_samples_match_hand_rule():
    start = DAY0 + 10 * 3600
    end = start + 700
    out, samples = run(1, 1, start, end, scenario_1s, seed=3, keep=True)
    for (t, chans), (t2, want) in zip(samples, ref_samples(1, start, end, scenario_1s, seed=3)):
        assert t == t2
        for got, w in zip(chans, want):
            assert got[0] == w[0] and got[1] == w[1], (t, got, w)
            assert (got[2] is None) == (w[2] is None) and (w[2] is None or approx(got[2], w[2])), (t, got, w)


def test_minute_and_hour_from_samples_1s():
    start = DAY0 + 10 * 3600 - 7 * 60 - 25  # 09:52:35: the first minute and hour are partial
    end = DAY0 + 12 * 3600 + 30
    out, _ = run(1, 1, start, end, scenario_1s)
    check(out, "min", reference(ref_samples(1, start, end, scenario_1s), 60, 1, 0.75, end))
    check(out, "hour", reference(ref_samples(1, start, end, scenario_1s), 3600, 1, 0.75, end))
    mins = [r for r in out if r["kind"] == "min"]
    flags = {}
    for r in mins:
        flags[(r["t"] - DAY0) // 60 % 60] = r["values"][0][1]["Flag"]
    assert flags[5] == "C" and flags[6] == "D" and flags[7] == "T" and flags[8] == "N" and flags[9] == "N"
    assert [r["values"][2][1]["Flag"] for r in mins if (r["t"] - DAY0) // 60 % 60 == 10] == ["T", "T"]
    assert mins[0]["values"][0][1]["Flag"] == "B" and mins[0]["t"] == DAY0 + 9 * 3600 + 52 * 60
    # a full hour's Cou is the sum of its minutes' Cou
    hour = [r for r in out if r["kind"] == "hour" and r["t"] == DAY0 + 10 * 3600][0]
    mc = sum(r["values"][0][1]["Cou"] for r in mins if DAY0 + 10 * 3600 <= r["t"] < DAY0 + 11 * 3600)
    assert approx(hour["values"][0][1]["Cou"], mc, rel=1e-9)
    # records of one tick: minute before hour
    kinds = [r["kind"] for r in out]
    i = kinds.index("hour")
    assert kinds[i - 1] == "min" and out[i - 1]["t"] == out[i]["t"] + 3600 - 60


def test_interval_15_min():
    start = DAY0 + 10 * 3600
    end = DAY0 + 11 * 3600 + 900
    out, _ = run(1, 15, start, end, scenario_1s)
    check(out, "min", reference(ref_samples(1, start, end, scenario_1s), 900, 1, 0.75, end))
    assert [r["t"] - start for r in out if r["kind"] == "min"] == [0, 900, 1800, 2700, 3600]


def scenario_60s(t, rnd):
    h = (t - DAY0) // 3600 % 24
    so2 = 40.0 + (t // 60 % 50)
    r = rnd.next(10)
    if 3 <= h < 8:
        return "M", so2, 9.0, 20.0  # 5 h maintenance + 1 h fault: exactly 75 % valid, the day is N
    if h == 20:
        return "D", so2, 9.0, 20.0
    return "N", so2, 9.0 + r * 0.1, 20.0 + r


def test_days_in_beijing_time_60s():
    start = DAY0 - 5 * 3600  # 19:00 the day before: that day is partial
    end = DAY0 + 2 * 86400 + 120
    out, _ = run(60, 1, start, end, scenario_60s)
    check(out, "min", reference(ref_samples(60, start, end, scenario_60s), 60, 60, 0.75, end))
    check(out, "hour", reference(ref_samples(60, start, end, scenario_60s), 3600, 60, 0.75, end))
    days = reference(ref_samples(60, start, end, scenario_60s), 86400, 60, 0.75, end)
    check(out, "day", days)
    assert [s for s, _ in days] == [DAY0 - 86400, DAY0, DAY0 + 86400]
    assert [v[0]["Flag"] for _, v in days] == ["B", "N", "N"]


def reference_bounds(samples, bounds, sample_s, frac):
    """Records of the periods [bounds[i], bounds[i + 1]), each judged by its own length."""
    rows = [[] for _ in bounds[:-1]]
    for t, chans in samples:
        for i in range(len(bounds) - 1):
            if bounds[i] <= t < bounds[i + 1]:
                rows[i].append(chans)
    return [(bounds[i], period(rows[i], bounds[i + 1] - bounds[i], sample_s, frac)) for i in range(len(bounds) - 1)]


def test_min_interval_change_ends_the_running_period_at_the_new_boundary():
    start = DAY0 + 10 * 3600
    end = DAY0 + 11 * 3600 + 30
    # 5 min; at 10:03:10 -> 2 min (the running period ends at 10:04, shorter); at 10:21:30 -> 15 min (the
    # running 10:20 period ends at 10:30, longer than 2 min); the hour must still hold every sample once.
    changes = {start + 190: 2, start + 1290: 15}
    out, _ = run(1, 5, start, end, scenario_1s, changes=changes)
    m = 60
    bounds = [start, start + 4 * m] + [start + k * m for k in range(6, 21, 2)] + [start + 30 * m, start + 45 * m,
                                                                                 start + 60 * m]
    check(out, "min", reference_bounds(ref_samples(1, start, end, scenario_1s), bounds, 1, 0.75))
    check(out, "hour", reference(ref_samples(1, start, end, scenario_1s), 3600, 1, 0.75, end))
