"""Treatment-facility power monitoring (分表计电), kind order: the treatment facility's start/stop order
against production (a power rule; the kind has its own module, loaded only when configured)."""

from micropython import const

from app.rules import Rule, num, ref, usable

_EARLY = const(-1)  # onset of a state already present at the first tick: begun long ago


class OrderRule(Rule):
    """Treatment must run lead_s before production starts and keep running lag_s after it stops.
    On/off states are debounced (debounce_s) so start-up blips do not count as starts or stops; a
    state already present at the first tick counts as begun long ago (_EARLY)."""

    type = "power"
    lead_s = 300
    lag_s = 300
    debounce_s = 10

    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg, eng)
        self.prod = ref(eng, cfg["production"])
        self.treat = ref(eng, cfg["treatment"])
        self.on_kw = cfg["on_kw"]
        self.idle_kw = cfg["idle_kw"]
        for k in ("lead_s", "lag_s", "debounce_s"):
            self.opt(cfg, k)
        # [state, candidate, candidate since, onset of state] of production (p) and treatment (q)
        self.p = [None, None, None, None]
        self.q = [None, None, None, None]
        self.violations = 0

    def _track(self, s, on, t):
        """Debounced on/off; returns True when a new state was confirmed this tick (onset in s[3])."""
        if s[0] is None:
            s[0] = on
            s[3] = _EARLY
            return False
        if on == s[0]:
            s[1] = None
            return False
        if s[1] != on:
            s[1] = on
            s[2] = t
        if t - s[2] >= self.debounce_s:
            s[0] = on
            s[3] = s[2]
            s[1] = None
            return True
        return False

    def tick(self, eng, t, values, points):
        p = usable(self.prod, values, points)
        q = usable(self.treat, values, points)
        if p is None or q is None:
            return
        p_new = self._track(self.p, p > self.on_kw, t)
        q_new = self._track(self.q, q >= self.idle_kw, t)
        if p_new and self.p[0]:
            start = self.p[3]
            ts = self.q[3] if self.q[0] else None
            lead = None if ts is None else (None if ts == _EARLY else start - ts)
            if ts is None or (lead is not None and lead < self.lead_s):
                self.violations += 1
                ev = {"production_start": start, "treatment_start": ts, "lead_s": lead,
                      "required_s": self.lead_s, "production_kw": p, "treatment_kw": q}
                eng.emit(self, t, "event", ev, "power %s: start order, production started %s s after "
                         "treatment (need %d s)" % (self.name, num(lead), self.lead_s))
        if q_new and not self.q[0]:
            stop = self.q[3]
            ps = None if self.p[0] else self.p[3]
            lag = None if ps is None or ps == _EARLY else stop - ps
            if ps is None or (lag is not None and lag < self.lag_s):
                self.violations += 1
                ev = {"treatment_stop": stop, "production_stop": ps, "lag_s": lag,
                      "required_s": self.lag_s, "production_kw": p, "treatment_kw": q}
                eng.emit(self, t, "event", ev, "power %s: stop order, treatment stopped %s s after "
                         "production (need %d s)" % (self.name, num(lag), self.lag_s))

    def snap(self):
        return {"production_on": self.p[0], "treatment_on": self.q[0], "violations": self.violations}
