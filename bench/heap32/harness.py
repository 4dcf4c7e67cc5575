"""MicroPython side of bench/bench_heap32.py: the firmware's state for the reference site, and its live heap.

The same file runs on the unix port (64-bit, driven by bench/heap32/unix_driver.py) and on the webassembly
port (32-bit, driven by bench/heap32/run.mjs under node). A driver calls, in this order:

    setup(opts_json)      paths, work dir, feed file; nothing of the firmware imported yet
    step()                one phase or a slice of simulated time; returns "more" or "done"; ends by gc.collect()
    sample()              gc.mem_alloc() after the previous step's collection, into arrays allocated before
                          the baseline (so sampling adds nothing to what it measures)
    ...step()/sample() until "done"; then result() -> JSON text

The webassembly port runs a collection requested from Python only when control returns to JavaScript,
so the heap is read in the call after the step that asked for it; the unix driver keeps the same
call sequence (and sample() collects again, which is what the unix port needs: there gc.collect() is
immediate). Phases (each followed by a sample):

    imports  every device module of app/ and protocols/ (the host's list: not the validator, which
             load_config imports and drops itself, nor the host-only protocol modules), lazily loaded ones
             and lazily loaded asyncio classes included, so no code lands in the state figure; the
             figure `import_bytes` is this step's cost
    config   app.main.load_config(): the firmware's own loader and validator on work/config.json (cfg held)
    app      app.main.build(): store, rules, acquisition (buses, devices, channels, statistics), commands,
             uplinks, App; then cfg dropped, as app.main.main() does
    hour     ticks fed through Acquisition.tick(t) in slices of `slice_s` simulated seconds
    summary, drop_*   counters read; then the parts let go one by one (the breakdown, see DROPS)

The feed (one JSON line per tick, written on the host from the scenario by the same instrument models
the HIL emulators serve) holds each device's decoded values in its read plan's order: the harness puts
them in `Device.values` and sets the device flag with the device's own status rule, as a successful
poll would, then calls `acq.tick(t)`. No UART or socket is opened: the HAL is a stub whose clock is set
by the harness. Every record the app stores is turned, per link of its station, into the frames that
link would send (`Uplink._held` -> `Sender.frames`, the firmware's one packet builder) and acked in the
store (`Backlog.ack`), as a healthy connected link would: Uplink.notify (a no-op while no link is
connected) is replaced on the class by the harness's hook, so no per-instance state is added.
"""

import gc
import json
import sys

S = {}  # harness state (allocated before the baseline, except what the phases create)
PHASES = ["pre", "imports", "config", "app", "hour", "summary", "drop_uplinks", "drop_statistics", "drop_channels",
          "drop_acquisition", "drop_rules", "drop_commands", "drop_store", "drop_app"]
# Breakdown: after the hour the parts are let go one by one (every reference the app and the other parts
# hold to them), each drop measured like a step. Whatever two parts share is counted with the later one.
DROPS = PHASES[6:]
_DEFERRED = sys.platform == "webassembly"  # gc.collect() runs when control returns to JavaScript
PRELOAD = []  # modules imported before the baseline: every device module (opts "modules", from the host)
DROPPED_BY_LOADER = ("app.config", "app.rules.check")


class StubStream:
    """The stream under hal/port.py's Port (a machine.UART on the ESP32): never read or written, since
    the harness sets device values itself."""

    def write(self, data):
        raise OSError("bench stub stream: not for I/O")

    def readinto(self, buf):
        raise OSError("bench stub stream: not for I/O")


_NO_EXTRA = {}


class _StreamShim:
    """asyncio.StreamReader for a port without asyncio streams (webassembly): the fields of
    MicroPython's asyncio.stream.Stream, so the Port costs what it does on the device."""

    def __init__(self, s, e=None):
        self.s = s
        self.e = _NO_EXTRA if e is None else e  # one shared dict, like Stream's default argument
        self.out_buf = b""


async def _no_connection(host, port):
    raise OSError("bench: no sockets")


class StubHal:
    """The HAL contract (firmware/hal/__init__.py) without hardware: the clock is the harness's tick."""

    TIME_SCALE = 1

    def __init__(self, t, fs):
        self.t = t
        self.fs = fs

    def now(self):
        return self.t  # int seconds, as on the ESP32

    def now_ms(self):
        return self.t * 1000

    async def sleep_until(self, t):
        pass

    def set_time(self, t):
        self.t = int(t)

    def uart(self, num, baud=9600, parity="N", stop_bits=1, tx=None, rx=None, de=None):
        from hal_port import Port  # firmware/hal/port.py (copied beside the app: hal/__init__ needs the real HAL)

        return Port(StubStream(), baud, parity, stop_bits, None, min_silence_ms=0)

    def wdt(self, timeout_ms):
        return None

    def fs_root(self):
        return self.fs

    def center_addr_override(self):
        return {}

    def log_level(self):
        return None

    def net_ready(self):
        return False


def _sink(line):
    c = S["log_lines"]
    lvl = line[: line.find(" ")]
    c[lvl] = c.get(lvl, 0) + 1


def _frames(up, cn, cp):
    """Every packet of one upload written as the link would (Sender.frames, then each part's frame)."""
    P = S["packets"]
    frames, qns = up.tx.frames(cn, cp)
    P["packets"] += frames.n
    for i in range(frames.n):
        P["bytes"] += len(frames.frame(i, qns[i]))
    return frames.n


def _notify(up, ref, rec, cp=None):
    """Replaces Uplink.notify: what a connected, answered link does with a live record (session loop:
    _held, frames for every part, then the store ack), minus the socket."""
    from app.cp import CN

    item = up._held(ref, rec, cp)
    if item[3] is None or not up._sends(item[1], item[2]):
        up.c["skipped"] += 1
    else:
        S["packets"]["records"] += 1
        up.c["sent"] += _frames(up, CN[item[1]], item[3])
        up.c["acked"] += 1
    up.backlog.ack(ref)
    return item[3]


def setup(opts_json):
    o = json.loads(opts_json)
    for p in o["paths"]:
        if p not in sys.path:
            sys.path.insert(0, p)
    S["work"] = o["work"]
    S["feed"] = o["feed"]
    S["slice_s"] = o.get("slice_s", 15)
    PRELOAD.extend(o["modules"])
    S["phase"] = 0
    S["last"] = 0
    S["n"] = 0
    S["pre"] = 0
    S["packets"] = {"records": 0, "packets": 0, "bytes": 0, "urgent": 0}
    S["k"] = 0
    S["missing_modules"] = []
    S["shims"] = []
    S["log_lines"] = {"DEBUG": 0, "INFO": 0, "WARN": 0, "ERROR": 0}
    # every key the phases set, made now: a dict growing after the baseline would be counted as state
    for key in ("cfg", "app", "summary", "f", "start", "ticks", "plan_len", "mem", "at", "ph", "hal",
                "modules_at_base"):
        S[key] = None
    return "ok"


def _imports():
    missing = S["missing_modules"]
    import asyncio

    for name in ("Event", "Lock", "StreamReader", "open_connection", "wait_for", "gather", "TimeoutError"):
        getattr(asyncio, name, None)  # asyncio loads some of these lazily (unix port): before the baseline
    if not hasattr(asyncio, "StreamReader"):
        asyncio.StreamReader = _StreamShim
        S["shims"].append("asyncio.StreamReader")
    if not hasattr(asyncio, "open_connection"):  # app/link.py keeps it as its default connect; never called
        asyncio.open_connection = _no_connection
        S["shims"].append("asyncio.open_connection")
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception as exc:  # a module this port cannot import: the run says which
            missing.append("%s (%s: %s)" % (name, type(exc).__name__, exc))
    from app import log
    from app.uplink import Uplink

    log.setup(sink=_sink)
    Uplink.notify = lambda self, ref, rec, cp=None: _notify(self, ref, rec, cp)
    S["modules_at_base"] = list(sys.modules)
    f = open(S["feed"])
    head = json.loads(f.readline())
    S["f"] = f
    S["start"] = head["start"]
    S["ticks"] = head["ticks"]
    S["plan_len"] = head["plan_len"]
    # The samples' storage, allocated before the baseline: a growing list would be counted as state.
    from array import array

    n = len(PHASES) + S["ticks"] // S["slice_s"] + 4
    S["mem"] = array("i", [0] * n)  # gc.mem_alloc() of each sample
    S["at"] = array("i", [0] * n)  # tick offset of each sample
    S["ph"] = bytearray(n)  # phase index of each sample
    S["hal"] = StubHal(head["start"], S["work"])


def _config():
    from app import main

    cfg, errors = main.load_config(S["work"])
    if errors:
        raise ValueError("config rejected by the firmware: %s" % errors)
    S["cfg"] = cfg


def _app():
    from app import clock as clockmod
    from app import log, main

    hal = S["hal"]
    clock = clockmod.Clock(hal)
    log.setup(clock=clock.now)
    app = main.build(hal, clock, {"boots": 1, "failed": 1}, S["work"], S["start"], S["cfg"])
    S["cfg"] = None  # app.main.main() drops its config once the parts are built
    S["app"] = app
    for _bus, devs in app.acq.buses:
        for dev in devs:
            n = S["plan_len"].get(dev.name)
            if n != len(dev.values):
                raise ValueError("feed has %s values for %s, its read plan %d" % (n, dev.name, len(dev.values)))
    S["plan_len"] = None
    # What a link sends first on connecting: its RAM notices (the 2081 restart notice).
    P = S["packets"]
    from app.cp import CN

    for up in app.links:
        while up.urgent:
            item = up.urgent.pop(0)
            _frames(up, CN[item[0]], item[1])
            P["urgent"] += 1


def _hour():
    app = S["app"]
    acq = app.acq
    hal = S["hal"]
    f = S["f"]
    start = S["start"]
    end = min(S["k"] + S["slice_s"], S["ticks"])
    k = S["k"]
    while k < end:
        t = start + k
        hal.t = t
        line = json.loads(f.readline())
        for _bus, devs in acq.buses:
            for dev in devs:
                if not dev.due(t):
                    continue
                dev.t = t
                vals = line[dev.name]
                dst = dev.values
                for i in range(len(dst)):
                    dst[i] = vals[i]
                dev.flag = dev._status_flag(dst)
                dev.ok += 1
        acq.tick(t)
        k += 1
    S["k"] = k
    return k >= S["ticks"]


def _summary():
    app = S["app"]
    return {
        "ticks": S["k"],
        "records": app.records,
        "packets": S["packets"],
        "rule_events": app.rules.events if app.rules is not None else None,
        "links": dict([(u.name, {"sent": u.c["sent"], "acked": u.c["acked"], "skipped": u.c["skipped"],
                                 "split": u.c["split"]}) for u in app.links]),
        "store": app.store.snapshot(),
        "log_lines": S["log_lines"],
        "events": _events(app),
    }


def _events(app):
    """`offset_s rule state` of every stored rule event (read back from the store after the hour)."""
    out = []
    for st, _, _ in app.acq.stations:
        for rec in app.store.query("evt", st.name, 0, 1 << 40):
            d = rec.get("data") or {}
            out.append("+%ds %s %s" % (rec["t"] - S["start"], d.get("rule"), d.get("state")))
    return out


def _drop(ph):
    app = S["app"]
    if ph == "drop_uplinks":
        app.links = ()
        app.by_station = {}
        if app.commands is not None:
            app.commands.links = []
    elif ph == "drop_statistics":  # the minute/hour/day periods of each station (app/stats.py)
        acq = app.acq
        acq.stations = [(x[0], None, None) for x in acq.stations]
    elif ph == "drop_channels":  # the stations' channels (app/channels.py) and the rules' inputs
        acq = app.acq
        acq.stations = []
        acq._rvalues = None
        acq._rpts = None
        acq._rpoints = None
    elif ph == "drop_acquisition":  # what is left: buses, devices (read plans, values), counters
        app.acq = None
        if app.commands is not None:
            app.commands.acq = None
    elif ph == "drop_rules":
        app.rules = None
        if app.commands is not None:
            app.commands.rules = None
    elif ph == "drop_commands":
        app.commands = None
        try:
            from app.commands import set_audit_sink  # its module keeps the audit sink (into the store)

            set_audit_sink(None, None)
        except ImportError:
            pass
    elif ph == "drop_store":
        app.store = None
    elif ph == "drop_app":
        S["app"] = None


def step():
    """One phase, or one slice of the hour; ends with gc.collect() (on webassembly: runs on return)."""
    ph = PHASES[S["phase"]]
    S["last"] = S["phase"]
    done = True
    if ph == "pre":
        pass
    elif ph == "imports":
        _imports()
    elif ph == "config":
        _config()
    elif ph == "app":
        _app()
    elif ph == "hour":
        done = _hour()
    elif ph == "summary":
        S["summary"] = _summary()
    else:
        _drop(ph)
    if done:
        S["phase"] += 1
    gc.collect()
    return "done" if S["phase"] >= len(PHASES) else "more"


def sample():
    """The live heap after the previous step: on webassembly its collection ran when it returned to
    JavaScript; on unix gc.collect() is immediate, so it runs here, once the step's frame is gone.
    Stored in arrays allocated before the baseline: sampling adds nothing to the heap it measures."""
    if not _DEFERRED:
        gc.collect()
    m = gc.mem_alloc()
    if S["last"] == 0:
        S["pre"] = m
        return m
    i = S["n"]
    S["mem"][i] = m
    S["at"][i] = S["k"]
    S["ph"][i] = S["last"]
    S["n"] = i + 1
    return m


def result():
    mem = S["mem"]
    at = S["at"]
    phs = S["ph"]
    n = S["n"]
    phase_end = {}
    for i in range(n):
        phase_end[PHASES[phs[i]]] = mem[i]
    base = phase_end["imports"]
    hour = [i for i in range(n) if PHASES[phs[i]] in ("app", "hour")]
    peak = max([mem[i] for i in hour])
    peak_k = [at[i] for i in hour if mem[i] == peak][0]
    by_min = [mem[i] - base for i in hour if at[i] % 60 == 0]
    parts = {}
    prev = phase_end["summary"]
    for ph in DROPS:
        parts[ph[5:]] = prev - phase_end[ph]
        prev = phase_end[ph]
    # the summary dict (made after the hour, before the drops) is not the app's
    parts["left_after_dropping_all"] = prev - base - (phase_end["summary"] - mem[hour[-1]])
    r = {
        "implementation": "MicroPython %s (%s; %s)" % (".".join([str(x) for x in sys.implementation.version[:3]]),
                                                     sys.version, getattr(sys.implementation, "_machine", "")),
        "platform": sys.platform,
        "pointer_bits": 64 if sys.maxsize > 2 ** 32 else 32,
        "harness_alloc": S["pre"],
        "import_bytes": base - S["pre"],
        "base_alloc": base,
        "state_bytes": peak - base,
        "peak_at_tick": peak_k,
        "after_config_bytes": phase_end["config"] - base,
        "after_app_bytes": phase_end["app"] - base,
        "end_of_hour_bytes": mem[hour[-1]] - base,
        "heap_by_minute_bytes": by_min,
        "parts_bytes_at_end": parts,
        "samples": n + 1,
        "missing_modules": S["missing_modules"],
        "shims": S["shims"],
        "preloaded_modules": len(PRELOAD),
        "modules_imported_after_base": [m for m in sys.modules if m not in S["modules_at_base"]],
        "validator_dropped": not any([m in sys.modules for m in DROPPED_BY_LOADER]),
    }
    r.update(S["summary"])
    return json.dumps(r)
