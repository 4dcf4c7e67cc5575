"""Wiring: config -> HAL, clock, acquisition, per (center, station) uplinks, console, housekeeping.

`build(...)` makes the running app's parts from a valid config, in dependency order, and hands them to
`App(...)`; in safe mode the App has none.

Stdout lines the HIL harness parses (one line each, no wrapping):
  `STATS {json}`     every _STATS_EVERY_S sim seconds, and a final one on shutdown (`"final": true`)
  `SAFE MODE: why`   once when the logger enters safe mode (then `ERROR config: ...` per config error)
  `READY {json}`     once when the application is running (links, buses, heap)
  `HEALTHY`          once when the boot is marked good and the watchdog is started
Log lines are `LEVEL module: text t=<sim s>` (app/log.py).
"""

import asyncio
import gc
import json
import sys

from micropython import const

from app import log

_STATS_EVERY_S = const(60)  # sim seconds between STATS lines
_HEALTHY_AFTER_S = const(60)  # sim seconds up; or earlier, after the first complete poll cycle
_WDT_TIMEOUT_MS = const(30000)
_HOUSEKEEPING_MS = const(1000)  # real ms between gc/heap/watchdog rounds
_CONFIG_FILE = const("config.json")
_CONFIG_SEAL = const("config.sha256")  # sha256 of config.json as `emlog build` validated it
_STORE_DIR = const("store")  # the record store's directory on the device filesystem


class App:
    def __init__(self, hal, clock, boot_state, fs_root, boot_t, acq=None, links=(), store=None, commands=None,
                 rules=None, summary=None):
        """The parts (see `build`): `acq` the acquisition, `links` the uplinks, `store` the app.store.Store
        (every record, event and audit entry, until acked and needed), `commands` the platform commands,
        `rules` the app.rules.Rules when the config has `rules`, `summary` the console `config` lines (kept
        instead of the config). Without an acquisition the app waits for `enter_safe`."""
        self.hal = hal
        self.clock = clock
        self.boot_state = boot_state or {}
        self.fs_root = fs_root
        self.boot_t = boot_t
        self.acq = acq
        self.links = links
        self.by_station = {}
        for up in links:
            self.by_station.setdefault(up.station, []).append(up)
        self.store = store
        self.commands = commands
        self.rules = rules
        self.summary = summary
        self.mode = "starting" if acq is None else "run"
        self.safe_reason = None
        self.heap_peak = 0  # max gc.mem_alloc() right after a collection (live data)
        self.heap_peak_raw = 0  # max gc.mem_alloc() seen at any housekeeping round (incl. garbage)
        self.healthy = False
        self.wdt = None
        self.records = {}  # kind -> records handed over by the acquisition
        self.relay_state = {}  # relay name -> last state driven
        self.store_errors = 0
        self.stopping = False

    # -- records from the acquisition, events from the rules -------------------------------------
    def on_record(self, rec):
        kind = rec.get("kind")
        self.records[kind] = self.records.get(kind, 0) + 1
        self._store(rec, self.by_station.get(rec.get("station"), ()))

    def _store(self, rec, links):
        """Appends to the store (durable when this returns), then tells the links that send it."""
        try:
            ref = self.store.append(rec)
        except Exception as exc:  # a full or failing filesystem must not stop the acquisition
            self.store_errors += 1
            if self.store_errors <= 3 or self.store_errors % 100 == 0:
                log.error("store", "%s record at t=%s not stored (%s); %d so far"
                          % (rec.get("kind"), rec.get("t"), exc, self.store_errors))
            return None
        cp = None  # the record's CP text: encoded by the first link that sends it, shared by the others
        for up in links:
            cp = up.notify(ref, rec, cp)
        return ref

    def on_event(self, ev):
        """A rules event: stored (every one), uploaded as 3020 unless rate-limited on the wire."""
        if ev.get("t") is None:
            ev["t"] = int(self.clock.now())
        if not self.rules.should_send(ev):
            ev["wire"] = 0  # the uplinks skip it; the store keeps it
        st = ev.get("station") or ""
        state = ev.get("state")
        if state in ("start", "count", "event", "warn"):
            log.warn("rules", ev.get("text", ""))
        else:
            log.info("rules", ev.get("text", ""))
        self._store({"kind": "evt", "station": st, "t": ev["t"], "data": ev},
                    self.by_station.get(st, ()) if st else self.links)

    def on_store_drop(self, kind, n):
        log.error("store", "store full: %d unsent %s records dropped (overflow policy)" % (n, kind))
        for up in self.links:
            up.recheck()  # the store appends a site-wide drop alarm event itself: every link reports it

    def apply_relays(self):
        """Drives the board relays from the rules' state (on while any of their rules is active)."""
        if self.rules is None:
            return
        for name, on in self.rules.relays().items():
            if self.relay_state.get(name) != on:
                self.relay_state[name] = on
                drive = getattr(self.hal, "relay", None)
                try:
                    if drive is not None:
                        drive(name, on)
                except Exception as exc:
                    log.error("relay", "%s: %s" % (name, exc))
                log.info("relay", "%s %s" % (name, "on" if on else "off"))

    def save_cursors(self):
        for up in self.links:
            up.save_cursor()

    # -- views for console and STATS -------------------------------------------------------------
    def heap(self):
        return {
            "mem_alloc": gc.mem_alloc(),
            "mem_free": gc.mem_free(),
            "heap_peak": self.heap_peak,
            "heap_peak_raw": self.heap_peak_raw,
        }

    def snapshot(self):
        """One flat dict: the STATS line and the console `counters` reply. The acquisition's snapshot
        (samples, lag, buses ...) is merged in at the top level."""
        now = self.clock.now()
        d = {"t": int(now), "up_s": int(now - self.boot_t), "mode": self.mode, "records": self.records}
        d.update(self.heap())
        if self.acq is not None:
            try:
                d.update(self.acq.snapshot())
            except Exception as exc:
                d["acq_error"] = str(exc)
        links = {}
        centers = {}
        for up in self.links:
            s = up.snapshot()
            links[up.name] = s
            c = centers.setdefault(up.center, {"queue": 0, "dropped": 0, "connected": 0, "acked": 0})
            c["queue"] += s["queue"]
            c["dropped"] = s["dropped"]  # store drops are site-wide: not summed over the links
            c["connected"] += 1 if s["connected"] else 0
            c["acked"] += s["acked"]
        d["links"] = links
        d["centers"] = centers
        if self.store is not None:
            d["store"] = self.store.snapshot()
            d["store"]["errors"] = self.store_errors
        if self.rules is not None:
            r = self.rules.snapshot()
            active = [k for k in r["rules"] if r["rules"][k].get("active")]
            d["rules"] = {"level": r["level"], "events": r["events"], "ticks": r["ticks"],
                          "wire_suppressed": r["wire_suppressed"], "active": active,
                          "relays": self.relay_state}
        if self.safe_reason:
            d["safe_reason"] = self.safe_reason
        return d

    def status(self):
        now = self.clock.now()
        st = {
            "mode": self.mode,
            "uptime_s": int(now - self.boot_t),
            "boots": self.boot_state.get("boots"),
            "failed_boots": self.boot_state.get("failed"),
            "healthy": self.healthy,
            "heap": self.heap(),
        }
        if self.safe_reason:
            st["safe_reason"] = self.safe_reason
        if self.links:
            st["links"] = [
                "%s %s q=%d" % (u.name, "up" if u.link.connected else "down", u.pending()) for u in self.links
            ]
        return st

    def store_view(self):
        if self.store is None:
            return {"store": None}
        d = self.store.snapshot()
        d["pending"] = dict([(u.name, self.store.pending_count(u.name)) for u in self.links])
        return d

    def rules_view(self):
        if self.rules is None:
            return {"rules": None}
        d = self.rules.snapshot()
        d["relays"] = self.relay_state
        return d

    def config_summary(self):
        return self.summary or ["no valid config (%s)" % (self.safe_reason or "not loaded")]

    def clear_boot(self):
        import boot

        boot.clear(self.fs_root)
        return "boot counter cleared; the next boot is a normal one"

    def print_stats(self, final=False):
        d = self.snapshot()
        if final:
            d["final"] = True
        log.print_json("STATS ", d)

    # -- tasks -----------------------------------------------------------------------------------
    async def housekeeping(self):
        next_stats = self.boot_t + _STATS_EVERY_S
        while not self.stopping:
            before = gc.mem_alloc()
            if before > self.heap_peak_raw:
                self.heap_peak_raw = before
            gc.collect()
            live = gc.mem_alloc()
            if live > self.heap_peak:
                self.heap_peak = live
            now = self.clock.now()
            if (
                self.mode == "run"
                and not self.healthy
                and (now - self.boot_t >= _HEALTHY_AFTER_S or self._polled())
            ):
                self._mark_healthy()
            if self.wdt is not None:
                self.wdt.feed()
            if now >= next_stats:
                next_stats += _STATS_EVERY_S * (1 + int((now - next_stats) // _STATS_EVERY_S))
                try:
                    self.print_stats()
                except Exception as exc:  # housekeeping (watchdog, gc) must outlive a failed report
                    log.error("main", "STATS failed: %s" % exc)
            await asyncio.sleep_ms(_HOUSEKEEPING_MS)

    def _polled(self):
        acq = self.acq
        if acq is None:
            return False
        try:
            return bool(acq.polled_once())
        except Exception:
            return False

    def _mark_healthy(self):
        import boot

        self.healthy = True
        self.boot_state = boot.mark_good(self.fs_root)
        try:
            make = getattr(self.hal, "wdt", None) or getattr(self.hal, "WDT", None)
            self.wdt = make(_WDT_TIMEOUT_MS) if make else None
        except Exception as exc:
            log.warn("main", "no watchdog (%s)" % exc)
        log.info("main", "healthy: boot marked good, watchdog %s" % ("started" if self.wdt else "absent"))
        print("HEALTHY")

    async def console_task(self):
        from app.console import Console

        con = Console(self)
        await con.run(self.hal.console_stream() if hasattr(self.hal, "console_stream") else None)
        while not self.stopping:  # console closed (end of input): keep the logger running
            await asyncio.sleep_ms(_HOUSEKEEPING_MS)

    def stop(self):
        self.stopping = True
        self.save_cursors()

    # -- modes -----------------------------------------------------------------------------------
    def enter_safe(self, reason, details=()):
        self.mode = "safe"
        self.safe_reason = reason
        print("SAFE MODE: " + reason)
        log.error("main", "safe mode: " + reason)
        for line in details:
            log.error("config", line)

    async def run(self):
        tasks = [asyncio.create_task(self.housekeeping()), asyncio.create_task(self.console_task())]
        if self.mode == "run":
            for up in self.links:
                tasks.append(asyncio.create_task(up.run()))
            if self.acq is not None:
                tasks.append(asyncio.create_task(self.acq.run()))
            gc.collect()
            print("READY " + json.dumps({"links": [u.name for u in self.links], "heap": self.heap()}))
        while not self.stopping:
            await asyncio.sleep_ms(200)
        for t in tasks:
            t.cancel()


def build(hal, clock, boot_state, fs_root, boot_t, cfg):
    """The running app from a valid config: its parts built in dependency order and handed to App."""
    from app.commands import Commands
    from app.params import Params
    from app.store import Store
    from app.uplink import Uplink

    params = Params(fs_root)
    params.overlay(cfg)  # platform-set intervals survive reboots
    offset = cfg["site"]["utc_offset_min"]
    override = _center_override(hal)
    pairs = []  # (center, station) of each link
    for c in cfg["centers"]:
        if c["name"] in override:
            c["host"], c["port"] = override[c["name"]][0], int(override[c["name"]][1])
        for st in cfg["stations"]:
            if st["name"] in c["stations"]:
                pairs.append((c, st))
    # The store's links, routing rtd by the realtime switch as persisted.
    routes = [{"name": c["name"] + "/" + st["name"], "station": st["name"],
               "realtime": params.get_link(c["name"], st["name"], "realtime", c.get("realtime", True))}
              for c, st in pairs]
    # The store, the acquisition and the rules report to the app, which is built from them: they reach it
    # through these functions, bound to it below (nothing is produced before the app runs).
    app = None

    def on_record(rec):
        app.on_record(rec)

    def on_event(ev):
        app.on_event(ev)

    def on_drop(kind, n):
        app.on_store_drop(kind, n)

    def on_rules():
        app.apply_relays()

    sc = cfg.get("store") or {}
    store = Store(_join(fs_root, _STORE_DIR), routes, max_bytes=sc.get("max_bytes", 1536 * 1024),
                  seg_bytes=sc.get("seg_bytes", 8192), on_drop=on_drop)
    rules = None
    if cfg.get("rules"):
        from app.rules import Rules

        rules = Rules(cfg, on_event)
    from app.acquisition import Acquisition

    acq = Acquisition(cfg, hal, clock, on_record, rules=rules, on_rules=on_rules)
    commands = Commands(clock.now, offset * 60, cfg["logger"], params=params, set_time=getattr(hal, "set_time", None),
                        acq=acq, history=store, rules=rules)
    seed = int(boot_t) & 0xFFFF
    links = []
    for c, st in pairs:
        up = Uplink(c, st, clock.now, offset, store=store, commands=commands, seed=seed, sleep=clock.sleep)
        up.restart_notice(boot_t)
        links.append(up)
    app = App(hal, clock, boot_state, fs_root, boot_t, acq=acq, links=links, store=store, commands=commands,
              rules=rules, summary=config_summary(cfg))
    return app


def config_summary(cfg):
    """The console `config` lines of a valid config."""
    lg = cfg["logger"]
    out = [
        "site %s, UTC%+d min, sample %d s, rtd %d s, min interval %d min"
        % (
            cfg["site"]["name"],
            cfg["site"]["utc_offset_min"],
            lg["sample_s"],
            lg["rtd_interval_s"],
            lg["min_interval_min"],
        )
    ]
    for b in cfg["buses"]:
        out.append(
            "bus %s uart%d %d %s%d: %s"
            % (
                b["name"],
                b["uart"],
                b["baud"],
                b["parity"],
                b["stop_bits"],
                ", ".join(["%s@%d(%s)" % (d["name"], d["address"], d["template"]) for d in b["devices"]]),
            )
        )
    for s in cfg["stations"]:
        out.append(
            "station %s MN=%s ST=%s: %s"
            % (s["name"], s["mn"], s["st"], " ".join([c["code"] for c in s["channels"]]))
        )
    for c in cfg["centers"]:
        out.append(
            "center %s %s:%d stations %s overtime %d s recount %d realtime %s"
            % (
                c["name"],
                c["host"],
                c["port"],
                ",".join(c["stations"]),
                c["overtime_s"],
                c["recount"],
                c["realtime"],
            )
        )
    return out


def _center_override(hal):
    """Center name -> [host, port] replacing the configured address (HIL: EMLOG_CENTER_ADDR via the HAL)."""
    fn = getattr(hal, "center_addr_override", None)
    return (fn() or {}) if fn is not None else {}


def load_config(fs_root):
    """(cfg, None) or (None, errors). A config matching the build's seal (_CONFIG_SEAL) was validated by the
    build and is taken as it is; any other goes through the validator, which is unloaded afterwards."""
    path = _join(fs_root, _CONFIG_FILE)
    cfg = _sealed_config(path, _join(fs_root, _CONFIG_SEAL))
    if cfg is not None:
        return cfg, None
    from app import config as cfgmod

    try:
        cfg = cfgmod.load(path)
        errors = None
    except cfgmod.ConfigError as exc:
        cfg = None
        errors = exc.errors
    del cfgmod
    # The validators are big and needed once: drop them from the module table (and their packages)
    # so the collector can free their code.
    import app

    for name, pkg, attr in (("app.config", app, "config"), ("app.rules.check", None, "check")):
        sys.modules.pop(name, None)
        if pkg is None:
            pkg = sys.modules.get("app.rules")
        if pkg is not None and hasattr(pkg, attr):
            delattr(pkg, attr)
    gc.collect()
    return cfg, errors


def _sealed_config(path, seal_path):
    """The config when its bytes match the seal, else None (no seal, a config edited since, unreadable)."""
    try:
        with open(seal_path) as f:
            want = f.read().strip()
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    import binascii
    import hashlib

    if binascii.hexlify(hashlib.sha256(data).digest()).decode() != want:
        log.warn("main", "config.json does not match its seal (edited after the build?): validating it")
        return None
    try:
        cfg = json.loads(data)
    except ValueError:
        return None
    return cfg if isinstance(cfg, dict) else None


def _start(hal, clock, boot_state):
    """The app, running or safe. Its own frame: the config and the build's temporaries must not stay
    reachable from a frame that lives as long as the app (MicroPython does not clear popped value-stack
    slots, and the collector scans them: the config alone is about 20 KB on the 64-bit port)."""
    fs_root = _fs_root(hal)
    boot_t = clock.now()
    cfg, errors = load_config(fs_root)
    app = None
    details = ()
    if errors:
        why = "invalid config (%d problem%s)" % (len(errors), "" if len(errors) == 1 else "s")
        details = errors
    elif boot_state and boot_state.get("safe"):
        why = boot_state["safe"] + "; type `clear` and reboot to leave safe mode"
    else:
        why = None
        try:
            app = build(hal, clock, boot_state, fs_root, boot_t, cfg)
        except Exception as exc:
            why = "start failed: %s" % _exc_text(exc)
    if app is None:
        app = App(hal, clock, boot_state, fs_root, boot_t, summary=config_summary(cfg) if cfg else None)
        app.enter_safe(why or "start failed", details)
    return app


def main(boot_state=None):
    import hal

    from app import clock as clockmod

    clock = clockmod.Clock(hal)
    log.setup(clock=clock.now)
    if hal.log_level():  # unix/HIL: EMLOG_LOG_LEVEL; the ESP32 starts at INFO
        log.set_level(hal.log_level())
    app = _start(hal, clock, boot_state)
    gc.collect()
    try:
        asyncio.run(app.run())
    except KeyboardInterrupt:
        log.info("main", "interrupted")
    finally:
        app.save_cursors()
        app.print_stats(final=True)
    return app


def _join(root, name):
    return (root.rstrip("/") + "/" + name) if root else name


def _fs_root(hal):
    root = getattr(hal, "fs_root", "")
    return root() if callable(root) else root


def _exc_text(exc):
    try:
        import io

        buf = io.StringIO()
        sys.print_exception(exc, buf)
        return buf.getvalue().strip().replace("\n", " | ")
    except Exception:
        return "%s: %s" % (type(exc).__name__, exc)
