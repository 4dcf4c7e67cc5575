"""Rules engine scenarios with known truth (firmware/app/rules): limits and bypass, positive and negative.

Truth is derived by hand from the synthetic series (window arithmetic written out in each test), not
from the engine. Events must land within one sampling interval of the truth."""

import sys

sys.path.insert(0, "firmware")
sys.path.insert(0, "tests/firmware")  # rules_scenario

from app.rules import Rules, bypass, limits  # noqa: F401 (compiled first, before the heap fragments)
from portable import approx
from rules_scenario import T0, S, _engine, _run, _states

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "128k"  # compiling this module from source; the device loads .mpy

# --- limits ------------------------------------------------------------------------------------

NOX = {"name": "nox", "type": "limit", "channel": "boiler/a21002", "limit": 200, "zs": True,
       "window": "rolling", "minutes": 15, "warn_fraction": 0.8}


def _nox_series(high_flag="N", zs_none=False):
    # Zs 100 except minutes 30..39 where it is 300 (raw value deliberately different: Zs is judged).
    def fn(t):
        m = (t - T0) // 60
        hi = 30 <= m <= 39
        z = 300.0 if hi else 100.0
        flag = high_flag if hi else "N"
        return {"boiler": {"a21002": (z / 2, flag, None if zs_none and hi else z)}}, {}
    return fn


def test_limit_rolling_start_warn_end_with_peak():
    eng, ev = _engine([dict(NOX)])
    _run(eng, T0, T0 + 70 * 60, _nox_series())
    # Window ending at minute m holds k high minutes: mean = (1500 + 200 k) / 15.
    # warn (>= 160) first at k = 5 (m = 35); exceed (> 200) at k = 8 (m = 38); k <= 7 again at m = 48.
    assert _states(ev) == [("warn", T0 + 35 * 60), ("start", T0 + 38 * 60), ("end", T0 + 48 * 60)], _states(ev)
    start = ev[1]["evidence"]
    assert approx(start["value"], (1500 + 200 * 8) / 15.0, rel=1e-5)
    assert start["from"] == T0 + 23 * 60 and start["to"] == T0 + 38 * 60
    assert start["samples"] == 15 * 60 // S
    end = ev[2]["evidence"]
    assert approx(end["peak"], (1500 + 200 * 10) / 15.0, rel=1e-5)  # k = 10 first at m = 40
    assert end["peak_t"] == T0 + 40 * 60 and end["start"] == T0 + 38 * 60
    assert approx(end["value"], (1500 + 200 * 7) / 15.0, rel=1e-5)
    assert ev[1]["station"] == "boiler" and ev[1]["code"] == "a21002"


def test_limit_excludes_maintenance_calibration_fault_and_startup():
    for flag in ("M", "C", "D", "F"):
        eng, ev = _engine([dict(NOX)])
        _run(eng, T0, T0 + 70 * 60, _nox_series(high_flag=flag))
        assert ev == [], (flag, _states(ev))
    # start-up: O2 near air, so no converted value exists although the raw value is high
    eng, ev = _engine([dict(NOX)])
    _run(eng, T0, T0 + 70 * 60, _nox_series(zs_none=True))
    assert ev == []


def test_limit_slow_load_change_and_comm_gap_no_alarm():
    eng, ev = _engine([dict(NOX)])

    def ramp(t):  # 100 -> 150 over two hours: below the warning level (160) all the time
        return {"boiler": {"a21002": (0.0, "N", 100.0 + 50.0 * (t - T0) / 7200.0)}}, {}

    _run(eng, T0, T0 + 7200, ramp)
    assert ev == []

    def gap(t):  # instrument silent (B, no value) for 20 min between normal data
        m = (t - T0) // 60
        return {"boiler": {"a21002": (None, "B", None) if 20 <= m < 40 else (0.0, "N", 120.0)}}, {}

    eng, ev = _engine([dict(NOX)])
    _run(eng, T0, T0 + 3600, gap)
    assert ev == []


def test_limit_hour_records_net_background_cap_and_daily_count():
    rule = {"name": "pm10", "type": "limit", "channel": "dust/a34002", "limit": 0.080, "window": "hour",
            "background_cap": 0.150, "daily_max": 2}
    eng, ev = _engine([rule])
    eng.set_background("dust", "a34002", 0.200)  # county mean above the cap: 0.150 is subtracted
    site = [0.20] * 24
    for h in (3, 4, 8, 12):
        site[h] = 0.25  # net 0.25 - 0.15 = 0.10 > 0.08
    flags = ["N"] * 24
    flags[12] = "M"  # maintenance hour: not judged, not counted
    for h in range(24):
        rec = {"kind": "hour", "station": "dust", "t": T0 + h * 3600,
               "values": [["a34002", {"Avg": site[h], "Flag": flags[h]}]]}
        eng.period("hour", T0 + (h + 1) * 3600, rec)
    # exceedance hours 3-4 (one alarm, ends when hour 5 closes normal) and 8 (second): 3 counted hours
    # > 2 allowed -> count at hour 8's close; hour 12 (M) is neither judged nor counted
    got = _states(ev)
    assert got == [("start", T0 + 4 * 3600), ("end", T0 + 6 * 3600), ("start", T0 + 9 * 3600),
                   ("count", T0 + 9 * 3600), ("end", T0 + 10 * 3600)], got
    s = ev[0]["evidence"]
    assert approx(s["background"], 0.150) and approx(s["value"], 0.10, rel=1e-6) and s["from"] == T0 + 3 * 3600
    c = ev[3]["evidence"]
    assert c["count"] == 3 and c["max"] == 2 and [w[0] for w in c["windows"]] == [
        T0 + 4 * 3600, T0 + 5 * 3600, T0 + 9 * 3600]
    # without any background (none pushed, no default) a net limit is not judged at all
    eng2, ev2 = _engine([dict(rule)])
    rec = {"kind": "hour", "station": "dust", "t": T0, "values": [["a34002", {"Avg": 0.5, "Flag": "N"}]]}
    eng2.period("hour", T0 + 3600, rec)
    assert ev2 == []


# --- bypass ------------------------------------------------------------------------------------

def test_bypass_damper_open_while_running():
    rule = {"name": "damper", "type": "bypass", "kind": "damper", "input": "damper.di1",
            "running": "prod.power", "running_above": 5, "for_s": 60, "clear_s": 60, "relay": "r1",
            "station": "voc"}
    eng, ev = _engine([rule], sample_s=1)
    seen_relay = []

    def fn(t):
        s = t - T0
        di = 1 if (600 <= s < 1200 or 2000 <= s < 2030) else 0  # 2nd opening: 30 s blip
        if 3000 <= s < 3600:
            di = 1  # open while production is off: not a bypass
        power = 0.0 if s >= 2900 else 50.0
        return {}, {"damper.di1": (di, "N"), "prod.power": (power, "N")}

    t = T0
    while t < T0 + 3700:
        v, p = fn(t)
        eng.tick(t, v, p)
        if t == T0 + 900:
            seen_relay.append(eng.relays())
        t += 1
    assert _states(ev) == [("start", T0 + 660), ("end", T0 + 1260)], _states(ev)
    assert ev[0]["evidence"] == {"damper": 1, "running": 50.0} and ev[0]["relay"] == "r1"
    assert [e["station"] for e in ev] == ["voc", "voc"]  # reported by the voc station's links only
    assert ev[1]["evidence"]["start"] == T0 + 660 and ev[1]["evidence"]["duration_s"] == 600
    assert seen_relay == [{"r1": True}] and eng.relays() == {"r1": False}


def test_bypass_hot_duct_flow_and_main_flow_collapse():
    rules = [
        {"name": "hot", "type": "bypass", "kind": "temperature", "input": "byp.temp", "ambient": "wx.temp",
         "delta": 15, "for_s": 300, "clear_s": 60},
        {"name": "bflow", "type": "bypass", "kind": "flow", "input": "byp.flow", "above": 1.0, "for_s": 60,
         "clear_s": 60},
        {"name": "main", "type": "bypass", "kind": "main_flow", "input": "boiler/a00000", "below": 5.0,
         "running": "prod.power", "running_above": 10, "for_s": 120, "clear_s": 60},
    ]
    eng, ev = _engine(rules)

    def fn(t):
        s = t - T0
        amb = 10.0 + s / 3600.0  # ambient drifts: threshold follows it
        temp = amb + (30.0 if 1000 <= s < 1600 else 2.0)
        bflow = 3.0 if 4000 <= s < 4200 else 0.1
        power = 0.0 if s >= 8000 else 60.0
        flow = 2.0 if (6000 <= s < 6500 or s >= 8000) else 20.0  # 8000: shut-down, flow falls with power
        return ({"boiler": {"a00000": (flow, "N")}},
                {"byp.temp": (temp, "N"), "wx.temp": (amb, "N"), "byp.flow": (bflow, "N"), "prod.power": (power, "N")})

    _run(eng, T0, T0 + 9000, fn)
    hot = _states(ev, "hot")
    assert hot == [("start", T0 + 1300), ("end", T0 + 1660)], hot
    assert ev[0]["station"] is None  # no station named: every link reports it
    e = ev[0]["evidence"]
    assert approx(e["temp"] - e["ambient"], 30.0, rel=1e-6) and approx(e["threshold"], e["ambient"] + 15, rel=1e-6)
    assert _states(ev, "bflow") == [("start", T0 + 4060), ("end", T0 + 4260)]
    main = _states(ev, "main")
    assert main == [("start", T0 + 6120), ("end", T0 + 6560)], main
    me = [x for x in ev if x["rule"] == "main"][0]["evidence"]
    assert me["flow"] == 2.0 and me["running"] == 60.0 and me["threshold"] == 5.0
