"""Acquisition task: ticks every sample_s sim seconds, polls due devices (one task per bus, buses in
parallel), computes channels, feeds statistics, emits records through on_record(rec).

Timing contract (HIL emulators): sample k is taken at sim second k. A poll must complete before
tick + 1 sim second, else its reply may carry the next second's value: such a poll is not used
(flag B, counted `late`), and a device whose poll could not even start before then is `missed`.
Whole ticks the loop could not serve (it fell behind) still produce samples, all B, and count in
`lag.missed_ticks`; nothing is ever stamped with another tick's value.

Records (contract with the uplink): {"kind": "rtd"|"min"|"hour"|"day", "station", "t", "values"}.
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
    def __init__(self, cfg, hal, clock, on_record, templates=None, ports=None):
        """`templates`: optional dict name -> template (else read from protocols/templates);
        `ports`: optional dict uart number -> Port (tests), else hal.uart(...)."""
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
        guard = lg.get("o2_guard", 19.0)
        self.stations = []
        for s in cfg["stations"]:
            st = Station(s, devices, guard)
            ss = StationStats(st, self.sample_s, lg.get("min_interval_min", 1), self.offset_s,
                              lg.get("valid_fraction", 0.75))
            self.stations.append((st, ss, [0] * len(st.codes)))
        for dev in devices.values():
            dev.compact()
        self.ticks = 0
        self.missed_ticks = 0
        self.max_lag_ms = 0
        self.t = None  # current tick
        self.records = 0
        self._out = []

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

    async def run(self):
        clock = self.clock
        s = self.sample_s
        t = (int(clock.now()) // s + 1) * s
        while True:
            await clock.sleep_until(t)
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
        out = self._out
        rtd = (t + self.offset_s) % self.rtd_s == 0
        for st, ss, taken in self.stations:
            st.sample()
            f = st.f
            for i in range(len(f)):
                if f[i] != "B":
                    taken[i] += 1
            if rtd:
                out.append({"kind": "rtd", "station": st.name, "t": t, "values": st.rtd_values()})
            ss.add_tick(t, out)
        if out:
            self._out = []
            for rec in out:
                self.records += 1
                self.on_record(rec)

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
            "lag": {"ticks": self.ticks, "missed_ticks": self.missed_ticks, "max_lag_ms": self.max_lag_ms},
            "buses": buses,
        }
