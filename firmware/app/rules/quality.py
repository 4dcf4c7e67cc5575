"""Data quality / anti-fraud: flatline, stuck at zero, sudden offset (O2 dilution: app/rules/dilution.py).
Never alters data: raises events and, with `mark`, reports a suggested flag through Rules.marks() while
active."""

from micropython import const

from app.rules import CondRule, Rule, num, read, ref, usable

_VALID = const("NST")  # as in app.rules: flags whose value a rule may use


class FlatlineRule(CondRule):
    """Value within +-tolerance of the run's first value for for_s while the process runs (kind zero:
    at most zero_max for for_s)."""

    type = "quality"
    running = None
    running_above = 0
    for_s = 1800
    tolerance = 0.0
    zero_max = 0.0

    def __init__(self, cfg, eng):
        CondRule.__init__(self, cfg, eng)
        self.zero = cfg["kind"] == "zero"
        self.ch = ref(eng, cfg["channel"])
        if "running" in cfg:
            self.running = ref(eng, cfg["running"])
        for k in ("running_above", "for_s", "tolerance", "zero_max"):
            self.opt(cfg, k)
        self.base = None
        self.since = None

    def cond(self, t, values, points):
        v, f = read(self.ch, values, points)
        # Running: True/False, or None when the running input has no usable value; no input = always running.
        run = True
        if self.running is not None:
            p = usable(self.running, values, points)
            run = None if p is None else p > self.running_above
        ev = {"value": v}
        if v is None or f not in _VALID or not run:
            # Stopped process, maintenance, calibration, fault: a flat value is legitimate; restart.
            self.base = None
            return (None, None, ev) if run is None else (False, True, ev)
        if self.zero:
            ev["zero_max"] = self.zero_max
            bad = v <= self.zero_max
            if not bad:
                self.since = None
            elif self.since is None:
                self.since = t
            ev["since"] = self.since
            return bad and t - self.since >= self.for_s, not bad, ev
        if self.base is None or abs(v - self.base) > self.tolerance:
            self.base = v
            self.since = t
        ev["since"] = self.since
        ev["tolerance"] = self.tolerance
        flat = t - self.since >= self.for_s
        return flat, not flat, ev


class OffsetRule(Rule):
    """A step of >= step between consecutive valid samples that then holds within +-band for hold_s
    (a spike or a ramp does not). Any non-N/S/T flag (maintenance, calibration) re-arms from scratch."""

    type = "quality"
    hold_s = 300

    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg, eng)
        self.ch = ref(eng, cfg["channel"])
        self.step = cfg["step"]
        self.band = cfg.get("band", cfg["step"] / 4.0)
        self.opt(cfg, "hold_s")
        self.prev = None  # last accepted value before any candidate step
        self.cand = None  # [t_step, first value, sum, n, value before]
        self.events = 0

    def tick(self, eng, t, values, points):
        v, f = read(self.ch, values, points)
        if v is None or f not in _VALID:
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

