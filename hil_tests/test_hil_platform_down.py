"""Acceptance (5): the platform is unreachable for ten simulated minutes (+120 s to +720 s): no minute
record is dropped (the store keeps them), all arrive after reconnection with the right values; the
outage's backlog arrives in time order (live records may be sent between backlog records: firmware
README "Backlog and live records")."""

from hil_helpers import fast_buses, first_records, load_scenario, reference_for, reference_site

from host_tools.reference_stats import compare_values

SCALE = 15.0  # with hil_helpers.fast_buses: bus2 (5 devices, 16 reads a tick) keeps up with margin
DOWN_FROM, DOWN_TO = 120, 720
UNTIL = 840


def test_records_survive_ten_minutes_without_platform(run_sim):
    scn = load_scenario("platform_down")
    stations = [s["name"] for s in reference_site()["stations"]]
    wanted = [(st, scn.start + t) for st in stations for t in range(0, UNTIL - 60, 60)]

    def all_arrived(sim):
        got = first_records(sim, "min")
        return all(w in got for w in wanted)

    sim = run_sim("platform_down", UNTIL, SCALE, wait_for=all_arrived, site=fast_buses(reference_site()))
    assert [e["up"] for e in sim.platform_events] == [False, True]

    minutes = first_records(sim, "min")
    missing = [(st, t - scn.start) for st, t in wanted if (st, t) not in minutes]
    assert not missing, missing

    # Records of the outage reached the platform only after it came back, the backlog in time order per
    # station (a live record produced while it drains may arrive between two backlog records).
    for st in stations:
        order = [r["t"] for r in sim.records(kind="min", station=st) if "t" in r]
        firsts = []
        for t in order:
            if t not in firsts:
                firsts.append(t)
        backlog = [t for t in firsts if scn.start + DOWN_FROM <= t < scn.start + DOWN_TO - 60]
        assert backlog == sorted(backlog), (st, [t - scn.start for t in firsts])
        assert len(backlog) == (DOWN_TO - 60 - DOWN_FROM) // 60
        for t in range(scn.start + DOWN_FROM, scn.start + DOWN_TO - 60, 60):
            assert minutes[(st, t)]["received_sim"] >= scn.start + DOWN_TO

    ref = reference_for(sim, scn)
    for rec in ref.records(scn.start, scn.start + UNTIL - 60, kinds=("min",)):
        assert compare_values(minutes[(rec["station"], rec["t"])]["values"], rec["values"]) == []
