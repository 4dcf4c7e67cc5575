"""Helpers shared by the HIL test modules (imported as `hil_helpers`; pytest puts this folder on the path)."""

import json

from host_tools import REPO_ROOT
from host_tools.emulators.scenario import Scenario
from host_tools.reference_stats import Reference

# Samples the logger lost where the scenario had its instrument answer (a loaded host: late or missed
# polls, a stalled emulator) are taken as B by the reference; more than this share of the run's samples
# would hide a logger that drops good replies, so the run fails instead.
MAX_LOST_SHARE = 0.02


def reference_site(centers=("national",)):
    """sites/reference.json with only the named centers (None: all). The HIL tests written for one
    platform keep the national center; the backup center is exercised by test_hil_outage_powercuts."""
    site = json.loads((REPO_ROOT / "sites" / "reference.json").read_text(encoding="utf-8"))
    if centers is not None:
        site["centers"] = [c for c in site["centers"] if c["name"] in centers]
    return site


def load_scenario(name):
    return Scenario.load(REPO_ROOT / "scenarios" / (name + ".json"))


def first_records(sim, kind):
    """{(station, t): record} keeping the first frame of each period (a retried frame may come twice).

    A record split in parts (HJ 212 Flag D, PNUM/PNO: each part its own frame with the same DataTime) is
    merged like the platform does: values of later frames add the codes the first one lacked."""
    out = {}
    for r in sim.records(kind=kind):
        if r.get("crc_ok") is False or r.get("error") or "t" not in r:
            continue
        key = (r["station"], r["t"])
        got = out.get(key)
        if got is None:
            got = dict(r)
            got["values"] = dict(r.get("values") or {})
            out[key] = got
        else:
            for code, vals in (r.get("values") or {}).items():
                got["values"].setdefault(code, vals)
    return out


def find_counters(stats, device):
    """The counters dict of `device` anywhere inside the firmware's stats JSON (None if absent)."""
    if isinstance(stats, dict):
        for key, val in stats.items():
            if key == device and isinstance(val, dict):
                return val
        for val in stats.values():
            found = find_counters(val, device)
            if found is not None:
                return found
    elif isinstance(stats, list):
        for val in stats:
            if isinstance(val, dict) and val.get("name") == device:
                return val
            found = find_counters(val, device)
            if found is not None:
                return found
    return None


def counter(counters, *substrings):
    """Sum of the numeric counters whose name contains one of `substrings`."""
    return sum(v for k, v in counters.items()
               if isinstance(v, (int, float)) and any(s in k.lower() for s in substrings))


def load_site(name):
    """A site of sites/ by name (sites/NAME.json)."""
    return json.loads((REPO_ROOT / "sites" / (name + ".json")).read_text(encoding="utf-8"))


def run_simulation(out_dir, site, scenario, until_offset_s, scale, lead_s=60.0, wait_for=None, **kw):
    """Starts a Simulation, waits (on frames and the sim clock) for the scenario offset and then for
    `wait_for(sim)` (if given), stops it and returns it. Extra keyword arguments go to Simulation
    (outages=[{"center", "from", "to"}], power_cuts=[offsets], ...)."""
    from host_tools.simulate import Simulation

    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    sim = Simulation(site, scenario, out_dir, time_scale=scale, lead_s=lead_s, **kw)
    sim.start()
    try:
        end = scenario.start + until_offset_s
        real = (until_offset_s + lead_s) / scale
        reached = sim.wait_until(end, timeout=real * 2 + 60)
        if reached and wait_for is not None:
            sim.wait_for(wait_for, timeout=real / 2 + 60)
        if sim.fw.alive():
            sim.fw.request_stats(10.0)
    finally:
        sim.stop()
    assert not sim.fw.safe_mode(), "firmware in safe mode:\n" + "\n".join(sim.firmware_lines()[-40:])
    assert reached, "firmware stopped before sim offset %d s:\n%s" % (
        until_offset_s, "\n".join(sim.firmware_lines()[-40:]))
    return sim


def info_events(sim, center=None):
    """The rule events the platform received (CN 3020 with i11001-Info), one per (center, DataTime, text):
    [{"center", "t", "datatime", "text", "alarm" ("1"/"0"/None), "polid", "stations", "received_sim",
    "crc_ok"}] in order of first arrival. Site-wide events come once per station link; they are merged."""
    out = {}
    for r in sim.records(center=center):
        if r.get("cn") != "3020" or r.get("error"):
            continue
        vals = r.get("values") or {}
        text = (vals.get("i11001") or {}).get("Info")
        if not isinstance(text, str):
            continue
        if text.startswith("//") and text.endswith("//") and len(text) >= 4:
            text = text[2:-2]
        alarm = (vals.get("i12003") or {}).get("Info")
        if isinstance(alarm, float):
            alarm = "%d" % alarm
        key = (r["center"], r.get("datatime"), text)
        ev = out.get(key)
        if ev is None:
            out[key] = {"center": r["center"], "t": r.get("t"), "datatime": r.get("datatime"), "text": text,
                        "alarm": alarm, "polid": (r.get("cp") or {}).get("PolId"), "stations": [r.get("station")],
                        "received_sim": r["received_sim"], "crc_ok": r.get("crc_ok")}
        else:
            ev["stations"].append(r.get("station"))
    return list(out.values())


def fast_buses(site, baud=115200):
    """`site` with its buses at `baud` and no turnaround, for HIL runs at high time scales.

    A pty does not pace bytes, but the bus owner keeps the 3.5-character gap + turnaround before every
    request: at 9600 baud ~6.5 ms real per transaction, and the reference site's bus2 needs 16 a tick
    (two sdm630 five reads each, cwt_uwd three, nmhc_fid two, di4 one): ~105 ms, more than a tick at
    x10 (100 ms). At 115200 baud with no turnaround a transaction takes ~2.5 ms real. Statistics, flags
    and faults do not depend on the baud rate; timeouts are scaled by the harness as before."""
    for bus in site["buses"]:
        bus["baud"] = baud
        bus["turnaround_ms"] = 0
    return site


def reference_for(sim, scn):
    """The host reference statistics for this run, told which samples the logger lost
    (Simulation.lost_samples), so a loaded host's late polls are B on both sides instead of a race. Fails
    when the losses the scenario does not explain exceed MAX_LOST_SHARE of the samples since the first tick."""
    lost = sim.lost_samples()
    first = sim.first_tick()
    end = int(sim.stopped_at or sim.clock.now())
    unexplained = [(dev, t) for dev, t in lost if first is not None and t >= first
                   and scn.device(dev).fault(t - scn.start) is None]
    samples = max(1, (end - (first or end)) * sum(len(bus["devices"]) for bus in sim.config["buses"]))
    assert len(unexplained) <= MAX_LOST_SHARE * samples, (
        "%d of %d samples lost where the instruments answered (host too loaded?): %s"
        % (len(unexplained), samples, sorted(unexplained)[:10]))
    return Reference(sim.config, scn, lost)
