"""Live heap of the firmware's state on a 32-bit and a 64-bit MicroPython: the reference site, one hour.

    python bench/bench_heap32.py [--quick] [--scenario demo] [--keep DIR]

Prints one JSON object: `state_bytes_32bit`, `state_bytes_64bit`, `ratio` (32/64) and the per-port detail.

What is measured: the firmware (firmware/app + protocols, .py sources, copied once per run so both ports
read the same files) builds the reference site's app state with its own code: `app.main.load_config` (the
device config loader and validator) on the config compiled on the host (`host_tools.siteconfig.load_site`
of sites/reference.json), then `app.main.build` (store, rules, acquisition with buses, devices, channels,
statistics, commands, uplinks, App) over a stub HAL (no UART, no socket; the clock is the bench's tick).
It is fed one simulated hour of the scenario (scenarios/demo.json by default: a NOx exceedance and the
VOC bypass damper opening fire rule events) through `Acquisition.tick`, and every stored record is
turned into the HJ 212 frames its links would send (`Sender.frames`) and acked in the store. The state
figure is the hour's peak live heap (gc.collect() then gc.mem_alloc(), every `slice_s` simulated seconds
and after each build phase) minus the live heap right after the imports. bench/heap32/harness.py is the
MicroPython side (run unchanged on both ports; its docstring has the details).

- 64-bit: the MicroPython unix port (.venv/bin/micropython, -X heapsize=2M: generous, nothing is constrained).
- 32-bit: the MicroPython webassembly port (npm `@micropython/micropython-webassembly-pyscript`, pinned in
  bench/heap32/package-lock.json, installed by `bash scripts/setup.sh` when node is present) under node,
  driven in steps by bench/heap32/run.mjs (there gc.collect() runs when control returns to JavaScript).

Missing node or npm package: the JSON has `state_bytes_32bit: null` and `error`, and the exit status is 1.
Heap figures are deterministic for a given firmware; nothing here passes or fails on a figure.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
HEAP32 = BENCH_DIR / "heap32"
NPM_PKG = "@micropython/micropython-webassembly-pyscript"
HEAPSIZE_64 = "2M"
HEAPSIZE_32 = 2 * 1024 * 1024
PARTS_ORDER = ("uplinks", "statistics", "channels", "acquisition", "rules", "commands", "store", "app",
               "left_after_dropping_all")
FIX = "run `bash scripts/setup.sh` (installs the pinned npm package into bench/heap32 when node is present)"


def _micropython():
    exe = REPO_ROOT / ".venv" / "bin" / "micropython"
    if exe.exists():
        return str(exe)
    return shutil.which("micropython")


def compile_config():
    sys.path.insert(0, str(REPO_ROOT))
    from host_tools.siteconfig import load_site

    return load_site(REPO_ROOT / "sites" / "reference.json")


def write_feed(config, scenario_name, path, ticks):
    """One JSON line per tick: {device: [decoded values in its read plan's order]} (header line first).

    Values are what a correct reader decodes from the emulated instrument (host_tools.emulators.instruments,
    the models the HIL emulators serve), status bits included; the order is the firmware's read plan
    (protocols.modbus.plan.plan_reads with the template's settings, as app/reader.py Device does)."""
    from host_tools.emulators.instruments import Instrument, load_template
    from host_tools.emulators.scenario import Scenario
    from protocols.modbus.plan import plan_reads

    scn = Scenario.load(REPO_ROOT / "scenarios" / (scenario_name + ".json"))
    devs = []
    for bus in config["buses"]:
        for d in bus["devices"]:
            tpl = load_template(d["template"])
            plan = plan_reads(tpl["points"], tpl.get("table", "holding"), tpl.get("order", "ABCD"),
                              max_gap=tpl.get("max_gap", 0))
            inst = Instrument(d["name"], tpl, d["address"], scn.device(d["name"]), scn.start)
            devs.append((d["name"], list(plan.names), inst))
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"start": scn.start, "ticks": ticks, "scenario": scn.name,
                            "plan_len": {n: len(names) for n, names, _ in devs}}) + "\n")
        for k in range(ticks):
            line = {}
            for name, names, inst in devs:
                line[name] = [inst.value(p, k) for p in names]
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
    return scn


def snapshot_firmware(dst):
    """firmware/app and protocols/ (sources and data) copied once: both ports read the same files while
    others edit the tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy")
    shutil.copytree(REPO_ROOT / "firmware" / "app", dst / "app", ignore=ignore)
    shutil.copytree(REPO_ROOT / "protocols", dst / "protocols", ignore=ignore)
    shutil.copy(REPO_ROOT / "firmware" / "hal" / "port.py", dst / "hal_port.py")  # hal/__init__ wants real hardware
    shutil.copy(HEAP32 / "harness.py", dst / "harness.py")


# Not imported before the baseline: the validator (app.main.load_config imports it and drops it again)
# and the host-only protocol modules (protocols/modbus/__init__.py: values, slave and host are the host's).
# A module the firmware does import after the baseline is listed in `modules_imported_after_base`.
NOT_PRELOADED = ("app.config", "app.rules.check", "protocols.hj212.host", "protocols.modbus.host",
                 "protocols.modbus.values", "protocols.modbus.slave")


def device_modules(fw):
    """Every module of the snapshot the logger may load, packages first (imported before the baseline,
    so that module code and globals, lazily imported ones included, stay out of the state figure)."""
    names = []
    for p in sorted(list((fw / "app").rglob("*.py")) + list((fw / "protocols").rglob("*.py"))):
        parts = list(p.relative_to(fw).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if name not in NOT_PRELOADED:
            names.append(name)
    names.sort(key=lambda n: (n.count("."), n))
    return names + ["hal_port"]


def parse_result(stdout):
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise ValueError("no RESULT line")


def run_unix(fw, work, feed, slice_s, timeout):
    exe = _micropython()
    if not exe:
        return None, "MicroPython unix port not found (.venv/bin/micropython); " + FIX
    # in a file: the unix port dies ("FATAL: uncaught NLR") on an argv element of 256 characters or more
    opts = work / "opts.json"
    opts.write_text(json.dumps({"paths": [str(fw)], "work": str(work), "feed": str(feed), "slice_s": slice_s,
                                "modules": device_modules(fw)}), encoding="utf-8")
    cmd = [exe, "-X", "heapsize=" + HEAPSIZE_64, str(HEAP32 / "unix_driver.py"), str(opts)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return None, "unix port failed (exit %d): %s" % (proc.returncode, (proc.stderr + proc.stdout)[-1500:])
    res = parse_result(proc.stdout)
    res["interpreter"] = exe
    res["heapsize"] = HEAPSIZE_64
    return res, None


def run_wasm(fw, work, feed, slice_s, timeout):
    node = shutil.which("node")
    if not node:
        return None, "node not found: install Node.js (>= 18), then " + FIX
    pkg = HEAP32 / "node_modules" / NPM_PKG / "package.json"
    if not pkg.exists():
        return None, "npm package %s not installed in bench/heap32; %s" % (NPM_PKG, FIX)
    version = json.loads(pkg.read_text())["version"]
    cmd = [node, str(HEAP32 / "run.mjs"), "--fw", str(fw), "--work", str(work), "--feed", str(feed),
           "--slice", str(slice_s), "--heapsize", str(HEAPSIZE_32), "--modules", ",".join(device_modules(fw))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HEAP32)
    if proc.returncode != 0:
        return None, "webassembly port failed (exit %d): %s" % (proc.returncode, (proc.stderr + proc.stdout)[-1500:])
    res = parse_result(proc.stdout)
    res["interpreter"] = "node %s, %s %s" % (_node_version(node), NPM_PKG, version)
    res["heapsize"] = HEAPSIZE_32
    return res, None


def _node_version(node):
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 simulated minutes instead of an hour")
    ap.add_argument("--scenario", default="demo", help="scenario in scenarios/ (default demo)")
    ap.add_argument("--slice", type=int, default=15, help="simulated seconds between heap samples (<= 60)")
    ap.add_argument("--keep", metavar="DIR", help="keep the snapshot, feed and work dirs here")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per interpreter run")
    args = ap.parse_args()
    if not 1 <= args.slice <= 60:
        ap.error("--slice must be 1..60 simulated seconds (the heap is sampled at least once a minute)")
    ticks = (1200 if args.quick else 3600) + 1  # tick 3600 closes the hour
    out = {"state_bytes_32bit": None, "state_bytes_64bit": None, "ratio": None}
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="emlog_heap32_"))
    errors = []
    try:
        fw = tmp / "fw"
        if fw.exists():
            shutil.rmtree(fw)
        fw.mkdir(parents=True)
        snapshot_firmware(fw)
        feed = tmp / "feed.jsonl"
        try:
            config = compile_config()
            scn = write_feed(config, args.scenario, feed, ticks)
        except Exception as exc:  # host side broken (e.g. no venv): say how to fix it
            out["error"] = "host side failed (%s: %s); %s" % (type(exc).__name__, exc, FIX)
            print(json.dumps(out, indent=2))
            return 1
        results = {}
        for bits, runner in (("64bit", run_unix), ("32bit", run_wasm)):
            work = tmp / ("work" + bits)
            if work.exists():
                shutil.rmtree(work)
            work.mkdir()
            (work / "config.json").write_text(json.dumps(config), encoding="utf-8")
            try:
                res, err = runner(fw, work, feed, args.slice, args.timeout)
            except subprocess.TimeoutExpired:
                res, err = None, "timed out after %d s" % args.timeout
            if err:
                errors.append("%s: %s" % (bits, err))
            results[bits] = res
        for bits, res in results.items():
            if res is None:
                continue
            out["state_bytes_" + bits] = res["state_bytes"]
            parts = res["parts_bytes_at_end"]  # in the order the harness lets the parts go
            res["parts_bytes_at_end"] = dict(sorted(parts.items(), key=lambda kv: PARTS_ORDER.index(kv[0])
                                                    if kv[0] in PARTS_ORDER else len(PARTS_ORDER)))
            for key in ("import_bytes", "after_config_bytes", "after_app_bytes", "end_of_hour_bytes",
                        "parts_bytes_at_end"):
                out[key + "_" + bits] = res[key]
            out["micropython_" + bits] = "%s (%s)" % (res["implementation"], res["interpreter"])
        if out["state_bytes_32bit"] is not None and out["state_bytes_64bit"]:
            out["ratio"] = round(out["state_bytes_32bit"] / out["state_bytes_64bit"], 3)
            out["ratio_after_app"] = round(out["after_app_bytes_32bit"] / out["after_app_bytes_64bit"], 3)
        ref = results.get("64bit") or results.get("32bit") or {}
        if results.get("64bit") and results.get("32bit"):
            same = all(results["64bit"][k] == results["32bit"][k] for k in ("records", "packets", "events"))
            out["same_work_on_both_ports"] = same  # records, packets and events: like is compared with like
            if not same:
                errors.append("the two ports did different work (records/packets/events differ): see ports")
        out["simulated_s"] = ticks - 1
        out["scenario"] = scn.name
        out["site"] = "sites/reference.json"
        out["records"] = ref.get("records")
        out["packets"] = ref.get("packets")
        out["rule_events"] = ref.get("rule_events")
        out["events"] = ref.get("events")
        out["code"] = "firmware/app + protocols as .py sources (compiled to bytecode in the heap on import; " \
                      "import_bytes_* is that cost, not part of state_bytes_*)"
        out["sample_every_sim_s"] = args.slice
        out["parts_note"] = ("parts_bytes_at_end_*: heap freed when each part is let go after the hour, in the "
                             "listed order (an object two parts share counts with the later one)")
        out["statistic"] = "peak over samples of gc.mem_alloc() after gc.collect(), minus the heap after the imports"
        out["ports"] = results
        if errors:
            out["error"] = "; ".join(errors)
        print(json.dumps(out, indent=2))
        return 1 if errors else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
