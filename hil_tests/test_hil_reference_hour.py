"""Acceptance (1): two buses, 7 instruments, one simulated hour at 1 s sampling, firmware under HIL_HEAP
(see README "Heap"): every minute record equals the host reference (float tolerance, flags exact); the
hour record equals the reference and is consistent with the minutes."""

from hil_helpers import first_records, load_scenario, reference_site

from host_tools.reference_stats import Reference, close, compare_values

SCALE = 30.0  # one hour in two minutes
HEAP_BUDGET_BYTES = 320 * 1024  # README "Heap": measured ~270 KB after collection on the 64-bit unix port


def test_reference_hour_matches_host_statistics(run_sim):
    scn = load_scenario("reference")
    stations = [s["name"] for s in reference_site()["stations"]]

    def hour_arrived(sim):
        got = first_records(sim, "hour")
        return all((st, scn.start) in got for st in stations)

    sim = run_sim("reference", 3600 + 30, SCALE, wait_for=hour_arrived)
    ref = Reference(sim.config, scn)
    minutes = first_records(sim, "min")
    problems = []
    for rec in ref.records(scn.start, scn.start + 3600, kinds=("min",)):
        got = minutes.get((rec["station"], rec["t"]))
        if got is None:
            problems.append("%s minute %d not received" % (rec["station"], rec["t"] - scn.start))
            continue
        for p in compare_values(got["values"], rec["values"]):
            problems.append("%s +%ds: %s" % (rec["station"], rec["t"] - scn.start, p))
    assert not problems, "%d mismatches, first: %s" % (len(problems), problems[:15])

    hours = first_records(sim, "hour")
    for rec in ref.records(scn.start, scn.start + 3600, kinds=("hour",)):
        got = hours[(rec["station"], rec["t"])]
        assert compare_values(got["values"], rec["values"]) == []
        # Consistency with the minutes received: every minute of a channel with 60 valid samples
        # weighs the same, so the hour Avg is the mean of minute Avgs and Cou is their sum.
        mins = [minutes[(rec["station"], t)]["values"] for t in range(scn.start, scn.start + 3600, 60)]
        for code, _ in rec["values"]:
            if any(m[code].get("Flag") != "N" for m in mins):
                continue
            h = got["values"][code]
            assert close(h["Min"], min(m[code]["Min"] for m in mins))
            assert close(h["Max"], max(m[code]["Max"] for m in mins))
            assert close(h["Avg"], sum(m[code]["Avg"] for m in mins) / len(mins), abs_tol=2e-4)
            if "Cou" in h:
                assert close(h["Cou"], sum(m[code]["Cou"] for m in mins), abs_tol=60 * 1e-4)

    summary = sim.summary()
    assert summary["frames"]["national"].get("2051", 0) >= 60 * len(stations)
    # The live heap after collection must stay within the budget the README states (no growth over the hour).
    assert summary["peak_heap_bytes"] is not None
    assert summary["peak_heap_bytes"] <= HEAP_BUDGET_BYTES, summary["peak_heap_bytes"]
