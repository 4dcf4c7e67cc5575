"""Emission limits over rolling windows (from ticks, per-minute buckets) or clock hour/day records."""

from array import array

from app.rules import Rule, num, step


class LimitRule(Rule):
    type = "limit"
    # Config defaults (Rule.opt stores only what a rule changes).
    unit = "mg/m3"
    zs = False
    window = "rolling"
    minutes = 0  # rolling windows only: 15 unless configured
    exclude = "FMCDB"
    hysteresis = 0.0
    daily_max = None
    background_default = None
    background_cap = None
    on_s = 0
    off_s = 0
    warn = None  # [active, since, t0, warned] when warn_fraction is set
    # State a rule may never need.
    peak = None
    peak_t = None
    counted = None  # up to 8 (t, value) of counted exceedances today, when daily_max is set

    def __init__(self, cfg, eng, lg):
        """lg: the config's logger section (sample_s, valid_fraction)."""
        Rule.__init__(self, cfg, eng)
        self.limit = float(cfg["limit"])
        for k in ("unit", "zs", "window", "exclude", "hysteresis", "daily_max", "background_default",
                  "background_cap", "on_s", "off_s"):
            self.opt(cfg, k)
        wf = cfg.get("warn_fraction")
        if wf:
            self.warn_level = self.limit * wf
            self.warn = [False, None, None, False]
        self.alarm = [False, None, None]
        self.last = None  # last window value (evaluated)
        self.day = None
        self.count = 0
        if self.window == "rolling":
            n = self.minutes = cfg.get("minutes", 15)
            self.need = cfg.get("valid_fraction", lg.get("valid_fraction", 0.75)) * n * 60 / lg.get("sample_s", 1)
            # Fixed-size ring of per-minute sums and counts: memory O(window), no allocation per tick.
            self.sums = array("f", [0.0] * n)
            self.ns = array("H", [0] * n)
            self.pos = 0
            self.minute = None
            self.cur_sum = 0.0
            self.cur_n = 0

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
        e = values.get(self.station)
        e = e.get(self.code) if e else None
        if e is None or e[1] in self.exclude:
            return
        if self.zs:
            if len(e) > 2:
                v = e[2]
            else:
                z = values[self.station].get(self.code + "-Zs")
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
        net = self.background_default is not None or self.background_cap is not None  # a net limit
        if v is not None and net:
            bgs = eng.background
            bg = bgs.get((self.station, self.code), self.background_default) if bgs else self.background_default
            if bg is None:
                v = None  # net value needs a background: no judgement without one
            else:
                if self.background_cap is not None and bg > self.background_cap:
                    bg = self.background_cap
                v = v - bg
        self.last = v
        day = (int(end) - 1 + eng.offset) // 86400  # a window ending at midnight belongs to its day
        if day != self.day:
            self.day = day
            self.count = 0
            if self.counted:
                self.counted = None
        label = "%dmin" % self.minutes if self.window == "rolling" else self.window
        ev = {"window": label, "from": begin, "to": end, "value": v, "limit": self.limit, "unit": self.unit}
        if n is not None:
            ev["samples"] = n
        if bg is not None:
            ev["background"] = bg
        what = "%s%s %s %s" % (self.code, " Zs" if self.zs else "", label, "net " if net else "")
        if v is None:
            on = off = None
        else:
            on = v > self.limit
            off = v <= self.limit * (1.0 - self.hysteresis)
        a = self.alarm
        edge = step(a, end, on, off, self.on_s, self.off_s)
        if a[0] and v is not None and (self.peak is None or v > self.peak):
            self.peak = v
            self.peak_t = end
        w = self.warn
        if edge == "start":
            if w:
                w[3] = False
            eng.emit(self, end, "start", ev, "limit %s exceeded: %s%s > %s %s" % (
                self.name, what, num(v), num(self.limit), self.unit))
        elif edge == "end":
            ev["peak"] = self.peak
            ev["peak_t"] = self.peak_t
            ev["start"] = a[2]
            eng.emit(self, end, "end", ev, "limit %s exceedance ended: %s%s, peak %s %s" % (
                self.name, what, num(v), num(self.peak), self.unit))
            self.peak = None
            self.peak_t = None
        if w:
            wl = self.warn_level
            if v is None:
                won = woff = None
            else:
                won = v >= wl
                woff = v < wl * (1.0 - self.hysteresis)
            wedge = step(w, end, won, woff, self.on_s, self.off_s)
            if wedge == "start" and not a[0]:
                w[3] = True  # warned: its end is reported
                ev2 = dict(ev)
                ev2["warn_level"] = wl
                eng.emit(self, end, "warn", ev2, "limit %s early warning: %s%s >= %s %s" % (
                    self.name, what, num(v), num(wl), self.unit))
            elif wedge == "end" and w[3]:
                w[3] = False
                eng.emit(self, end, "warn_end", ev, "limit %s warning ended: %s%s" % (self.name, what, num(v)))
        # Daily counts use non-overlapping windows aligned to local time (15-min means at :00 :15 ...).
        if v is not None and v > self.limit and (
                not self.minutes or ((int(end) + eng.offset) // 60) % self.minutes == 0):
            self.count += 1
            if self.daily_max is not None:
                if self.counted is None:
                    self.counted = []
                if len(self.counted) < 8:
                    self.counted.append((end, v))
                if self.count == self.daily_max + 1:
                    eng.emit(self, end, "count", {"count": self.count, "max": self.daily_max,
                                                  "windows": list(self.counted), "limit": self.limit},
                             "limit %s: %d exceedances today > %d allowed" % (self.name, self.count, self.daily_max))

    def snap(self):
        return {"active": self.alarm[0], "value": self.last, "limit": self.limit, "today": self.count}
