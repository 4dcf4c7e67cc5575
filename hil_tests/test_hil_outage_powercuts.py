"""Acceptance "Nothing lost": 24 simulated hours, center `a` always up, center `b` down from hour 6 to hour
12, 50 power cuts (SIGKILL of the firmware at seeded instants, reboot on the same filesystem). In the
platform's received frames each center must have every minute, hour and day record of the run exactly once
after de-duplication by (CN, DataTime), in time order per CN, CRC valid. "Every record of the run" is
checked two ways: (1) both centers hold the same set, which contains every 10-minute period and hour the
logger was up for from start to close (the cut instants are known to the host), and the day; (2) every
record the logger committed to its flash store (read back by the host after the run) reached both centers.

Also "store full": a tiny store budget and a center down for the whole run: the overflow policy drops the
oldest low-priority records as documented (firmware/STORE.md) and the drop alarm reaches the platform as a
3020 upload once the center is back.

Site sites/nothing-lost.json (one CEMS on its own bus, sample_s 10, minute interval 10) keeps up at x500.
"""

import json
import sys

from hil_helpers import info_events, load_scenario, load_site, run_simulation

from host_tools import REPO_ROOT
from host_tools.simulate import power_cut_offsets

SCALE = 500.0
DAY = 86400
MIN_S = 600  # min_interval_min 10
SEED = 50
CUTS = 50
KINDS = {"2051": "min", "2061": "hour", "2031": "day"}


def _dedup(sim, center):
    """{cn: [datatime in order of first arrival]} and the number of frames per (cn, datatime)."""
    order = {}
    seen = set()
    for r in sim.records(center=center):
        if r.get("cn") not in KINDS:
            continue
        assert r.get("crc_ok") is True and not r.get("error"), r.get("raw")
        key = (r["cn"], r["datatime"])
        if key not in seen:
            seen.add(key)
            order.setdefault(r["cn"], []).append(r["t"])
    return order


def _down_windows(sim, boot_s):
    """Sim intervals the logger was not sampling: each cut until its reboot plus `boot_s`."""
    return [(c["sim_t"], c["up_sim_t"] + boot_s) for c in sim.cuts]


def _overlaps(a, b, windows):
    return any(w0 < b and w1 > a for w0, w1 in windows)


def _stored_records(fs_dir, site):
    """Every min/hour/day record in the logger's store after the run (the firmware's own reader)."""
    sys.path.insert(0, str(REPO_ROOT / "firmware"))
    try:
        from app.store import Store, links_from_config
    finally:
        sys.path.remove(str(REPO_ROOT / "firmware"))
    root = next((p for p in fs_dir.rglob("cur.*")), None)
    assert root is not None, "no store under %s" % fs_dir
    store = Store(str(root.parent), links_from_config(site))
    out = set()
    for kind, cn in (("min", "2051"), ("hour", "2061"), ("day", "2031")):
        for rec in store.query(kind, "boiler", 0, 2 ** 32 - 1):
            out.add((cn, rec["t"]))
    return out


def _skip_unless_config_accepts(site, key):
    import copy

    import pytest

    sys.path.insert(0, str(REPO_ROOT / "firmware"))
    try:
        from app import config
    finally:
        sys.path.remove(str(REPO_ROOT / "firmware"))
    try:
        config.validate(copy.deepcopy(site))
    except config.ConfigError as exc:
        if any(str(e).startswith(key) or ": unknown key %r" % key in str(e) or key in str(e).split(":")[0]
               for e in getattr(exc, "errors", [exc])):
            pytest.skip("the firmware config has no `%s` budget yet (%s)" % (key, exc))
        raise


def test_nothing_lost_through_an_outage_and_50_power_cuts(tmp_path):
    site = load_site("nothing-lost")
    scn = load_scenario("nothing_lost")
    cuts = power_cut_offsets(CUTS, DAY, SEED)
    down = {"center": "b", "from": 6 * 3600, "to": 12 * 3600}
    until = DAY + 1800  # the day record closes at midnight; leave time to deliver it

    def day_arrived(s):
        return all(any(r.get("cn") == "2031" for r in s.records(center=c)) for c in ("a", "b"))

    sim = run_simulation(tmp_path / "run", site, scn, until, SCALE, outages=[down], power_cuts=cuts,
                         wait_for=day_arrived)
    assert len(sim.cuts) == CUTS, sim.cuts
    assert [(e["center"], e["up"]) for e in sim.platform_events] == [("b", False), ("b", True)]

    got = {}
    for center in ("a", "b"):
        order = _dedup(sim, center)
        for cn, ts in order.items():
            assert ts == sorted(ts), (center, cn, [t - scn.start for t in ts if ts.index(t) > 0][:20])
        got[center] = {(cn, t) for cn, ts in order.items() for t in ts}
    assert got["a"] == got["b"], (sorted(got["a"] - got["b"])[:10], sorted(got["b"] - got["a"])[:10])

    # (1) coverage from the host's own knowledge of when the logger ran
    windows = _down_windows(sim, boot_s=120)
    start = scn.start
    want = set()
    for t in range(start, start + DAY, MIN_S):
        if not _overlaps(t - 60, t + MIN_S + 60, windows):
            want.add(("2051", t))
    for t in range(start, start + DAY, 3600):
        if not _overlaps(t + 3600 - 60, t + 3600 + 60, windows):
            want.add(("2061", t))
    want.add(("2031", start))
    assert len(want) > 0.5 * (DAY // MIN_S), len(want)  # the cuts leave most periods whole
    missing = sorted((cn, (t - start) / 3600.0) for cn, t in want - got["a"])
    assert not missing, missing
    # (2) every record the logger committed reached both centers
    stored = {k for k in _stored_records(tmp_path / "run" / "fs", sim.config) if k[1] < start + DAY}
    assert stored, "the store is empty"
    lost = sorted((cn, (t - start) / 3600.0) for cn, t in stored - got["a"])
    assert not lost, lost


def test_store_full_drops_low_priority_records_and_alarms(tmp_path):
    """Tiny store budget, the only center down for most of the run: minute records are dropped oldest
    first (hour and day records kept), and the store_drop alarm arrives as a 3020 upload."""
    site = load_site("nothing-lost")
    site["centers"] = site["centers"][:1]
    site["store"] = {"max_bytes": 16 * 1024, "seg_bytes": 1024}
    _skip_unless_config_accepts(site, "store")
    scn = load_scenario("nothing_lost")
    down = {"center": "a", "from": 600, "to": 5 * 3600}
    until = 5 * 3600 + 1800

    def alarm_arrived(s):
        return any("store_drop" in e["text"] for e in info_events(s))

    sim = run_simulation(tmp_path / "full", site, scn, until, SCALE, outages=[down], wait_for=alarm_arrived)
    evs = [e for e in info_events(sim) if "store_drop" in e["text"]]
    assert evs, [e["text"] for e in info_events(sim)]
    detail = json.loads(evs[0]["text"][evs[0]["text"].index("{"):]) if "{" in evs[0]["text"] else {}
    assert not detail or "min" in json.dumps(detail), evs[0]["text"]
    order = _dedup(sim, "a")
    minutes = order.get("2051", [])
    hours = order.get("2061", [])
    start = scn.start
    # Hours were kept: every hour of the outage arrives; the oldest minutes of the outage were dropped.
    assert [t for t in hours if t < start + 5 * 3600] == list(range(start, start + 5 * 3600, 3600)), hours
    assert start + 600 not in minutes and minutes, [(t - start) / 60 for t in minutes][:10]
    # What was not dropped is the newest part of the backlog (oldest first is what goes).
    backlog = [t for t in minutes if start + 600 <= t < start + 5 * 3600]
    if backlog:
        assert backlog == list(range(backlog[0], start + 5 * 3600, MIN_S)), [(t - start) / 60 for t in backlog]
