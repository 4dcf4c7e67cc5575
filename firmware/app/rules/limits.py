"""Emission limits over rolling windows (from ticks, per-minute buckets) or clock hour/day records."""

from array import array

from app.rules.alarm import Alarm
from app.rules.base import Rule, num, ref


class LimitRule(Rule):
    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg)
        self.ref = ref(cfg["channel"])
        self.limit = float(cfg["limit"])
        self.unit = cfg.get("unit", "mg/m3")
        self.zs = bool(cfg.get("zs", False))
        self.window = cfg.get("window", "rolling")
        self.minutes = cfg.get("minutes", 15) if self.window == "rolling" else 0
        self.exclude = cfg.get("exclude", "FMCDB")
        self.hyst = cfg.get("hysteresis", 0.0)
        wf = cfg.get("warn_fraction")
        self.warn_level = self.limit * wf if wf else None
        self.daily_max = cfg.get("daily_max")
        self.bg_default = cfg.get("background_default")
        self.bg_cap = cfg.get("background_cap")
        self.net = "background_default" in cfg or "background_cap" in cfg
        self.need = cfg.get("valid_fraction", eng.valid_fraction) * self.minutes * 60 / eng.sample_s
        self.offset = eng.offset
        self.alarm = Alarm(cfg.get("on_s", 0), cfg.get("off_s", 0))
        self.warn = Alarm(cfg.get("on_s", 0), cfg.get("off_s", 0)) if self.warn_level else None
        self.warned = False
        if self.minutes:
            # Fixed-size ring of per-minute sums and counts: memory O(window), no allocation per tick.
            self.sums = array("f", [0.0] * self.minutes)
            self.ns = array("H", [0] * self.minutes)
        self.pos = 0
        self.minute = None
        self.cur_sum = 0.0
        self.cur_n = 0
        self.last = None  # last window value (evaluated)
        self.peak = None
        self.peak_t = None
        self.day = None
        self.count = 0
        self.counted = []  # up to 8 (t, value) of counted exceedances today

    def active(self):
        return self.alarm.active

    def _label(self):
        if self.window == "rolling":
            return "%dmin" % self.minutes
        return self.window

    def tick(self, eng, t, values, points):
        if not self.minutes:
            return
        m = int(t) // 60
        if m != self.minute:
            if self.minute is not None:
                # Close the finished minute and any skipped ones (empty), then judge the window ending now.
                gap = m - self.minute
                for i in range(min(gap, self.minutes)):
                    self.sums[self.pos] = self.cur_sum if i == 0 else 0.0
                    self.ns[self.pos] = self.cur_n if i == 0 else 0
                    self.pos = (self.pos + 1) % self.minutes
                self.cur_sum = 0.0
                self.cur_n = 0
                self.minute = m
                n = 0
                s = 0.0
                for i in range(self.minutes):
                    n += self.ns[i]
                    s += self.sums[i]
                end = m * 60
                v = s / n if n and n >= self.need else None
                self._judge(eng, end, v, end - self.minutes * 60, n)
            self.minute = m
        e = values.get(self.ref[1])
        e = e.get(self.ref[2]) if e else None
        if e is None or e[1] in self.exclude:
            return
        if self.zs:
            if len(e) > 2:
                v = e[2]
            else:
                z = values[self.ref[1]].get(self.ref[2] + "-Zs")
                v = z[0] if z else None
        else:
            v = e[0]
        if v is not None:
            self.cur_sum += v
            self.cur_n += 1

    def period(self, eng, kind, t, record):
        if kind != self.window or record.get("station") != self.station:
            return
        for code, d in record.get("values", ()):
            if code == self.code:
                v = d.get("ZsAvg" if self.zs else "Avg")
                if d.get("Flag", "N") in self.exclude:
                    v = None
                self._judge(eng, t, v, record.get("t"), None)
                return

    def _judge(self, eng, end, v, begin, n):
        bg = None
        if v is not None and self.net:
            bg = eng.background.get((self.station, self.code), self.bg_default)
            if bg is None:
                v = None  # net value needs a background: no judgement without one
            else:
                if self.bg_cap is not None and bg > self.bg_cap:
                    bg = self.bg_cap
                v = v - bg
        self.last = v
        day = (int(end) - 1 + self.offset) // 86400  # a window ending at midnight belongs to its day
        if day != self.day:
            self.day = day
            self.count = 0
            self.counted = []
        ev = {"window": self._label(), "from": begin, "to": end, "value": v, "limit": self.limit,
              "unit": self.unit}
        if n is not None:
            ev["samples"] = n
        if bg is not None:
            ev["background"] = bg
        what = "%s%s %s %s" % (self.code, " Zs" if self.zs else "", self._label(), "net " if self.net else "")
        if v is None:
            on = off = None
        else:
            on = v > self.limit
            off = v <= self.limit * (1.0 - self.hyst)
        edge = self.alarm.step(end, on, off)
        if self.alarm.active and v is not None and (self.peak is None or v > self.peak):
            self.peak = v
            self.peak_t = end
        if edge == "start":
            self.warned = False
            eng.emit(self, end, "start", ev, "limit %s exceeded: %s%s > %s %s" % (
                self.name, what, num(v), num(self.limit), self.unit))
        elif edge == "end":
            ev["peak"] = self.peak
            ev["peak_t"] = self.peak_t
            ev["start"] = self.alarm.t0
            eng.emit(self, end, "end", ev, "limit %s exceedance ended: %s%s, peak %s %s" % (
                self.name, what, num(v), num(self.peak), self.unit))
            self.peak = None
            self.peak_t = None
        if self.warn is not None:
            if v is None:
                won = woff = None
            else:
                won = v >= self.warn_level
                woff = v < self.warn_level * (1.0 - self.hyst)
            wedge = self.warn.step(end, won, woff)
            if wedge == "start" and not self.alarm.active:
                self.warned = True
                ev2 = dict(ev)
                ev2["warn_level"] = self.warn_level
                eng.emit(self, end, "warn", ev2, "limit %s early warning: %s%s >= %s %s" % (
                    self.name, what, num(v), num(self.warn_level), self.unit))
            elif wedge == "end" and self.warned:
                self.warned = False
                eng.emit(self, end, "warn_end", ev, "limit %s warning ended: %s%s" % (self.name, what, num(v)))
        if v is not None and v > self.limit and self._counts(end):
            self.count += 1
            if len(self.counted) < 8:
                self.counted.append((end, v))
            if self.daily_max is not None and self.count == self.daily_max + 1:
                eng.emit(self, end, "count", {"count": self.count, "max": self.daily_max,
                                              "windows": list(self.counted), "limit": self.limit},
                         "limit %s: %d exceedances today > %d allowed" % (self.name, self.count, self.daily_max))

    def _counts(self, end):
        # Daily counts use non-overlapping windows aligned to local time (15-min means at :00 :15 ...).
        if not self.minutes:
            return True
        return ((int(end) + self.offset) // 60) % self.minutes == 0

    def snap(self):
        return {"active": self.alarm.active, "value": self.last, "limit": self.limit, "today": self.count}
