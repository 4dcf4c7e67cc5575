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
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.emulators.bus import build_buses
from host_tools.emulators.firmware_proc import HIL_HEAP, FirmwareProcess, compiled_firmware
from host_tools.emulators.scenario import Scenario, ScenarioError, SimClock
from host_tools.emulators.waiting import wait_on
from host_tools.errors import UserError
from host_tools.live import LiveView, sim_inputs, update_from_sim
from host_tools.report import write_report

CN_KIND = {"2011": "rtd", "2051": "min", "2061": "hour", "2031": "day", "2081": "restart"}
DEFAULT_SITE = REPO_ROOT / "sites" / "reference.json"
SCENARIO_DIR = REPO_ROOT / "scenarios"
DEFAULT_SCENARIO = SCENARIO_DIR / "reference.json"
LOST_SAMPLE = re.compile(r"lost sample dev=(\S+) tick=(\d+)")
FIRST_TICK = re.compile(r"acq: first tick (\d+)")
DEFAULT_OUT = REPO_ROOT / "out" / "simulate"
DEFAULT_DURATION = "30m"
DEFAULT_SCALE = 30.0
RESTART_DELAY_S = 0.3  # real seconds a power cut keeps the logger off before it boots again


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


def _offset(text, what):
    """Sim seconds from a start/end of --outage: a duration, or 0."""
    if re.fullmatch(r"0+(\.0*)?[dhms]?", str(text).strip().lower()):
        return 0.0
    try:
        return parse_duration(text)
    except UserError:
        raise UserError("--outage %s %r not understood; use e.g. backup=6h-12h or national=90m-2h"
                        % (what, text)) from None


def parse_outage(text):
    """{"center", "from", "to"} (sim seconds from the scenario start) from 'CENTER=START-END'."""
    m = re.fullmatch(r"\s*([^=\s]+)\s*=\s*([^-\s]+)\s*-\s*([^-\s]+)\s*", str(text))
    if not m:
        raise UserError("--outage %r: expected CENTER=START-END in sim time from the start, e.g. backup=6h-12h"
                        % (text,))
    start, end = _offset(m.group(2), "start"), _offset(m.group(3), "end")
    if end <= start:
        raise UserError("--outage %r: the end must come after the start" % (text,))
    return {"center": m.group(1), "from": start, "to": end}


def power_cut_offsets(n, duration_s, seed):
    """n sorted sim offsets (seconds from the scenario start) for power cuts, reproducible from seed.

    Cuts fall in the middle 96 % of the run, at least 2 % of the run / n apart from each other so that
    two restarts never overlap."""
    if n <= 0:
        return []
    rng = random.Random("power-cuts:%s" % (seed,))
    lo, hi = 0.02 * duration_s, 0.98 * duration_s
    gap = 0.02 * duration_s / n
    # n points with minimum spacing `gap`: sample in a shrunk interval, then spread them back out.
    span = (hi - lo) - gap * (n - 1)
    pts = sorted(rng.uniform(0, span) for _ in range(n))
    return [round(lo + p + i * gap, 3) for i, p in enumerate(pts)]


def scenario_names():
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def resolve_scenario(text):
    """Scenario path from a bundled name (scenarios/NAME.json) or a file path."""
    if text is None:
        return DEFAULT_SCENARIO
    p = Path(text)
    if (SCENARIO_DIR / (str(text) + ".json")).is_file() and "/" not in str(text):
        return SCENARIO_DIR / (str(text) + ".json")
    if p.suffix == ".json" or "/" in str(text) or p.exists():
        if not p.is_file():
            raise UserError("--scenario %s: no such file; give a bundled name (%s) or a scenario JSON file"
                            % (text, ", ".join(scenario_names())))
        return p
    raise UserError("--scenario %r: unknown scenario; bundled: %s (or give a JSON file path)"
                    % (text, ", ".join(scenario_names())))


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

    def __init__(self, site, clock, on_record, external=()):
        self.site = site
        self.external = set(external)  # centers served elsewhere: no receiver here
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
            if center["name"] not in self.external:
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

    centers={"name": (host, port)}: that center of the site is served elsewhere (no receiver is started
    for it; the firmware connects to host:port; its frames are not in `received`).
    """

    def __init__(self, site, scenario, out_dir=None, time_scale=DEFAULT_SCALE, heap=None, seed=None,
                 pacing=False, lead_s=60.0, io_timeout_ms=None, progress=None, outages=(), power_cuts=(),
                 restart_delay_s=RESTART_DELAY_S, min_up_s=0.5, centers=None):
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
        # Outages: --outage windows on top of the scenario's platform_down ones (same mechanism: the
        # center's PlatformServer is stopped, so connections are refused, and started again on its port).
        self.outages = [dict(w) for w in scenario.platform_down] + [dict(w) for w in outages]
        # External centers {name: (host, port)}: no receiver is started for them, the firmware is pointed
        # there instead (e.g. an `emlog platform serve` process); their frames are not in `received`.
        self.external = {str(k): (str(v[0]), int(v[1])) for k, v in (centers or {}).items()}
        names = {c["name"] for c in self.config.get("centers") or []}
        unknown = sorted(set(self.external) - names)
        if unknown:
            raise ValueError("centers %s are not in the site (its centers: %s)"
                             % (", ".join(unknown), ", ".join(sorted(names)) or "none"))
        for w in self.outages:
            if w.get("center") in self.external:
                raise ValueError("outage of center %r: it is external, the simulation cannot stop it"
                                 % w["center"])
        # Power cuts: SIGKILL of the firmware at these sim offsets, reboot on the same fs after a real delay.
        self.power_cuts = sorted(float(t) for t in power_cuts)
        self.restart_delay_s = float(restart_delay_s)
        self.min_up_s = float(min_up_s)
        self.cuts = []  # {"planned", "sim_t", "up_sim_t"} per cut done
        self._cutting = False
        self._old_fws = []
        self._main = None
        self._stop_evt = threading.Event()
        self._cut_thread = None

    # ---- life cycle -----------------------------------------------------------------------------
    def start(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # A fresh logger: a previous run's filesystem (store, cursors) in the same --out would be re-sent.
        shutil.rmtree(self.out_dir / "fs", ignore_errors=True)
        self.clock = SimClock(self.scenario.start - self.lead_s, self.scale)
        self.real_t0 = time.time()
        self.buses = build_buses(self.config, self.scenario, self.clock, pacing=self.pacing,
                                 seed=self.scenario.seed)
        for bus in self.buses.values():
            bus.start()
        self.platform = _PlatformThread(self.config, self.clock, self._on_record, self.external).start()
        # Compiled once for every boot of the run (power cuts restart the same image).
        self._main = compiled_firmware()
        self.fw = self._new_fw()
        self.fw.start(self.config)
        for w in self.outages:
            names = [w["center"]] if w.get("center") else [c["name"] for c in self.config["centers"]
                                                            if c["name"] not in self.external]
            for name in names:
                self._at(self.scenario.start + w["from"], self._platform_switch, name, False)
                self._at(self.scenario.start + w["to"], self._platform_switch, name, True)
        if self.power_cuts:
            self._cut_thread = threading.Thread(target=self._cut_loop, name="power-cuts", daemon=True)
            self._cut_thread.start()
        return self

    def _new_fw(self):
        centers = {name: ("127.0.0.1", port) for name, port in self.platform.ports.items()}
        centers.update(self.external)
        return FirmwareProcess(self.out_dir / "fs", {u: b.path for u, b in self.buses.items()}, self.clock,
                               heap=self.heap, centers=centers, main=self._main)

    def _cut_loop(self):
        up_real = time.monotonic()
        for off in self.power_cuts:
            if self._stop_evt.wait(self.clock.real_delay(self.scenario.start + off)):
                return
            # Let the logger boot and mark the boot good before it is cut again: three boots in a row that
            # never became healthy put it in safe mode (its boot-loop guard), which is not what a power cut
            # test is about. A cut due meanwhile is made late (summary: planned vs sim_t).
            fw = self.fw
            fw.wait_for(lambda f: "HEALTHY" in f.lines, 30.0)
            if self._stop_evt.wait(max(0.0, up_real + self.min_up_s - time.monotonic())):
                return
            self.power_cut(planned=off)
            up_real = time.monotonic()

    def power_cut(self, planned=None):
        """SIGKILL the firmware (a power cut: nothing flushed, no shutdown), reboot it on the same
        filesystem after `restart_delay_s` real seconds."""
        with self._cond:
            if self.stopped_at is not None or self.fw is None:
                return
            self._cutting = True
            old = self.fw
            cut_t = self.clock.now()
        try:
            if old.proc is not None and old.proc.poll() is None:
                old.cpu_s = old.cpu_seconds()
                old.proc.send_signal(signal.SIGKILL)
                old.proc.wait(10)
            old.stop()
            self._stop_evt.wait(self.restart_delay_s)
            with self._cond:
                if self.stopped_at is not None:
                    return
                self._old_fws.append(old)
                fw = self._new_fw()
                fw.start()
                self.fw = fw
                self.cuts.append({"planned": None if planned is None else self.scenario.start + planned,
                                  "sim_t": round(cut_t, 3), "up_sim_t": round(self.clock.now(), 3)})
        finally:
            with self._cond:
                self._cutting = False
                self._cond.notify_all()

    def alive(self):
        """The logger is running (or rebooting after a power cut this simulation made)."""
        return self._cutting or (self.fw is not None and self.fw.alive())

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
        self._stop_evt.set()
        if self._cut_thread is not None:
            self._cut_thread.join(30)
        with self._cond:
            self.stopped_at = self.clock.now()
        for t in self._timers:
            t.cancel()
        if self.fw is not None:
            self.fw.stop()
        if self._main is not None:
            shutil.rmtree(self._main.parent, ignore_errors=True)
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
        """Waits until predicate(self) is true, re-checked on every received frame (and each second); gives
        up when the firmware died or went to safe mode other than by a power cut this simulation made."""

        def firmware_gone():
            return self.fw is not None and not self._cutting and (not self.fw.alive() or self.fw.safe_mode())

        return wait_on(self._cond, lambda: predicate(self), timeout, 1.0, firmware_gone)

    def wait_until(self, sim_t, timeout=None):
        """Waits until the sim clock reaches sim_t (False if the firmware died first)."""
        if timeout is None:
            timeout = self.clock.real_delay(sim_t) * 1.5 + 30
        ok = self.wait_for(lambda s: s.clock.now() >= sim_t, timeout)
        return bool(ok) and self.alive() and not self.fw.safe_mode()

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

    def firmware_lines(self, level=None):
        """Log lines of every boot of the run (power cuts restart the firmware)."""
        out = []
        for fw in self._old_fws + ([self.fw] if self.fw is not None else []):
            out.extend(fw.log_lines(level))
        return out

    def first_tick(self):
        """The first tick the firmware's first boot polled (its INFO line), or None before it got there."""
        for line in self.firmware_lines("INFO"):
            m = FIRST_TICK.search(line)
            if m:
                return int(m.group(1))
        return None

    def lost_samples(self):
        """{(device, tick)} without a usable sample, from the firmware's log: ticks before its first boot
        polled (a slow start on a loaded host) and every `lost sample` DEBUG line (missed, late, offline,
        timeout, error). Where the scenario made the instrument fail they agree with it; elsewhere they are
        what a loaded host cost, which the reference statistics must know."""
        out = set()
        for line in self.firmware_lines("DEBUG"):
            m = LOST_SAMPLE.search(line)
            if m:
                out.add((m.group(1), int(m.group(2))))
        first = self.first_tick()
        if first is not None:
            devices = [dev["name"] for bus in self.config["buses"] for dev in bus["devices"]]
            out.update((dev, t) for dev in devices for t in range(int(self.clock.sim_start), first))
        return out

    def firmware_cpu_s(self):
        total = None
        for fw in self._old_fws + ([self.fw] if self.fw is not None else []):
            if fw.cpu_s is not None:
                total = (total or 0.0) + fw.cpu_s
        return None if total is None else round(total, 3)

    def summary(self):
        stats = self.fw.stats if self.fw else None
        hist = []
        for fw in self._old_fws + ([self.fw] if self.fw is not None else []):
            hist.extend(fw.stats_history)
        frames = {}
        for r in self.records():
            frames.setdefault(r["center"], {}).setdefault(r.get("cn") or "?", 0)
            frames[r["center"]][r.get("cn") or "?"] += 1
        # The unix port holds the ROMFS image in its heap (the ESP32 maps it): the figures leave it out.
        image = self.fw.romfs_bytes if self.fw is not None else 0
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
            # live data: max gc.mem_alloc() right after a collection, ROMFS image excluded
            "peak_heap_bytes": None if peak is None else peak - image,
            "peak_heap_raw_bytes": None if peak_raw is None else peak_raw - image,  # garbage included
            "romfs_image_bytes": image,
            "safe_mode": None if self.fw is None else self.fw.safe_mode(),
            "firmware_cpu_s": self.firmware_cpu_s(),
            "firmware_exit": None if self.fw is None else self.fw.returncode,
            "firmware_stats": stats,
            "platform_events": list(self.platform_events),
            "outages": [{"center": w.get("center"), "from": self.scenario.start + w["from"],
                         "to": self.scenario.start + w["to"]} for w in self.outages],
            "power_cuts": {"planned": len(self.power_cuts), "done": len(self.cuts), "cuts": list(self.cuts)},
            "firmware_errors": self.firmware_lines("ERROR")[-20:],
        }

    def write_outputs(self, summary):
        with open(self.out_dir / "received.jsonl", "w", encoding="utf-8") as fh:
            for r in self.records():
                fh.write(json.dumps(r, sort_keys=True) + "\n")
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n",
                                                  encoding="utf-8")
        if self.fw is not None:
            text = "\n".join(self.firmware_lines()) + "\n"
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
    outages = [parse_outage(o) for o in args.outage or []]
    if args.power_cuts < 0:
        raise UserError("--power-cuts must be 0 or more, got %d" % args.power_cuts)
    scenario_path = resolve_scenario(args.scenario)
    site = load_site_config(args.site or DEFAULT_SITE)
    names = [c["name"] for c in site.get("centers") or []]
    for o in outages:
        if o["center"] not in names:
            raise UserError("--outage %s=...: the site has no center %r; its centers: %s"
                            % (o["center"], o["center"], ", ".join(names) or "none"))
        if o["from"] >= duration:
            raise UserError("--outage %s: starts after the end of the run (--duration %s)"
                            % (o["center"], args.duration))
    scenario = load_scenario(scenario_path)
    offset = int(site.get("site", {}).get("utc_offset_min", 480))
    out = Path(args.out) if args.out else DEFAULT_OUT
    seed = args.seed if args.seed is not None else scenario.seed
    cuts = power_cut_offsets(args.power_cuts, duration, seed)
    sim = Simulation(site, scenario, out, time_scale=args.time_scale, heap=args.heap, seed=args.seed,
                     pacing=args.pacing, outages=outages, power_cuts=cuts)
    end = scenario.start + duration
    extra = "".join(", %s down %g-%g s" % (o["center"], o["from"], o["to"]) for o in outages)
    if cuts:
        extra += ", %d power cuts (seed %s)" % (len(cuts), seed)
    print("emlog simulate: %s, scenario %s, %g sim s at x%g (about %.0f s), heap %s%s, output %s"
          % (site.get("site", {}).get("name", "site"), scenario.name, duration, args.time_scale,
             (duration + sim.lead_s) / args.time_scale, args.heap, extra, out), flush=True)
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
            if not sim.alive():
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
    print("done: %d frames %s; peak heap %s B; firmware CPU %s s; lag %s; power cuts %d; wrote %s and %s" % (
        summary["records_received"], json.dumps(summary["frames"]), summary["peak_heap_bytes"],
        summary["firmware_cpu_s"], summary["lag"], summary["power_cuts"]["done"], out / "received.jsonl",
        out / "summary.json"), flush=True)
    print("report: %s" % write_report(out, site=sim.config), flush=True)
    if summary["safe_mode"]:
        print("emlog simulate: the logger went into safe mode: %s" % summary["safe_mode"][len("SAFE MODE: "):],
              file=sys.stderr, flush=True)
        if "MemoryError" in summary["safe_mode"]:
            print("emlog simulate: it ran out of heap with a budget of %s beside its %d-byte ROMFS image; "
                  "the app needs more today (README, Heap): try --heap %s"
                  % (args.heap, summary["romfs_image_bytes"], HIL_HEAP), file=sys.stderr, flush=True)
        return 1
    return 1 if died else 0


def register(subparsers):
    p = subparsers.add_parser(
        "simulate", help="run a whole emulated site: instruments, firmware (MicroPython), platform",
        description="Runs the emulated instruments of a site on ptys, the real firmware under the "
        "MicroPython unix port with an emulated heap, and the HJ 212 platform, on a scaled clock. Writes "
        "OUT/received.jsonl (every frame the platform received), OUT/summary.json and OUT/report.html (plots).")
    p.add_argument("--duration", default=DEFAULT_DURATION,
                   help="simulated time: 3600, 3600s, 90m, 1h (default %(default)s)")
    p.add_argument("--out", default=None,
                   help="output directory (default out/simulate in the checkout; its fs/ is reset at start)")
    p.add_argument("--site", help="site file (device config JSON or site TOML); default sites/reference.json")
    p.add_argument("--scenario", metavar="NAME|FILE",
                   help="a bundled scenario (%s) or a scenario JSON file; default reference"
                   % ", ".join(scenario_names()))
    p.add_argument("--outage", action="append", metavar="CENTER=START-END",
                   help="center CENTER refuses connections from START to END, sim time from the start "
                   "(e.g. backup=6h-12h); repeatable")
    p.add_argument("--power-cuts", type=int, default=0, metavar="N",
                   help="kill the firmware (SIGKILL) at N random instants (reproducible with --seed) and "
                   "reboot it on the same filesystem after %g real s (default 0)" % RESTART_DELAY_S)
    p.add_argument("--time-scale", type=float, default=DEFAULT_SCALE,
                   help="sim seconds per real second (default %(default)s)")
    p.add_argument("--heap", default=HIL_HEAP,
                   help="heap budget of the app beside its ROMFS image, which the unix port also holds in "
                   "its heap (default %(default)s, the ESP32's; see README, Heap)")
    p.add_argument("--seed", type=int, default=None, help="scenario noise seed (default: the scenario's)")
    p.add_argument("--pacing", action="store_true", help="pace emulated replies at the bus baud rate")
    p.add_argument("--progress", type=float, default=5.0,
                   help="sim minutes between plain progress lines when stdout is not a terminal (default 5); "
                   "on a terminal a status block is redrawn in place")
    p.set_defaults(func=run)
