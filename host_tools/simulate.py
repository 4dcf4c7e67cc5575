"""`emlog simulate`: a whole site in one process: emulated instruments on ptys, the real firmware under
the MicroPython unix port, and the HJ 212 platform receiver, all on one scaled simulation clock.

`Simulation` is also the harness of the HIL tests (hil_tests/). Time: sim = start + real elapsed x scale
(the env contract of firmware/hal/unix.py). Scheduled work scales; I/O timeouts are real, so by default
the buses' `timeout_ms` is divided by the scale (floor 30 ms) to keep what a dead instrument costs
proportional; the summary says which timeouts were used. A scale the firmware cannot keep up with shows
as lag and missing samples in the summary, never hidden.
"""

import asyncio
import calendar
import copy
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.emulators.bus import build_buses
from host_tools.emulators.firmware_proc import HIL_HEAP, FirmwareProcess
from host_tools.emulators.scenario import Scenario, ScenarioError, SimClock
from host_tools.errors import UserError
from host_tools.live import LiveView, sim_inputs, update_from_sim
from host_tools.report import write_report

CN_KIND = {"2011": "rtd", "2051": "min", "2061": "hour", "2031": "day", "2081": "restart"}
DEFAULT_SITE = REPO_ROOT / "sites" / "reference.json"
DEFAULT_SCENARIO = REPO_ROOT / "scenarios" / "reference.json"
DEFAULT_DURATION = "30m"
DEFAULT_SCALE = 30.0


# ---- inputs -----------------------------------------------------------------------------------------
def parse_duration(text):
    """Seconds from '3600', '3600s', '90m', '1h', '1d' (and combinations like '1h30m')."""
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        s += "s"
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise UserError("duration %r not understood; use e.g. 3600, 3600s, 90m, 1h or 1h30m" % (text,))
    mult = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total = sum(float(a) * mult[b] for a, b in parts)
    if total <= 0:
        raise UserError("duration %r must be positive" % (text,))
    return total


def load_site_config(path):
    """Device config dict from a site file: JSON (device config schema 1) or TOML (compiled)."""
    path = Path(path)
    if path.suffix == ".toml":
        from host_tools.siteconfig import load_site

        return load_site(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("%s: no such site file; pass --site FILE (JSON device config or TOML site)"
                        % path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError("%s: cannot read it (%s)" % (path, exc)) from None
    except ValueError as exc:
        raise UserError("%s: not valid JSON (%s)" % (path, exc)) from None
    if not isinstance(data, dict) or not data.get("buses") or not data.get("stations"):
        raise UserError("%s: not a device config (needs buses and stations; see firmware/CONFIG.md)" % path)
    return data


def load_scenario(path):
    try:
        return Scenario.load(path)
    except ScenarioError as exc:
        raise UserError("%s; see host_tools/emulators/scenario.py for the format" % exc) from None


def hil_config(site, scale, io_timeout_ms=None):
    """Copy of the site config with bus timeouts fitted to the time scale (real-time I/O, scaled ticks)."""
    cfg = copy.deepcopy(site)
    for bus in cfg["buses"]:
        if io_timeout_ms is not None:
            bus["timeout_ms"] = int(io_timeout_ms)
        elif scale > 1:
            bus["timeout_ms"] = max(30, int(bus.get("timeout_ms", 300) / scale))
    return cfg


# ---- received frames ----------------------------------------------------------------------------------
def _num(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def decode_frame(rx, center, utc_offset_min, stations_by_mn, sim_now):
    """One received frame as a JSON-able dict (the lines of received.jsonl)."""
    rec = {"center": center, "crc_ok": getattr(rx, "crc_ok", None), "error": getattr(rx, "error", None),
           "reply": getattr(rx, "reply", None), "received_sim": round(sim_now, 3),
           "received_real": getattr(rx, "received_at", None) or time.time()}
    raw = getattr(rx, "raw", b"") or b""
    rec["raw"] = raw.decode("utf-8", "replace").rstrip("\r\n")
    p = getattr(rx, "packet", None)
    if p is None:
        return rec
    rec.update({"qn": p.qn, "st": p.st, "cn": p.cn, "mn": p.mn, "flag": p.flag,
                "station": stations_by_mn.get(p.mn), "kind": CN_KIND.get(p.cn)})
    fields = p.fields()
    dt = fields.get("DataTime")
    if dt and len(dt) == 14 and dt.isdigit():
        tt = (int(dt[0:4]), int(dt[4:6]), int(dt[6:8]), int(dt[8:10]), int(dt[10:12]), int(dt[12:14]))
        rec["datatime"] = dt
        rec["t"] = calendar.timegm(tt) - 60 * utc_offset_min
    values = {}
    other = {}
    for key, val in fields.items():
        if "-" in key and key != "DataTime":
            code, field = key.split("-", 1)
            values.setdefault(code, {})[field] = val if field.endswith("Flag") else _num(val)
        elif key != "DataTime":
            other[key] = val
    rec["values"] = values
    if other:
        rec["cp"] = other
    return rec


class _PlatformThread:
    """The real platform receiver (host_tools.platform.PlatformServer), one per center, on its own loop."""

    def __init__(self, site, clock, on_record):
        self.site = site
        self.clock = clock
        self.on_record = on_record
        self.offset_min = int(site.get("site", {}).get("utc_offset_min", 480))
        self.by_mn = {st["mn"]: st["name"] for st in site["stations"]}
        self.loop = asyncio.new_event_loop()
        self.servers = {}
        self.ports = {}
        self.down = {}
        self.thread = threading.Thread(target=self.loop.run_forever, name="platform", daemon=True)

    def _make(self, center, port):
        from host_tools.platform import Registry, Store
        from host_tools.platform.registry import Device
        from host_tools.platform.server import PlatformServer

        stations = {st["name"]: st for st in self.site["stations"]}
        devices = [Device(stations[name]["mn"], info.get("pw"), stations[name].get("st"))
                   for name, info in center.get("stations", {}).items() if name in stations]

        def on_frame(rx, cname=center["name"]):
            self.on_record(decode_frame(rx, cname, self.offset_min, self.by_mn, self.clock.now()))

        return PlatformServer("127.0.0.1", port, Store(":memory:"), Registry(devices), center=center["name"],
                              on_frame=on_frame, clock=self.clock.now,
                              utc_offset_hours=self.offset_min / 60.0)

    def _call(self, coro, timeout=15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self):
        self.thread.start()
        for center in self.site["centers"]:
            self.up(center["name"])
        return self

    def up(self, name):
        center = next(c for c in self.site["centers"] if c["name"] == name)
        server = self._make(center, self.ports.get(name, 0))
        self._call(server.start())
        self.servers[name] = server
        self.ports[name] = server.port
        self.down[name] = False

    def go_down(self, name):
        server = self.servers.pop(name, None)
        self.down[name] = True
        if server is not None:
            self._call(server.stop())

    def stats(self):
        return {name: dict(s.stats) for name, s in self.servers.items()}

    def stop(self):
        for name in list(self.servers):
            try:
                self.go_down(name)
            except Exception:  # shutting down anyway
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Simulation:
    """Emulated buses + firmware + platform on one sim clock.

    sim = Simulation(site, scenario, out_dir, time_scale=30)
    sim.start(); sim.wait_until(scenario.start + 600); sim.stop(); sim.summary()
    """

    def __init__(self, site, scenario, out_dir=None, time_scale=DEFAULT_SCALE, heap=None, seed=None,
                 pacing=False, lead_s=60.0, io_timeout_ms=None, progress=None):
        if seed is not None:
            scenario = scenario.with_seed(seed)
        self.site = site
        self.scenario = scenario
        self.out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="emlog-sim-"))
        self.scale = float(time_scale)
        self.heap = heap or HIL_HEAP
        self.pacing = pacing
        self.lead_s = lead_s
        self.config = hil_config(site, self.scale, io_timeout_ms)
        self.progress = progress
        self.received = []
        self.platform_events = []
        self._cond = threading.Condition()
        self.clock = None
        self.buses = {}
        self.platform = None
        self.fw = None
        self._timers = []
        self.real_t0 = None
        self.stopped_at = None

    # ---- life cycle -----------------------------------------------------------------------------
    def start(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.clock = SimClock(self.scenario.start - self.lead_s, self.scale)
        self.real_t0 = time.time()
        self.buses = build_buses(self.config, self.scenario, self.clock, pacing=self.pacing,
                                 seed=self.scenario.seed)
        for bus in self.buses.values():
            bus.start()
        self.platform = _PlatformThread(self.config, self.clock, self._on_record).start()
        centers = {name: ("127.0.0.1", port) for name, port in self.platform.ports.items()}
        self.fw = FirmwareProcess(self.out_dir / "fs", {u: b.path for u, b in self.buses.items()}, self.clock,
                                  heap=self.heap, centers=centers)
        self.fw.start(self.config)
        for w in self.scenario.platform_down:
            names = [w["center"]] if w.get("center") else [c["name"] for c in self.config["centers"]]
            for name in names:
                self._at(self.scenario.start + w["from"], self._platform_switch, name, False)
                self._at(self.scenario.start + w["to"], self._platform_switch, name, True)
        return self

    def _at(self, sim_t, fn, *args):
        t = threading.Timer(self.clock.real_delay(sim_t), fn, args)
        t.daemon = True
        t.start()
        self._timers.append(t)

    def _platform_switch(self, name, up):
        if self.stopped_at is not None:
            return
        if up:
            self.platform.up(name)
        else:
            self.platform.go_down(name)
        with self._cond:
            self.platform_events.append({"center": name, "up": up, "sim_t": round(self.clock.now(), 3)})
            self._cond.notify_all()

    def _on_record(self, rec):
        with self._cond:
            self.received.append(rec)
            self._cond.notify_all()

    def stop(self):
        if self.stopped_at is not None:
            return self.summary()
        self.stopped_at = self.clock.now()
        for t in self._timers:
            t.cancel()
        if self.fw is not None:
            self.fw.stop()
        if self.platform is not None:
            self.platform.stop()
        for bus in self.buses.values():
            bus.stop()
        summary = self.summary()
        self.write_outputs(summary)
        return summary

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- waiting --------------------------------------------------------------------------------
    def wait_for(self, predicate, timeout):
        """Waits until predicate(self) is true, re-checked on every received frame (and each second)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ok = predicate(self)
                if ok:
                    return ok
                left = deadline - time.monotonic()
                if left <= 0 or (self.fw is not None and (not self.fw.alive() or self.fw.safe_mode())):
                    return predicate(self)
                self._cond.wait(min(left, 1.0))

    def wait_until(self, sim_t, timeout=None):
        """Waits until the sim clock reaches sim_t (False if the firmware died first)."""
        if timeout is None:
            timeout = self.clock.real_delay(sim_t) * 1.5 + 30
        ok = self.wait_for(lambda s: s.clock.now() >= sim_t, timeout)
        return ok and self.fw.alive() and not self.fw.safe_mode()

    # ---- results --------------------------------------------------------------------------------
    def records(self, kind=None, station=None, center=None):
        with self._cond:
            return [r for r in self.received if (kind is None or r.get("kind") == kind)
                    and (station is None or r.get("station") == station)
                    and (center is None or r.get("center") == center)]

    def served(self, device=None, fault=None):
        out = []
        for bus in self.buses.values():
            out.extend(bus.entries(device, fault))
        return out

    def summary(self):
        stats = self.fw.stats if self.fw else None
        hist = self.fw.stats_history if self.fw else []
        frames = {}
        for r in self.records():
            frames.setdefault(r["center"], {}).setdefault(r.get("cn") or "?", 0)
            frames[r["center"]][r.get("cn") or "?"] += 1
        peak = peak_raw = None
        for st in hist:
            v = st.get("heap_peak") if isinstance(st, dict) else None
            if isinstance(v, (int, float)):
                peak = v if peak is None else max(peak, v)
            for key in ("heap_peak_raw", "mem_alloc"):
                v = st.get(key) if isinstance(st, dict) else None
                if isinstance(v, (int, float)):
                    peak_raw = v if peak_raw is None else max(peak_raw, v)
        emu = {}
        for bus in self.buses.values():
            per = {}
            for e in bus.entries():
                d = per.setdefault(e["device"], {"requests": 0, "faults": {}})
                d["requests"] += 1
                if e["fault"]:
                    d["faults"][e["fault"]] = d["faults"].get(e["fault"], 0) + 1
            emu[bus.name] = {"counters": dict(bus.counters), "devices": per}
        now = self.stopped_at if self.stopped_at is not None else (self.clock.now() if self.clock else None)
        return {
            "scenario": self.scenario.name,
            "site": self.config.get("site", {}).get("name"),
            "time_scale": self.scale,
            "heap": self.heap,
            "sim_start": self.scenario.start,
            "sim_end": now,
            "sim_seconds": None if now is None else round(now - self.scenario.start, 3),
            "real_seconds": None if self.real_t0 is None else round(time.time() - self.real_t0, 3),
            "bus_timeouts_ms": {b["name"]: b.get("timeout_ms") for b in self.config["buses"]},
            "frames": frames,
            "records_received": len(self.records()),
            "samples": (stats or {}).get("samples"),
            "lag": (stats or {}).get("lag"),
            "bus_counters": (stats or {}).get("buses"),
            "emulator": emu,
            "peak_heap_bytes": peak,          # live data: max gc.mem_alloc() right after a collection
            "peak_heap_raw_bytes": peak_raw,  # including garbage not yet collected
            "safe_mode": None if self.fw is None else self.fw.safe_mode(),
            "firmware_cpu_s": None if self.fw is None else self.fw.cpu_s,
            "firmware_exit": None if self.fw is None else self.fw.returncode,
            "firmware_stats": stats,
            "platform_events": list(self.platform_events),
            "firmware_errors": [] if self.fw is None else self.fw.log_lines("ERROR")[-20:],
        }

    def write_outputs(self, summary):
        with open(self.out_dir / "received.jsonl", "w", encoding="utf-8") as fh:
            for r in self.records():
                fh.write(json.dumps(r, sort_keys=True) + "\n")
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n",
                                                  encoding="utf-8")
        if self.fw is not None:
            text = "\n".join(self.fw.log_lines()) + "\n"
            (self.out_dir / "firmware.log").write_text(text, encoding="utf-8")


# ---- the command --------------------------------------------------------------------------------------
def _fmt_sim(t, offset_min):
    tm = time.gmtime(t + 60 * offset_min)
    return "%04d-%02d-%02d %02d:%02d:%02d" % tm[:6]


def run(args):
    duration = parse_duration(args.duration)
    if args.time_scale <= 0:
        raise UserError("--time-scale must be positive (sim seconds per real second), got %r"
                        % args.time_scale)
    if not re.fullmatch(r"\d+[kKmM]?", args.heap):
        raise UserError("--heap %r: use a size like 64k or 256k" % args.heap)
    site = load_site_config(args.site or DEFAULT_SITE)
    scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
    offset = int(site.get("site", {}).get("utc_offset_min", 480))
    out = Path(args.out)
    sim = Simulation(site, scenario, out, time_scale=args.time_scale, heap=args.heap, seed=args.seed,
                     pacing=args.pacing)
    end = scenario.start + duration
    print("emlog simulate: %s, scenario %s, %g sim s at x%g (about %.0f s), heap %s, output %s"
          % (site.get("site", {}).get("name", "site"), scenario.name, duration, args.time_scale,
             (duration + sim.lead_s) / args.time_scale, args.heap, out), flush=True)
    try:
        sim.start()
    except FileNotFoundError as exc:
        sim.stop()
        raise UserError("%s; run from an emlog checkout with the firmware present" % exc) from None
    died = False
    try:
        view = LiveView(sys.stdout, offset_min=offset, start=scenario.start, end=end,
                        plain_every_s=60.0 * args.progress)
        while True:
            now = sim.clock.now()
            if now >= end + 5:
                break
            if not sim.fw.alive():
                died = True
                print("firmware exited with code %s; last lines:\n%s"
                      % (sim.fw.proc.poll(), sim.fw.log_tail(15)), flush=True)
                break
            update_from_sim(view, sim)
            tick = view.min_redraw_s if view.tty else 1.0
            sim.wait_for(lambda s: False, min(tick, max(0.05, sim.clock.real_delay(end + 5))))
        view.observe(sim.records())
        view.finish(*sim_inputs(sim))
        if not died:
            sim.fw.request_stats(5.0)
    finally:
        summary = sim.stop()
    print("done: %d frames %s; peak heap %s B; firmware CPU %s s; lag %s; wrote %s and %s" % (
        summary["records_received"], json.dumps(summary["frames"]), summary["peak_heap_bytes"],
        summary["firmware_cpu_s"], summary["lag"], out / "received.jsonl", out / "summary.json"), flush=True)
    print("report: %s" % write_report(out, site=sim.config), flush=True)
    return 1 if died else 0


def register(subparsers):
    p = subparsers.add_parser(
        "simulate", help="run a whole emulated site: instruments, firmware (MicroPython), platform",
        description="Runs the emulated instruments of a site on ptys, the real firmware under the "
        "MicroPython unix port with an emulated heap, and the HJ 212 platform, on a scaled clock. Writes "
        "OUT/received.jsonl (every frame the platform received), OUT/summary.json and OUT/report.html (plots).")
    p.add_argument("--duration", default=DEFAULT_DURATION,
                   help="simulated time: 3600, 3600s, 90m, 1h (default %(default)s)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--site", help="site file (device config JSON or site TOML); default sites/reference.json")
    p.add_argument("--scenario", help="scenario JSON; default scenarios/reference.json")
    p.add_argument("--time-scale", type=float, default=DEFAULT_SCALE,
                   help="sim seconds per real second (default %(default)s)")
    p.add_argument("--heap", default=HIL_HEAP,
                   help="MicroPython heap of the firmware (default %(default)s; see README, Heap)")
    p.add_argument("--seed", type=int, default=None, help="scenario noise seed (default: the scenario's)")
    p.add_argument("--pacing", action="store_true", help="pace emulated replies at the bus baud rate")
    p.add_argument("--progress", type=float, default=5.0,
                   help="sim minutes between plain progress lines when stdout is not a terminal (default 5); "
                   "on a terminal a status block is redrawn in place")
    p.set_defaults(func=run)
