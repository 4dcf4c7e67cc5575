"""HIL figures (prints JSON): poll-cycle time of the reference buses at 9600 baud with byte pacing, as a
ratio to the theoretical wire time of their frames; peak MicroPython heap over the reference simulated
hour; firmware CPU seconds per simulated hour.

    python bench/bench_hil.py [--hour-scale 30] [--pacing-seconds 40] [--quick]

The poll-cycle run uses time scale 1 (real time: pacing is real time too). Per tick and bus the cycle is
from the first request's arrival to the end of the last reply on the wire; the theoretical wire time is
the sum of request and reply bytes x 10 bits / 9600 (inter-frame gaps excluded).
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host_tools import REPO_ROOT
from host_tools.emulators.bus import char_time
from host_tools.emulators.scenario import Scenario
from host_tools.simulate import Simulation


def reply_len(e):
    if e["reply"] == "exception":
        return 5
    if e["fc"] in (1, 2):
        return 5 + (e["count"] + 7) // 8
    if e["fc"] in (3, 4):
        return 5 + 2 * e["count"]
    return 8


def poll_cycles(sim, bus_name, baud=9600):
    ct = char_time(baud)
    bus = next(b for b in sim.buses.values() if b.name == bus_name)
    by_tick = {}
    for e in bus.entries():
        if e["fault"] is None and e["reply"] in ("ok", "exception"):
            by_tick.setdefault(e["k"], []).append(e)
    ratios, cycles, wires = [], [], []
    ndev = len(bus.instruments)
    for k in sorted(by_tick)[2:-1]:  # skip start-up and the last, possibly cut, tick
        es = by_tick[k]
        if len({e["device"] for e in es}) < ndev:
            continue
        es.sort(key=lambda e: e["real_t"])
        last = es[-1]
        cycle = last["real_t"] + (3.5 + reply_len(last)) * ct - es[0]["real_t"]
        wire = sum(8 + reply_len(e) for e in es) * ct
        cycles.append(cycle)
        wires.append(wire)
        ratios.append(cycle / wire)
    if not ratios:
        return {"bus": bus_name, "ticks": 0}
    return {"bus": bus_name, "ticks": len(ratios), "requests_per_cycle": len(by_tick[sorted(by_tick)[3]]),
            "cycle_s_median": round(statistics.median(cycles), 4),
            "wire_s_median": round(statistics.median(wires), 4),
            "ratio_median": round(statistics.median(ratios), 3), "ratio_max": round(max(ratios), 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hour-scale", type=float, default=30.0)
    ap.add_argument("--pacing-seconds", type=float, default=40.0)
    ap.add_argument("--quick", action="store_true", help="10 simulated minutes instead of an hour")
    args = ap.parse_args(argv)
    site = json.loads((REPO_ROOT / "sites" / "reference.json").read_text())
    scn = Scenario.load(REPO_ROOT / "scenarios" / "reference.json")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulation(site, scn, Path(tmp) / "pacing", time_scale=1.0, pacing=True, lead_s=5)
        sim.start()
        sim.wait_until(scn.start + args.pacing_seconds)
        sim.stop()
        out["poll_cycle_9600_paced"] = [poll_cycles(sim, b["name"]) for b in site["buses"]]
        out["poll_cycle_lag"] = sim.summary()["lag"]

        span = 600 if args.quick else 3600
        sim = Simulation(site, scn, Path(tmp) / "hour", time_scale=args.hour_scale, lead_s=60)
        sim.start()
        sim.wait_until(scn.start + span)
        sim.fw.request_stats(10)
        cpu = sim.fw.cpu_seconds()
        s = sim.stop()
        sim_s = span + sim.lead_s
        out["reference_run"] = {"sim_seconds": sim_s, "time_scale": args.hour_scale, "heap": sim.heap,
                                "peak_heap_bytes": s["peak_heap_bytes"],
                                "peak_heap_raw_bytes": s["peak_heap_raw_bytes"],
                                "firmware_cpu_s": cpu, "firmware_cpu_s_per_sim_hour":
                                    None if cpu is None else round(cpu * 3600.0 / sim_s, 2),
                                "lag": s["lag"], "samples": s["samples"], "frames": s["frames"]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
