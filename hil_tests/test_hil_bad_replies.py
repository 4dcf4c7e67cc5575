"""Acceptance (3): chunked, late, corrupted, wrong-address, garbage and exception replies are injected
(the emulator log proves it), counted in the firmware's bus counters (its STATS/COUNTERS JSON), and a
wrong value is never accepted: broken replies carry poisoned values, and every value the platform receives
lies within what the scenario really measured."""

from hil_helpers import counter, fast_buses, find_counters, first_records, load_scenario, reference_for, reference_site

from host_tools.reference_stats import compare_values

# The late replies (60 ms) must stay well inside one sim second (200 ms real at x5). Each broken reply
# also costs the bus a resynchronising silence (20 ms real on a pty) and a retry: with bus2's 16 reads a
# tick (hil_helpers.fast_buses, 115200 baud) a tick needs ~105 ms real in the fault windows, so at x10 the
# polls overran into the next second (and a garbage reply followed by a late retry took dust offline).
SCALE = 5.0
END = 700
WINDOWS = {"chunked": (60, 180), "crc": (180, 300), "wrong_address": (300, 420), "garbage": (420, 540),
           "late": (540, 660)}


def test_bad_replies_are_counted_and_never_accepted(run_sim):
    scn = load_scenario("bad_replies")
    sim = run_sim("bad_replies", END, SCALE, site=fast_buses(reference_site()))

    for kind, (a, b) in WINDOWS.items():
        hits = sim.served("dust", fault=kind)
        assert len(hits) >= 20, "%s: only %d injected" % (kind, len(hits))
        assert all(a <= e["k"] < b for e in hits)
    assert len(sim.served("voc", fault="exception")) >= 20

    stats = sim.fw.stats
    assert stats is not None, "the firmware printed no STATS/COUNTERS line:\n" + sim.fw.log_tail(20)
    # the bus counters (a station is also named "dust": look where the devices are, not anywhere)
    dust = find_counters(stats.get("buses"), "dust")
    voc = find_counters(stats.get("buses"), "voc")
    assert dust is not None and voc is not None, stats
    assert counter(dust, "crc") >= len(sim.served("dust", fault="crc")) // 2
    assert counter(dust, "addr") >= 1
    assert counter(dust, "timeout") >= 1
    assert counter(voc, "exc") >= len(sim.served("voc", fault="exception")) // 2

    ref = reference_for(sim, scn)
    # Every minute value lies within the min/max of the samples of that minute (poisoned values are huge).
    minutes = first_records(sim, "min")
    for st in ("dust", "voc"):
        station = next(s for s in sim.config["stations"] if s["name"] == st)
        for t in range(scn.start + 60, scn.start + 660, 60):
            got = minutes.get((st, t))
            assert got is not None, (st, t - scn.start)
            lo, hi = {}, {}
            for k in range(t - scn.start, t - scn.start + 60):
                samples, _ = ref.station_samples(station, k)
                for code, (v, _f, _z) in samples.items():
                    if v is not None:
                        lo[code] = min(lo.get(code, v), v)
                        hi[code] = max(hi.get(code, v), v)
            for code, vals in got["values"].items():
                for f in ("Min", "Avg", "Max"):
                    if isinstance(vals.get(f), float):
                        assert lo[code] - 1e-3 <= vals[f] <= hi[code] + 1e-3, (st, t - scn.start, code, f)
    # Chunked replies are valid replies: those minutes equal the reference exactly.
    for rec in ref.records(scn.start + 60, scn.start + 180, kinds=("min",)):
        if rec["station"] == "dust":
            assert compare_values(minutes[("dust", rec["t"])]["values"], rec["values"]) == []
    # Realtime values equal the sample of their DataTime (or the second before it).
    for r in sim.records(kind="rtd", station="dust"):
        if "t" not in r:
            continue
        for code, vals in r["values"].items():
            if vals.get("Flag") == "B" or not isinstance(vals.get("Rtd"), float):
                continue
            station = next(s for s in sim.config["stations"] if s["name"] == "dust")
            cands = [ref.station_samples(station, r["t"] - scn.start - d)[0][code][0] for d in (0, 1)]
            assert any(c is not None and abs(c - vals["Rtd"]) <= 1e-3 for c in cands), (code, r["t"])
