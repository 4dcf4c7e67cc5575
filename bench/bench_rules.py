"""Rules engine cost on the MicroPython unix port: CPU seconds per simulated hour and heap, rules on vs off.

    .venv/bin/python bench/bench_rules.py [--quick] [--heap 128k]

One simulated hour (1 s ticks) of a 32-channel site (the reference site's boiler, VOC and dust stations
plus a 12-channel second line) with every rule family configured (limits rolling/hour/net, bypass,
treatment power, emergency, data quality). The rules package is compiled to .mpy with mpy-cross first,
as on the device. Prints one JSON object. Figures only; nothing is judged (bench/README.md).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

DEVICE_SCRIPT = r'''
import sys, gc, time
sys.path.insert(0, TMP)
MODE = sys.argv[1]
SECONDS = int(sys.argv[2])
T0 = 1704038400
STATIONS = {
    "boiler": ["a21003", "a21004", "a21002", "a21026", "a19001", "a00000", "a01011", "a01012", "a01013", "a01014"],
    "voc": ["a24088", "a05002"],
    "dust": ["a34001", "a34002", "a34004", "a01001", "a01002", "a01007", "a01008", "LA"],
    "line2": ["c%02d" % i for i in range(12)],
}
ZS = ("a21002", "a21026")
RULES = [
    {"name": "nox15", "type": "limit", "channel": "boiler/a21002", "limit": 200, "zs": True, "window": "rolling",
     "minutes": 15, "warn_fraction": 0.8},
    {"name": "noxh", "type": "limit", "channel": "boiler/a21002", "limit": 200, "zs": True, "window": "hour"},
    {"name": "so2", "type": "limit", "channel": "boiler/a21026", "limit": 50, "zs": True, "window": "rolling",
     "minutes": 60},
    {"name": "nmhc", "type": "limit", "channel": "voc/a24088", "limit": 60, "window": "rolling", "minutes": 60},
    {"name": "pm10", "type": "limit", "channel": "dust/a34002", "limit": 0.08, "window": "hour",
     "background_cap": 0.15, "background_default": 0.05, "daily_max": 2},
    {"name": "tsp", "type": "limit", "channel": "dust/a34001", "limit": 0.5, "window": "rolling", "minutes": 15,
     "daily_max": 1},
    {"name": "damper", "type": "bypass", "kind": "damper", "input": "damper.di1", "running": "prod_power.power",
     "running_above": 5, "relay": "r1"},
    {"name": "hot", "type": "bypass", "kind": "temperature", "input": "damper.ai1", "ambient": "dust/a01001",
     "delta": 15},
    {"name": "main", "type": "bypass", "kind": "main_flow", "input": "boiler/a00000", "below": 3,
     "running": "prod_power.power", "running_above": 5},
    {"name": "fan", "type": "power", "kind": "not_running", "production": "prod_power.power",
     "treatment": "fan_power.power", "on_kw": 5, "idle_kw": 1},
    {"name": "order", "type": "power", "kind": "order", "production": "prod_power.power",
     "treatment": "fan_power.power", "on_kw": 5, "idle_kw": 1},
    {"name": "derate", "type": "power", "kind": "derate", "production": "prod_power.power",
     "treatment": "fan_power.power", "on_kw": 5, "idle_kw": 1, "rated_kw": 30, "fraction": 0.5},
    {"name": "em", "type": "emergency", "lines": {"a": {"point": "prod_power.power", "on_kw": 5},
     "b": {"point": "fan_power.power", "on_kw": 5}}, "levels": {"orange": {"a": 0}, "red": {"a": 0, "b": 0}}},
    {"name": "flat1", "type": "quality", "kind": "flatline", "channel": "boiler/a21002", "tolerance": 0.01,
     "running": "prod_power.power", "running_above": 5, "for_s": 1800},
    {"name": "flat2", "type": "quality", "kind": "flatline", "channel": "voc/a24088", "tolerance": 0.01,
     "for_s": 1800},
    {"name": "zero", "type": "quality", "kind": "zero", "channel": "boiler/a21026", "zero_max": 0.1,
     "running": "prod_power.power", "running_above": 5, "for_s": 600},
    {"name": "dil", "type": "quality", "kind": "dilution", "channel": "boiler/a21002", "o2": "boiler/a19001",
     "flow": "boiler/a00000"},
    {"name": "off1", "type": "quality", "kind": "offset", "channel": "boiler/a21002", "step": 30},
    {"name": "off2", "type": "quality", "kind": "offset", "channel": "voc/a24088", "step": 10},
]
CFG = {"site": {"utc_offset_min": 480}, "logger": {"sample_s": 1, "valid_fraction": 0.75},
       "rules": {"list": RULES}}
gc.collect()
base = gc.mem_alloc()
events = []
eng = None
if MODE == "on":
    from app.rules import Rules
    eng = Rules(CFG, events.append)
gc.collect()
after_init = gc.mem_alloc()
peak_live = after_init
peak_any = after_init
busy = 0
for s in range(SECONDS):
    t = T0 + s
    x = (s * 7919) % 97 / 97.0
    values = {}
    for st in STATIONS:
        d = {}
        for code in STATIONS[st]:
            v = 50.0 + 20.0 * x
            d[code] = (v, "N", v * 1.3) if code in ZS else (v, "N")
        values[st] = d
    points = {"prod_power.power": (80.0, "N"), "fan_power.power": (20.0 + x, "N"), "damper.di1": (0, "N"),
              "damper.ai1": (12.0 + x, "N")}
    a = gc.mem_alloc()
    if a > peak_any:
        peak_any = a
    if eng is not None:
        t1 = time.ticks_us()
        eng.tick(t, values, points)
        if (s + 1) % 3600 == 0:
            for st in STATIONS:
                rec = {"kind": "hour", "station": st, "t": t + 1 - 3600,
                       "values": [[c, {"Avg": 60.0, "ZsAvg": 78.0, "Flag": "N"}] for c in STATIONS[st]]}
                eng.period("hour", t + 1, rec)
        busy += time.ticks_diff(time.ticks_us(), t1)
    a = gc.mem_alloc()
    if a > peak_any:
        peak_any = a
    if s % 60 == 59:
        gc.collect()
        a = gc.mem_alloc()
        if a > peak_live:
            peak_live = a
print("RESULT", MODE, busy, base, after_init, peak_live, peak_any, len(events))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 simulated minutes instead of an hour")
    ap.add_argument("--heap", default="128k")
    args = ap.parse_args()
    seconds = 600 if args.quick else 3600
    venv_bin = Path(sys.executable).parent
    mp = shutil.which("micropython", path=str(venv_bin) + os.pathsep + os.environ.get("PATH", ""))
    cross = shutil.which("mpy-cross", path=str(venv_bin) + os.pathsep + os.environ.get("PATH", ""))
    out = {"simulated_s": seconds, "channels": 32, "rules": None, "heap": args.heap}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "app" / "rules").mkdir(parents=True)
        (Path(tmp) / "app" / "__init__.py").write_text("")
        for src in (REPO / "firmware" / "app" / "rules").glob("*.py"):
            dest = Path(tmp) / "app" / "rules" / (src.stem + ".mpy")
            if cross:
                subprocess.run([cross, "-o", str(dest), str(src)], check=True)
            else:
                shutil.copy(src, dest.with_suffix(".py"))
        script = Path(tmp) / "bench_rules_device.py"
        script.write_text("TMP = %r\n" % tmp + DEVICE_SCRIPT)
        for mode in ("off", "on"):
            proc = subprocess.run([mp, "-X", "heapsize=" + args.heap, str(script), mode, str(seconds)],
                                  capture_output=True, text=True, timeout=1800)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
            if proc.returncode or not line:
                print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
                raise SystemExit("bench_rules: micropython run (%s) failed" % mode)
            f = line[0].split()
            busy_us, base, init, live, anyp, nev = (int(v) for v in f[2:])
            out[mode] = {"heap_after_init_bytes": init, "heap_live_peak_bytes": live,
                         "heap_peak_incl_garbage_bytes": anyp, "events": nev}
            if mode == "on":
                out["rules_cpu_s_per_sim_hour"] = round(busy_us / 1e6 * 3600.0 / seconds, 3)
                out["rules_us_per_tick"] = round(busy_us / float(seconds), 1)
                out["engine_resident_bytes"] = init - out["off"]["heap_after_init_bytes"]
        out["rules"] = 19
        out["mpy"] = bool(cross)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
