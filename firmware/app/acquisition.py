"""Acquisition task: ticks every sample_s sim seconds, polls due devices (one task per bus, buses in
parallel), computes channels, feeds statistics, emits records through on_record(rec).

Poll order on a bus: devices feeding station channels first (config order), then devices only the rules
read (power meters, contacts), so a bus too slow for a tick costs rule inputs before statistics.

Timing contract (HIL emulators): sample k is taken at sim second k. A poll must complete before
tick + 1 sim second, else its reply may carry the next second's value: such a poll is not used
(flag B, counted `late`), and a device whose poll could not even start before then is `missed`.
Whole ticks the loop could not serve (it fell behind) still produce samples, all B, and count in
`lag.missed_ticks`; nothing is ever stamped with another tick's value.

Records (contract with the uplink): {"kind": "rtd"|"min"|"hour"|"day", "station", "t", "values"}.

Rules (optional, `set_rules`): every tick `rules.tick(t, values, points)` with values
`{station: {code: (value, flag, zs)}}` (dicts reused from tick to tick) and `points` holding only the
device points the rules reference (`{"dev.pt": (value, flag)}`); `rules.period(kind, t, record)` for
every closed min/hour/day record, before the record is handed out.

Clock steps (`time_changed(old, new)`, platform time calibration): the tick schedule follows the new
time at once (a step back never leaves the loop sleeping until the old time). Forward: as a lag (B
samples, or a skip ahead beyond MAX_CATCH_UP_S). Back within the running minute period: the devices are
still polled, but ticks at or before the last tick already fed to the statistics are not fed again (no
sample counted twice, no DataTime produced twice); statistics resume when the clock passes it. Back
beyond the running minute period's start (the old clock was plainly wrong): the running minute, hour and
day periods are closed at once with what they hold (missing ticks count as B) and statistics restart at
the new time.
MinInterval change (`set_min_interval`): the running minute period ends at the first boundary of the new
interval (so it may be shorter or longer than either interval; it is flagged by its own length), later
periods are aligned to the new interval.
"""

import asyncio

from app import log
from app.bus import Bus
from app.channels import Station
from app.reader import Device, load_template
from app.stats import StationStats

MAX_CATCH_UP_S = 600  # behind more than this (e.g. the clock was set): skip ahead, periods fill as B


def _log(level, text):
    if level == "WARN":
        log.warn("bus", text)
    else:
        log.info("bus", text)


class Acquisition:
    def __init__(self, cfg, hal, clock, on_record, templates=None, ports=None, rules=None, on_rules=None):
        """`templates`: optional dict name -> template (else read from protocols/templates);
        `ports`: optional dict uart number -> Port (tests), else hal.uart(...); `rules`, `on_rules`: as
        set_rules()."""
        lg = cfg["logger"]
        self.clock = clock
        self.on_record = on_record
        self.sample_s = lg.get("sample_s", 1)
        self.rtd_s = lg.get("rtd_interval_s", 30)
        self.offset_s = cfg.get("site", {}).get("utc_offset_min", 480) * 60
        self.buses = []  # (Bus, [Device])
        devices = {}
        cache = templates if templates is not None else {}
        for b in cfg["buses"]:
            port = ports[b["uart"]] if ports else hal.uart(
                b["uart"], b.get("baud", 9600), b.get("parity", "N"), b.get("stop_bits", 1),
                b.get("tx"), b.get("rx"), b.get("de"))
            bus = Bus(b["name"], port, b.get("timeout_ms", 300), b.get("retries", 1),
                      b.get("turnaround_ms", 2), b.get("backoff_s", (2, 60)), log=_log)
            devs = []
            for d in b["devices"]:
                tname = d["template"]
                if tname not in cache:
                    cache[tname] = load_template(tname)
                dev = Device(d, cache[tname], bus)
                devices[dev.name] = dev
                devs.append(dev)
            self.buses.append((bus, devs))
        del cache
        self._rpoints = _rule_points(cfg.get("rules"), devices)  # before compact() drops point names
        guard = lg.get("o2_guard", 19.0)
        self.stations = []
        for s in cfg["stations"]:
            st = Station(s, devices, guard)
            ss = StationStats(st, self.sample_s, lg.get("min_interval_min", 1), self.offset_s,
                              lg.get("valid_fraction", 0.75))
            self.stations.append((st, ss, [0] * len(st.codes)))
        # Devices feeding station channels are polled before the others on their bus (rule-only inputs
        # such as power meters): when a bus is too slow for a tick, the statistics are the last to suffer.
        used = {}
        for st, _, _ in self.stations:
            for dev in st.devices():
                used[dev.name] = True
        for i in range(len(self.buses)):
            bus, devs = self.buses[i]
            self.buses[i] = (bus, [d for d in devs if d.name in used] + [d for d in devs if d.name not in used])
        for dev in devices.values():
            dev.compact()
        self.min_interval = lg.get("min_interval_min", 1)
        self.rules = None
        self.on_rules = None  # callable() after a tick whose rules raised events (relays follow)
        self._rvalues = None
        self._rpts = None
        self._fed = None  # last tick fed to statistics (a clock step back must not feed a tick twice)
        self._step = False
        self.replayed = 0  # ticks polled but not fed again after a clock step back
        self.steps = 0
        self.ticks = 0
        self.missed_ticks = 0
        self.max_lag_ms = 0
        self.t = None  # current tick
        self.records = 0
        self._out = []
        if rules is not None:
            self.set_rules(rules, on_rules)

    def set_rules(self, rules, on_events=None):
        """Feeds `rules` (app.rules.Rules) every tick and every closed period; `on_events()` is called
        after a tick in which the rules raised events."""
        self.rules = rules
        self.on_rules = on_events
        self._rvalues = {}
        for st, _, _ in self.stations:
            self._rvalues[st.name] = {}
        self._rpts = {}

    def set_rtd_interval(self, seconds):
        self.rtd_s = seconds

    def set_min_interval(self, minutes):
        """HJ 212 1064: the running minute periods end at the first boundary of the new interval."""
        now = self.clock.now()
        for _, ss, _ in self.stations:
            ss.set_min_interval(minutes, now)
        self.min_interval = minutes

    def time_changed(self, old, new):
        """The clock was set from `old` to `new` (epoch s): follow it (see the module notes)."""
        self.steps += 1
        self._step = True
        if new >= old:
            return
        start = None
        for _, ss, _ in self.stations:
            p = ss.levels[0][1]
            if p.start is not None and (start is None or p.start < start):
                start = p.start
        if start is not None and new < start:
            out = []
            for _, ss, _ in self.stations:
                ss.close_all(out)
            self._fed = None
            self._emit(out)

    def polled_once(self):
        return self.ticks > 0

    async def _poll_bus(self, devs, t):
        now = self.clock.now
        cutoff = t + 1
        # online devices first: a probe of an offline one must not delay the live ones
        for first in (True, False):
            for dev in devs:
                # pass 1: online devices; pass 2: the rest (offline probes), each device once
                if not dev.due(t) or dev.t == t or (first and not dev.link.online):
                    continue
                if now() >= cutoff:
                    dev.miss(t)
                    continue
                await dev.poll(t, now, cutoff)

    def _skip(self, t):
        for bus, devs in self.buses:
            for dev in devs:
                if dev.due(t):
                    dev.miss(t)

    async def _sleep_to(self, t):
        # In steps of at most a second so a clock step (time_changed) is noticed at once.
        clock = self.clock
        while not self._step:
            now = clock.now()
            if now >= t:
                return
            await clock.sleep_until(t if t - now <= 1 else now + 1)

    async def run(self):
        clock = self.clock
        s = self.sample_s
        t = (int(clock.now()) // s + 1) * s
        log.info("acq", "first tick %d: %d buses, every %d s" % (t, len(self.buses), s))
        while True:
            await self._sleep_to(t)
            if self._step:
                self._step = False
                n = (int(clock.now()) // s + 1) * s
                if n < t:
                    t = n  # stepped back: the schedule follows the new time
                continue
            lag = clock.now() - t
            if lag * 1000 > self.max_lag_ms:
                self.max_lag_ms = int(lag * 1000)
            if lag >= MAX_CATCH_UP_S:
                t = (int(clock.now()) // s) * s
                lag = 0
            if lag >= 1:
                self._skip(t)
                self.missed_ticks += 1
                await asyncio.sleep_ms(0)
            elif len(self.buses) == 1:
                await self._poll_bus(self.buses[0][1], t)
            else:
                await asyncio.gather(*[self._poll_bus(devs, t) for _, devs in self.buses])
            self.tick(t)
            t += s

    def tick(self, t):
        """Samples every station for tick t (devices already polled) and hands out records."""
        self.t = t
        self.ticks += 1
        if self._fed is not None and t <= self._fed:
            self.replayed += 1  # after a clock step back: this tick was fed already
            return
        self._fed = t
        out = self._out
        rtd = (t + self.offset_s) % self.rtd_s == 0
        for st, ss, taken in self.stations:
            st.sample()
            f = st.f
            for i in range(len(f)):
                if f[i] != "B":
                    taken[i] += 1
        rules = self.rules
        if rules is not None:
            self._rules_tick(rules, t)
        for st, ss, taken in self.stations:
            if rtd:
                out.append({"kind": "rtd", "station": st.name, "t": t, "values": st.rtd_values()})
            ss.add_tick(t, out)
        if out:
            self._out = []
            self._emit(out)

    def _emit(self, out):
        rules = self.rules
        for rec in out:
            self.records += 1
            if rules is not None and rec["kind"] != "rtd":
                try:
                    rules.period(rec["kind"], rec["t"], rec)
                except Exception as exc:  # a rule bug must not cost the record
                    log.error("rules", "period %s: %s" % (rec["kind"], exc))
            self.on_record(rec)

    def _rules_tick(self, rules, t):
        values = self._rvalues
        for st, _, _ in self.stations:
            d = values[st.name]
            codes = st.codes
            v = st.v
            f = st.f
            z = st.z
            for i in range(len(codes)):
                d[codes[i]] = (v[i], f[i], z[i])
        pts = self._rpts
        for key, dev, idx in self._rpoints:
            pts[key] = (None, "B") if dev.flag == "B" else (dev.values[idx], dev.flag)
        before = rules.events
        try:
            rules.tick(t, values, pts)
        except Exception as exc:
            log.error("rules", "tick: %s" % exc)
        if rules.events != before and self.on_rules is not None:
            self.on_rules()

    def snapshot(self):
        samples = {}
        for st, _, taken in self.stations:
            d = {}
            for i in range(len(taken)):
                d[st.codes[i]] = taken[i]
            samples[st.name] = {"expected": self.ticks, "taken": d}
        buses = {}
        for bus, devs in self.buses:
            b = bus.state()
            for dev in devs:
                b["devices"][dev.name].update(dev.state())
            buses[bus.name] = b
        return {
            "samples": samples,
            "lag": {"ticks": self.ticks, "missed_ticks": self.missed_ticks, "max_lag_ms": self.max_lag_ms,
                    "replayed": self.replayed, "clock_steps": self.steps},
            "buses": buses,
        }


def _rule_points(rules_cfg, devices):
    """[(key, device, index)] of every `device.point` string the rules configuration mentions."""
    out = []
    if not rules_cfg:
        return out
    seen = {}
    todo = [rules_cfg.get("list", ())]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            todo.extend(x.values())
        elif isinstance(x, list) or isinstance(x, tuple):
            todo.extend(x)
        elif isinstance(x, str) and "/" not in x and x not in seen:
            dot = x.find(".")
            dev = devices.get(x[:dot]) if dot > 0 else None
            if dev is not None and dev.index is not None and x[dot + 1 :] in dev.index:
                seen[x] = True
                out.append((x, dev, dev.index[x[dot + 1 :]]))
    return out
