"""Acceptance of the rules engine on the whole emulated chain: instruments -> firmware (rules, store,
uplink) -> platform. For each rule family a short scenario with constant, noise-free values gives an exact
truth, derived by hand below from firmware/RULES.md (debounce, rolling windows judged at minute
boundaries from the samples, dilution on minute means) and firmware/CONFIG.md (NOx = NO x 46/30 + NO2,
Zs = C x (21 - 3.5) / (21 - O2), ug/m3 / 1000). The platform must receive each event as a CN 3020 upload
(i11001-Info log text, i12003-Info 1 start / 0 end) whose DataTime is within one sampling interval of the
truth, with the evidence values in the text; negative scenarios must raise nothing; events raised while
the platform is down arrive after it comes back.

Sites: sites/rules-{boiler,voc,dust,all}.json (sample_s 10, so a high time scale keeps up);
scenarios: scenarios/rules_*.json (their descriptions state the same truths).
"""

import re

from hil_helpers import info_events, load_scenario, load_site, run_simulation

SCALE = 100.0  # one instrument per bus at 115200 baud keeps every poll inside its sim second
SCALE_POWER = 45.0  # the SDM630 template takes five transactions per poll
S = 10  # sample_s of the rules-* sites: the allowed timing error
REL = 2e-3  # values pass through f32 (rolling sums) and 4-decimal log text

# Hand-derived values (see the scenario descriptions).
ZS = 17.5 / 12.5  # O2 8.5 %, reference 3.5 %
NOX_LOW = (60 * 46 / 30 + 6) * ZS  # 137.2
NOX_HIGH = (120 * 46 / 30 + 6) * ZS  # 266.0
BOILER = ("cems",)  # NO, NO2 and O2 (for Zs) all from the analyser (sites/rules-boiler.json); flue gives flow only


def _approx(a, b):
    return abs(a - b) <= REL * max(abs(b), 1e-9) + 1e-4


def _window_ok(v, sim, devices, start, end, high_from, high_to, high, low, minutes=5):
    """v is the mean of the rolling window of samples in [end - minutes, end) (offsets from `start`), at
    `high` in [high_from, high_to) and `low` elsewhere, leaving out the samples of `devices` the logger
    reported lost (Simulation.lost_samples: at this time scale a late poll is flagged B, not averaged)."""
    lost = {t - start for dev, t in sim.lost_samples() if dev in devices}
    vals = [high if high_from <= k < high_to else low for k in range(end - 60 * minutes, end, S) if k not in lost]
    return bool(vals) and _approx(v, sum(vals) / len(vals))


def _at_edge(dt, sim, devices, start, after, high_from, high_to, high, low, limit, ends, minutes=5, eps=1e-3):
    """dt is within a sample of the first window end (minute grid, from `after`) whose mean, leaving out the
    samples of `devices` the logger reported lost, is above `limit` (or at or below it, when `ends`). A
    sample lost on a loaded host moves that edge; a mean within `eps` of the limit may go either way (f32)."""
    lost = {t - start for dev, t in sim.lost_samples() if dev in devices}

    def first(lim):
        for end in range(after, after + 3600, 60):
            vals = [high if high_from <= k < high_to else low for k in range(end - 60 * minutes, end, S)
                    if k not in lost]
            if vals and ((sum(vals) / len(vals) <= lim) if ends else (sum(vals) / len(vals) > lim)):
                return end
        return None

    lo, hi = (first(limit + eps), first(limit - eps)) if ends else (first(limit - eps), first(limit + eps))
    return lo is not None and hi is not None and lo - S <= dt <= hi + S


def _rule_events(events, name):
    pat = re.compile(r"(^|\s)%s( |:)" % re.escape(name))
    return [e for e in events if pat.search(e["text"])]


def _one(events, name, alarm, start):
    """The single event of rule `name` with i12003 `alarm`; its time relative to the scenario start."""
    found = [e for e in _rule_events(events, name) if e["alarm"] == alarm]
    assert len(found) == 1, (name, alarm, [(e["t"] - start, e["text"]) for e in _rule_events(events, name)])
    ev = found[0]
    assert ev["crc_ok"] is not False
    return ev, ev["t"] - start


def _pairs(text):
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?\d+(?:\.\d+)?)", text)}


def _limit_start(text):
    m = re.search(r"exceeded: .*?(-?\d+(?:\.\d+)?) > (\d+(?:\.\d+)?) (\S+)$", text)
    assert m, text
    return float(m.group(1)), float(m.group(2)), m.group(3)


def _limit_end(text):
    m = re.search(r"exceedance ended: .*?(-?\d+(?:\.\d+)?), peak (-?\d+(?:\.\d+)?) (\S+)$", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


def _alarms_only_from(events, names):
    """No start/end upload of any rule other than `names` (e.g. a stray exceedance)."""
    stray = [e["text"] for e in events if e["alarm"] in ("1", "0")
             and not any(_rule_events([e], n) for n in names)]
    assert not stray, stray


def _ended(names, start):
    def pred(sim):
        evs = info_events(sim)
        return all(any(e["alarm"] == "0" for e in _rule_events(evs, n)) for n in names)
    return pred


def test_boiler_nox_limit_and_dilution(tmp_path):
    scn = load_scenario("rules_boiler")
    sim = run_simulation(tmp_path / "boiler", load_site("rules-boiler"), scn, 2280, SCALE,
                         wait_for=_ended(["boiler-nox", "boiler-dilution"], scn.start))
    evs = info_events(sim)
    _alarms_only_from(evs, ["boiler-nox", "boiler-dilution"])

    # NOx Zs 5-min rolling mean > 200 (GB 13271 preset at 3.5 % O2): NO high +600..+1200 s. The window ending
    # +780 s holds 18 high samples of 30: (12 x 137.2 + 18 x 266) / 30 = 214.48 (the one ending +720 s: 188.7).
    ev, dt = _one(evs, "boiler-nox", "1", scn.start)
    assert _at_edge(dt, sim, BOILER, scn.start, 600, 600, 1200, NOX_HIGH, NOX_LOW, 200, False), dt  # 780
    v, lim, unit = _limit_start(ev["text"])
    assert _window_ok(v, sim, BOILER, scn.start, 780, 600, 1200, NOX_HIGH, NOX_LOW) and lim == 200 and unit == "mg/m3"
    assert ev["polid"] == "a21002"
    # Ends with the first window at or below 200: the one ending +1380 s (12 high samples): 188.72, peak 266.
    ev, dt = _one(evs, "boiler-nox", "0", scn.start)
    assert _at_edge(dt, sim, BOILER, scn.start, 1200, 600, 1200, NOX_HIGH, NOX_LOW, 200, True), dt  # 1380
    v, peak = _limit_end(ev["text"])
    assert _window_ok(v, sim, BOILER, scn.start, 1380, 600, 1200, NOX_HIGH, NOX_LOW) and _approx(peak, NOX_HIGH)

    # Dilution from +1800 s: minute means now vs five minutes before; first at the +1860 s boundary, over when
    # the older minute is diluted too (+2160 s). Evidence: O2 8.5 -> 13.5, raw NOx 98 -> 58.8, flow 22 -> 30.
    ev, dt = _one(evs, "boiler-dilution", "1", scn.start)
    assert abs(dt - 1860) <= S, dt
    m = re.search(r"O2 (\S+)->(\S+) %, a21002 (\S+)->(\S+), flow (\S+)->(\S+)$", ev["text"])
    assert m, ev["text"]
    got = [float(x) for x in m.groups()]
    for a, b in zip(got, [8.5, 13.5, 98.0, 58.8, 22.0, 30.0]):
        assert _approx(a, b), (got, ev["text"])
    _, dt = _one(evs, "boiler-dilution", "0", scn.start)
    assert abs(dt - 2160) <= S, dt


def test_voc_line_bypass_treatment_power_and_emergency(tmp_path):
    scn = load_scenario("rules_voc")
    sim = run_simulation(tmp_path / "voc", load_site("rules-voc"), scn, 1260, SCALE_POWER,
                         wait_for=_ended(["voc-bypass", "voc-fan-off", "voc-emergency"], scn.start))
    evs = info_events(sim)
    _alarms_only_from(evs, ["voc-bypass", "voc-fan-off", "voc-emergency"])
    _check_voc_events(evs, scn.start)

    # The alert level change itself is logged (no i12003 state): orange from the schedule at 00:15 (+900 s).
    lv = [e for e in evs if "alert level none -> orange" in e["text"]]
    assert len(lv) == 1 and lv[0]["alarm"] is None and abs(lv[0]["t"] - scn.start - 900) <= S, lv


def _check_voc_events(evs, start):
    # Bypass damper di2 open +120..+360 s while the line runs at 15 kW: 60 s debounce each way.
    ev, dt = _one(evs, "voc-bypass", "1", start)
    assert abs(dt - 180) <= S, dt
    ev_pairs = _pairs(ev["text"])
    assert ev_pairs.get("damper") == 1 and _approx(ev_pairs.get("running", -1), 15), ev["text"]
    _, dt = _one(evs, "voc-bypass", "0", start)
    assert abs(dt - 420) <= S, dt
    # Treatment fan 0.3 kW (< idle 1 kW) +480..+720 s with production at 15 kW: for_s 60, clear_s 60.
    ev, dt = _one(evs, "voc-fan-off", "1", start)
    assert abs(dt - 540) <= S, dt
    p = _pairs(ev["text"])
    assert _approx(p.get("production_kw", -1), 15) and _approx(p.get("treatment_kw", -1), 0.3), ev["text"]
    _, dt = _one(evs, "voc-fan-off", "0", start)
    assert abs(dt - 780) <= S, dt
    # Orange alert from +900 s, line allowed 0 kW (off), grace 60 s, for_s 60: alarm at +1020 s; the line
    # stops (0.5 kW <= its 5 kW running threshold) at +1200 s: end at once (clear_s 0).
    ev, dt = _one(evs, "voc-emergency", "1", start)
    assert abs(dt - 1020) <= S, dt
    m = re.search(r"line coating runs at (\S+) kW during orange alert \(allowed (\S+) kW\)", ev["text"])
    assert m and _approx(float(m.group(1)), 15) and float(m.group(2)) == 0, ev["text"]
    ev, dt = _one(evs, "voc-emergency", "0", start)
    assert abs(dt - 1200) <= S, dt
    assert re.search(r"complies \(orange alert, 0\.5 kW\)", ev["text"]), ev["text"]


def test_construction_dust_tsp_and_net_pm10(tmp_path):
    scn = load_scenario("rules_dust")
    sim = run_simulation(tmp_path / "dust", load_site("rules-dust"), scn, 2460, SCALE,
                         wait_for=_ended(["dust-tsp", "dust-pm10"], scn.start))
    evs = info_events(sim)
    _alarms_only_from(evs, ["dust-tsp", "dust-pm10"])
    # TSP 0.18 -> 0.9 mg/m3 +600..+1200 s, limit 0.5 on 5-min means: windows ending +780 s (0.612) .. +1380 s
    # (0.468, first at or below), peak 0.9.
    ev, dt = _one(evs, "dust-tsp", "1", scn.start)
    assert ev["polid"] == "a34001"
    assert _at_edge(dt, sim, ("dust",), scn.start, 600, 600, 1200, 0.9, 0.18, 0.5, False), dt  # 780
    v, lim, unit = _limit_start(ev["text"])
    assert _window_ok(v, sim, ("dust",), scn.start, 780, 600, 1200, 0.9, 0.18), ev["text"]
    assert lim == 0.5 and unit == "mg/m3", ev["text"]
    ev, dt = _one(evs, "dust-tsp", "0", scn.start)
    assert _at_edge(dt, sim, ("dust",), scn.start, 1200, 600, 1200, 0.9, 0.18, 0.5, True), dt  # 1380
    v, peak = _limit_end(ev["text"])
    assert _window_ok(v, sim, ("dust",), scn.start, 1380, 600, 1200, 0.9, 0.18) and _approx(peak, 0.9), ev["text"]
    # PM10 0.11 -> 0.25 mg/m3 +1500..+2100 s, net of the 0.05 default background, limit 0.08: the window ending
    # +1560 s (6 high samples) is 0.138 - 0.05 = 0.088 > 0.08; the first at or below ends +2400 s (0.06), peak 0.2.
    ev, dt = _one(evs, "dust-pm10", "1", scn.start)
    assert ev["polid"] == "a34002"
    assert _at_edge(dt, sim, ("dust",), scn.start, 1500, 1500, 2100, 0.25, 0.11, 0.13, False), dt  # 1560
    v, lim, _ = _limit_start(ev["text"])
    assert _window_ok(v + 0.05, sim, ("dust",), scn.start, 1560, 1500, 2100, 0.25, 0.11), ev["text"]
    assert _approx(lim, 0.08), ev["text"]
    assert "net" in ev["text"]
    ev, dt = _one(evs, "dust-pm10", "0", scn.start)
    assert _at_edge(dt, sim, ("dust",), scn.start, 2100, 1500, 2100, 0.25, 0.11, 0.13, True), dt  # 2400
    v, peak = _limit_end(ev["text"])
    assert _approx(v, 0.11 - 0.05) and _approx(peak, 0.25 - 0.05), ev["text"]


def test_negative_scenarios_raise_no_alarm(tmp_path):
    """Start-up and shut-down, calibration and maintenance, a silent and a faulty analyser, a slow load
    change and blips shorter than the debounce: every rule of sites/rules-all.json stays quiet."""
    scn = load_scenario("rules_negatives")
    sim = run_simulation(tmp_path / "neg", load_site("rules-all"), scn, 1800, SCALE_POWER)
    # The run must have produced data all along (a dead logger raises no alarm either).
    minutes = {r["t"] for r in sim.records(kind="min", station="boiler") if "t" in r}
    assert len(minutes) >= 1800 // 60 - 3, len(minutes)
    evs = info_events(sim)
    alarms = [(e["t"] - scn.start, e["text"]) for e in evs if e["alarm"] in ("1", "0")]
    assert alarms == []
    rule_logs = [e["text"] for e in evs if any(_rule_events([e], r["name"])
                                                for r in load_site("rules-all")["rules"]["list"])]
    assert rule_logs == []


def test_rules_keep_working_through_a_platform_outage(tmp_path):
    """The platform is down +600..+2000 s of the boiler scenario: the NOx exceedance starts (+780 s) and
    ends (+1380 s) and the dilution starts (+1860 s) meanwhile; they are stored and all arrive after the
    platform is back, with their own DataTime, once each."""
    scn = load_scenario("rules_boiler")
    down = {"center": "national", "from": 600, "to": 2000}
    sim = run_simulation(tmp_path / "outage", load_site("rules-boiler"), scn, 2280, SCALE, outages=[down],
                         wait_for=_ended(["boiler-nox", "boiler-dilution"], scn.start))
    assert [e["up"] for e in sim.platform_events] == [False, True]
    evs = info_events(sim)
    _alarms_only_from(evs, ["boiler-nox", "boiler-dilution"])
    for name, alarm, truth in (("boiler-nox", "1", 780), ("boiler-nox", "0", 1380), ("boiler-dilution", "1", 1860),
                               ("boiler-dilution", "0", 2160)):
        ev, dt = _one(evs, name, alarm, scn.start)
        assert abs(dt - truth) <= S, (name, alarm, dt)
        if truth < down["to"]:
            assert ev["received_sim"] >= scn.start + down["to"], (name, ev["received_sim"] - scn.start)
