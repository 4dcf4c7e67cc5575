"""Data quality / anti-fraud: flatline, stuck at zero, O2 dilution, sudden offset. Never alters data:
raises events and, with `mark`, reports a suggested flag through Rules.marks() while active."""

from array import array

from app.rules.base import VALID, CondRule, Rule, num, read, ref, usable

KINDS = ("flatline", "zero", "dilution", "offset")


def _running(r, above, values, points):
    """True/False, or None when the running input has no usable value; no input = always running."""
    if r is None:
        return True
    p = usable(r, values, points)
    if p is None:
        return None
    return p > above


class FlatlineRule(CondRule):
    """Value within +-tolerance of the run's first value for for_s while the process runs."""

    label = "quality"

    def __init__(self, cfg, eng):
        CondRule.__init__(self, cfg, 0, cfg.get("clear_s", 0))
        self.ref = ref(cfg["channel"])
        self.run = ref(cfg.get("running"))
        self.run_above = cfg.get("running_above", 0)
        self.for_s = cfg.get("for_s", 1800)
        self.tol = cfg.get("tolerance", 0.0)
        self.zero_max = cfg.get("zero_max", 0.0)
        self.base = None
        self.since = None

    def cond(self, t, values, points):
        v, f = read(self.ref, values, points)
        run = _running(self.run, self.run_above, values, points)
        ev = {"value": v}
        if v is None or f not in VALID or not run:
            # Stopped process, maintenance, calibration, fault: a flat value is legitimate; restart.
            self.base = None
            return (None, None, ev) if run is None else (False, True, ev)
        if self.kind == "zero":
            ev["zero_max"] = self.zero_max
            bad = v <= self.zero_max
            if not bad:
                self.since = None
            elif self.since is None:
                self.since = t
            ev["since"] = self.since
            return bad and t - self.since >= self.for_s, not bad, ev
        if self.base is None or abs(v - self.base) > self.tol:
            self.base = v
            self.since = t
        ev["since"] = self.since
        ev["tolerance"] = self.tol
        flat = t - self.since >= self.for_s
        return flat, not flat, ev


class DilutionRule(Rule):
    """Per-minute means; over the last window_min minutes O2 rose by >= o2_rise (% points) while the raw
    concentration fell by >= conc_drop (fraction) and the flow rose by >= flow_rise (fraction)."""

    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg)
        from app.rules.alarm import Alarm

        self.c = ref(cfg["channel"])
        self.o2 = ref(cfg["o2"])
        self.fl = ref(cfg["flow"])
        self.w = cfg.get("window_min", 10)
        self.o2_rise = cfg.get("o2_rise", 2.0)
        self.conc_drop = cfg.get("conc_drop", 0.3)
        self.flow_rise = cfg.get("flow_rise", 0.2)
        self.alarm = Alarm(0, cfg.get("clear_s", 0))
        n = self.w + 1
        self.ring = array("f", [0.0] * (3 * n))  # minute means o2, conc, flow
        self.ok = bytearray(n)
        self.pos = 0
        self.acc = [0.0, 0.0, 0.0, 0]
        self.minute = None
        self.ev0 = None

    def active(self):
        return self.alarm.active

    def tick(self, eng, t, values, points):
        m = int(t) // 60
        if m != self.minute:
            if self.minute is not None:
                self._close(eng, m * 60, m - self.minute)
            self.minute = m
        o = usable(self.o2, values, points)
        c = usable(self.c, values, points)
        f = usable(self.fl, values, points)
        if o is None or c is None or f is None:
            return
        a = self.acc
        a[0] += o
        a[1] += c
        a[2] += f
        a[3] += 1

    def _close(self, eng, end, gap):
        n = self.w + 1
        a = self.acc
        for i in range(min(gap, n)):
            p = self.pos
            good = i == 0 and a[3] > 0
            self.ok[p] = 1 if good else 0
            if good:
                self.ring[3 * p] = a[0] / a[3]
                self.ring[3 * p + 1] = a[1] / a[3]
                self.ring[3 * p + 2] = a[2] / a[3]
            self.pos = (p + 1) % n
        self.acc = [0.0, 0.0, 0.0, 0]
        now = (self.pos - 1) % n
        then = self.pos  # oldest slot: window_min minutes before `now`
        if not (self.ok[now] and self.ok[then]):
            on = off = None
            ev = None
        else:
            r = self.ring
            o0, c0, f0 = r[3 * then], r[3 * then + 1], r[3 * then + 2]
            o1, c1, f1 = r[3 * now], r[3 * now + 1], r[3 * now + 2]
            ev = {"o2_from": o0, "o2_to": o1, "conc_from": c0, "conc_to": c1, "flow_from": f0, "flow_to": f1}
            on = (o1 - o0 >= self.o2_rise and c1 <= c0 * (1.0 - self.conc_drop) and f1 >= f0 * (1.0 + self.flow_rise))
            off = not on
        edge = self.alarm.step(end, on, off)
        if edge == "start":
            self.ev0 = ev
            eng.emit(self, end, "start", ev, "quality %s: dilution suspected, O2 %s->%s %%, %s %s->%s, flow %s->%s"
                     % (self.name, num(ev["o2_from"]), num(ev["o2_to"]), self.code, num(ev["conc_from"]),
                        num(ev["conc_to"]), num(ev["flow_from"]), num(ev["flow_to"])))
        elif edge == "end":
            out = dict(ev) if ev else {}
            out["start"] = self.alarm.t0
            eng.emit(self, end, "end", out, "quality %s: dilution pattern ended" % self.name)


class OffsetRule(Rule):
    """A step of >= step between consecutive valid samples that then holds within +-band for hold_s
    (a spike or a ramp does not). Any non-N/S/T flag (maintenance, calibration) re-arms from scratch."""

    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg)
        self.ref = ref(cfg["channel"])
        self.step = cfg["step"]
        self.band = cfg.get("band", cfg["step"] / 4.0)
        self.hold_s = cfg.get("hold_s", 300)
        self.prev = None  # last accepted value before any candidate step
        self.cand = None  # [t_step, first value, sum, n]
        self.events = 0

    def tick(self, eng, t, values, points):
        v, f = read(self.ref, values, points)
        if v is None or f not in VALID:
            self.prev = None
            self.cand = None
            return
        c = self.cand
        if c is not None:
            if abs(v - c[1]) > self.band:
                self.cand = None  # not a held step
                self.prev = v
                return
            c[2] += v
            c[3] += 1
            if t - c[0] >= self.hold_s:
                after = c[2] / c[3]
                self.events += 1
                ev = {"step_t": c[0], "before": c[4], "after": after, "step": after - c[4], "threshold": self.step}
                eng.emit(self, t, "event", ev, "quality %s: sudden offset of %s at %s (%s -> %s)"
                         % (self.name, num(after - c[4]), self.code, num(c[4]), num(after)))
                self.cand = None
                self.prev = v
            return
        if self.prev is not None and abs(v - self.prev) >= self.step:
            self.cand = [t, v, v, 1, self.prev]
            return
        self.prev = v

    def snap(self):
        return {"events": self.events}


def build(cfg, eng):
    k = cfg["kind"]
    if k == "dilution":
        return DilutionRule(cfg, eng)
    if k == "offset":
        return OffsetRule(cfg, eng)
    return FlatlineRule(cfg, eng)
