"""Treatment-facility power monitoring (分表计电): not running, idling/derating (start/stop order:
app/rules/order.py, loaded only when configured)."""

from app.rules import CondRule, ref, usable


class NotRunningRule(CondRule):
    """Production above its running threshold while treatment is below idle (or, kind derate, between
    idle and `fraction` x rated) for for_s."""

    type = "power"
    on_s = 300  # the config's for_s
    clear_s = 60
    low_kw = None  # derate: fraction x rated_kw

    def __init__(self, cfg, eng):
        CondRule.__init__(self, cfg, eng)
        self.opt(cfg, "for_s", "on_s")
        self.prod = ref(eng, cfg["production"])
        self.treat = ref(eng, cfg["treatment"])
        self.on_kw = cfg["on_kw"]
        self.idle_kw = cfg["idle_kw"]
        if cfg["kind"] == "derate":
            self.low_kw = cfg["fraction"] * cfg["rated_kw"]

    def cond(self, t, values, points):
        p = usable(self.prod, values, points)
        q = usable(self.treat, values, points)
        ev = {"production_kw": p, "treatment_kw": q}
        if p is None or q is None:
            return None, None, ev
        run = p > self.on_kw
        if self.low_kw is None:
            ev["idle_kw"] = self.idle_kw
            bad = run and q < self.idle_kw
        else:
            ev["min_kw"] = self.low_kw
            bad = run and self.idle_kw <= q < self.low_kw
        return bad, not bad, ev
