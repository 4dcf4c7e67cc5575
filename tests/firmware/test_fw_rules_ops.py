"""Rules engine scenarios with known truth (firmware/app/rules): treatment power, emergency response,
data quality; positive and negative.

Truth is derived by hand from the synthetic series (window arithmetic written out in each test), not
from the engine. Events must land within one sampling interval of the truth."""

import sys

sys.path.insert(0, "firmware")
sys.path.insert(0, "tests/firmware")  # rules_scenario

from app.rules import Rules, dilution, emergency, order, power, quality  # noqa: F401 (compiled first, before the heap fragments)
from rules_scenario import T0, S, _engine, _run, _states

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "128k"  # compiling this module from source; the device loads .mpy

# --- treatment-facility power ------------------------------------------------------------------

PW = {"production": "prod.power", "treatment": "fan.power", "on_kw": 10, "idle_kw": 2}


def _pw(name, kind, **kw):
    r = {"name": name, "type": "power", "kind": kind}
    r.update(PW)
    r.update(kw)
    return r


def test_power_treatment_not_running_and_derate():
    eng, ev = _engine([_pw("off", "not_running", for_s=300, clear_s=60),
                       _pw("derate", "derate", rated_kw=30, fraction=0.5, for_s=300, clear_s=60)])

    def fn(t):
        s = t - T0
        prod = 80.0 if 100 <= s < 9000 else 0.0
        fan = 20.0 if 130 <= s < 9000 else 0.0  # starts 30 s after production (start-up transient)
        if 1000 <= s < 2000:
            fan = 0.5
        elif 4000 <= s < 5000:
            fan = 10.0  # running but under 0.5 x 30 kW
        if s >= 8970:
            fan = 0.0  # treatment stops 30 s before production at shut-down
        return {}, {"prod.power": (prod, "N"), "fan.power": (fan, "N")}

    _run(eng, T0, T0 + 10000, fn)
    assert _states(ev, "off") == [("start", T0 + 1300), ("end", T0 + 2060)], _states(ev, "off")
    assert _states(ev, "derate") == [("start", T0 + 4300), ("end", T0 + 5060)], _states(ev, "derate")
    e = ev[0]["evidence"]
    assert e == {"production_kw": 80.0, "treatment_kw": 0.5, "idle_kw": 2}
    d = [x for x in ev if x["rule"] == "derate"][0]["evidence"]
    assert d["treatment_kw"] == 10.0 and d["min_kw"] == 15.0


def _order_run(t_fan_on, t_prod_on, t_prod_off, t_fan_off, blip=None):
    eng, ev = _engine([_pw("order", "order", lead_s=300, lag_s=300, debounce_s=10)])

    def fn(t):
        s = t - T0
        prod = 50.0 if t_prod_on <= s < t_prod_off else 0.0
        if blip and blip[0] <= s < blip[1]:
            prod = 50.0
        fan = 20.0 if t_fan_on <= s < t_fan_off else 0.0
        return {}, {"prod.power": (prod, "N"), "fan.power": (fan, "N")}

    _run(eng, T0, T0 + 8000, fn)
    return ev


def test_power_start_and_stop_order():
    ev = _order_run(1000, 1100, 5000, 5100)
    assert _states(ev) == [("event", T0 + 1110), ("event", T0 + 5110)], _states(ev)
    a, b = ev[0]["evidence"], ev[1]["evidence"]
    assert a["production_start"] == T0 + 1100 and a["treatment_start"] == T0 + 1000 and a["lead_s"] == 100
    assert b["treatment_stop"] == T0 + 5100 and b["production_stop"] == T0 + 5000 and b["lag_s"] == 100
    # correct order (400 s lead, 400 s lag) and a 5 s production blip before the treatment runs: nothing
    assert _order_run(1000, 1400, 5000, 5400, blip=(500, 505)) == []


# --- emergency response ------------------------------------------------------------------------

def test_emergency_level_from_platform_and_schedule():
    rule = {"name": "emergency", "type": "emergency", "for_s": 60,
            "lines": {"kiln": {"point": "kiln.power", "on_kw": 5}, "mill": {"point": "mill.power", "on_kw": 5}},
            "levels": {"orange": {"kiln": 0}, "red": {"kiln": 0, "mill": 0}}}
    # schedule: red from 02:00 to 03:00 local
    alert = {"level": "none", "schedule": [{"from": "20240101020000", "to": "20240101030000", "level": "red"}]}
    eng, ev = _engine([rule], alert=alert)

    def fn(t):
        s = t - T0
        kiln = 100.0 if s < 1500 or s >= 5000 else 0.0
        mill = 50.0  # allowed at orange; must be off at red
        return {}, {"kiln.power": (kiln, "N"), "mill.power": (mill, "N")}

    _run(eng, T0, T0 + 1000, fn)
    eng.set_alert_level("orange", "platform", T0 + 1000)
    _run(eng, T0 + 1000, T0 + 3000, fn)
    eng.set_alert_level("none", "platform", T0 + 3000)
    _run(eng, T0 + 3000, T0 + 12000, fn)
    got = [(e["state"], e["t"], e.get("key")) for e in ev]
    # the level changes first in a tick, then the lines are judged against it
    assert got == [
        ("level", T0 + 1000, None),
        ("start", T0 + 1060, "emergency/kiln"),
        ("end", T0 + 1500, "emergency/kiln"),
        ("level", T0 + 3000, None),
        ("level", T0 + 7200, None),  # schedule: red
        ("start", T0 + 7260, "emergency/kiln"),
        ("start", T0 + 7260, "emergency/mill"),
        ("level", T0 + 10800, None),  # schedule over: none
        ("end", T0 + 10800, "emergency/kiln"),
        ("end", T0 + 10800, "emergency/mill"),
    ], got
    assert got[0][0] == "level" and ev[0]["evidence"] == {"level": "orange", "from": "none", "source": "platform"}
    s = ev[1]["evidence"]
    assert s["line"] == "kiln" and s["power_kw"] == 100.0 and s["allowed_kw"] == 0 and s["level"] == "orange"
    starts = [(e["t"], e["evidence"]["line"]) for e in ev if e["state"] == "start"]
    assert starts == [(T0 + 1060, "kiln"), (T0 + 7260, "kiln"), (T0 + 7260, "mill")], starts
    ends = [(e["t"], e["evidence"]["line"]) for e in ev if e["state"] == "end"]
    assert ends == [(T0 + 1500, "kiln"), (T0 + 10800, "kiln"), (T0 + 10800, "mill")], ends
    levels = [(e["t"], e["evidence"]["level"]) for e in ev if e["state"] == "level"]
    assert levels == [(T0 + 1000, "orange"), (T0 + 3000, "none"), (T0 + 7200, "red"), (T0 + 10800, "none")]


# --- data quality ------------------------------------------------------------------------------

def _noise(t):
    return ((t * 7919) % 13) / 13.0 - 0.5  # deterministic, varies every tick by up to +-0.5


def test_quality_flatline_and_zero():
    rules = [{"name": "flat", "type": "quality", "kind": "flatline", "channel": "voc/a24088", "tolerance": 0.01,
              "running": "prod.power", "running_above": 10, "for_s": 1800, "mark": "D"},
             {"name": "zero", "type": "quality", "kind": "zero", "channel": "voc/a24088", "zero_max": 0.05,
              "running": "prod.power", "running_above": 10, "for_s": 300}]
    eng, ev = _engine(rules)
    marks = []

    def fn(t):
        s = t - T0
        v = 20.0 + 5 * _noise(t)
        flag = "N"
        if 1000 <= s < 3400:
            v = 17.25  # stuck
        if 4000 <= s < 7000:
            v = 12.5  # constant but the line is stopped: legitimate
        if 8000 <= s < 11000:
            v, flag = 30.0, "C"  # calibration gas held: legitimate
        if 12000 <= s < 12600:
            v = 0.0  # zero while running
        kw = 0.0 if 3900 <= s < 7100 else 40.0
        return {"voc": {"a24088": (v, flag)}}, {"prod.power": (kw, "N")}

    t = T0
    while t < T0 + 13000:
        v, p = fn(t)
        eng.tick(t, v, p)
        if t == T0 + 3000:
            marks.append(eng.marks())
        t += S
    assert _states(ev, "flat") == [("start", T0 + 2800), ("end", T0 + 3400)], _states(ev, "flat")
    assert ev[0]["evidence"]["value"] == 17.25 and ev[0]["evidence"]["since"] == T0 + 1000
    assert marks == [{"voc": {"a24088": "D"}}] and eng.marks() == {}
    assert _states(ev, "zero") == [("start", T0 + 12300), ("end", T0 + 12600)], _states(ev, "zero")


def _minute_means(fn, m):
    o = c = f = 0.0
    n = 0
    t = T0 + m * 60
    while t < T0 + (m + 1) * 60:
        a, b, d = fn(t)
        o, c, f, n = o + a, c + b, f + d, n + 1
        t += S
    return o / n, c / n, f / n


def test_quality_dilution_positive_and_slow_load_change():
    rule = {"name": "dil", "type": "quality", "kind": "dilution", "channel": "boiler/a21002", "o2": "boiler/a19001",
            "flow": "boiler/a00000", "window_min": 10, "o2_rise": 2.0, "conc_drop": 0.3, "flow_rise": 0.2}

    def dilute(t):  # air let in between minutes 30 and 35, kept until minute 60
        x = min(max((t - T0 - 1800) / 300.0, 0.0), 1.0) if t - T0 < 3600 else 0.0
        return 6.0 + 6.0 * x, 100.0 - 50.0 * x, 10.0 + 5.0 * x

    def load_down(t):  # legitimate: O2 up, concentration down, but flow DOWN (less fuel and air)
        x = (t - T0) / 7200.0
        return 6.0 + 6.0 * x, 100.0 - 50.0 * x, 10.0 - 4.0 * x

    for fn, positive in ((dilute, True), (load_down, False)):
        eng, ev = _engine([dict(rule)])

        def tick(t, fn=fn):
            o, c, f = fn(t)
            return {"boiler": {"a19001": (o, "N"), "a21002": (c, "N"), "a00000": (f, "N")}}, {}

        _run(eng, T0, T0 + 7200, tick)
        # truth: first minute boundary m where means of minute m-1 vs minute m-11 meet all three tests
        truth = []
        prev = False
        for m in range(11, 120):
            o1, c1, f1 = _minute_means(fn, m - 1)
            o0, c0, f0 = _minute_means(fn, m - 11)
            hit = o1 - o0 >= 2.0 and c1 <= c0 * 0.7 and f1 >= f0 * 1.2
            if hit != prev:
                truth.append(("start" if hit else "end", T0 + m * 60))
            prev = hit
        assert _states(ev) == truth, (_states(ev), truth)
        assert (len(truth) > 0) == positive
        if positive:
            e = ev[0]["evidence"]
            assert e["o2_to"] - e["o2_from"] >= 2.0 and e["flow_to"] > e["flow_from"]


def test_quality_sudden_offset():
    rule = {"name": "off", "type": "quality", "kind": "offset", "channel": "boiler/a21002", "step": 20, "band": 5,
            "hold_s": 300}

    def run(fn):
        eng, ev = _engine([dict(rule)])
        _run(eng, T0, T0 + 7200, lambda t: ({"boiler": {"a21002": fn(t)}}, {}))
        return ev

    ev = run(lambda t: (100.0 + _noise(t) + (30.0 if t - T0 >= 2000 else 0.0), "N"))
    assert _states(ev) == [("event", T0 + 2300)], _states(ev)
    e = ev[0]["evidence"]
    assert e["step_t"] == T0 + 2000 and abs(e["before"] - 100.0) <= 0.5 and abs(e["after"] - 130.0) <= 0.5
    # spike of 20 s, ramp 100 -> 160 over the hour, step hidden inside a calibration (C) period: none
    assert run(lambda t: (100.0 + (30.0 if 2000 <= t - T0 < 2020 else 0.0), "N")) == []
    assert run(lambda t: (100.0 + 60.0 * (t - T0) / 3600.0, "N")) == []
    assert run(lambda t: (100.0 + (30.0 if t - T0 >= 2000 else 0.0), "C" if 1900 <= t - T0 < 2400 else "N")) == []


