"""Bypass detection: damper open while running, hot bypass duct, bypass flow, main-duct flow collapse."""

from app.rules import CondRule, ref, usable


class BypassRule(CondRule):
    type = "bypass"
    # Config defaults (Rule.opt stores only what a rule changes); on_s is the config's for_s.
    on_s = 60
    clear_s = 60
    running = None
    running_above = 0
    open_value = 1
    above = None
    below = None
    ambient = None
    delta = 0
    hysteresis = 0

    def __init__(self, cfg, eng):
        CondRule.__init__(self, cfg, eng)
        self.opt(cfg, "for_s", "on_s")
        self.kind = cfg["kind"]
        self.input = ref(eng, cfg["input"])
        if "running" in cfg:
            self.running = ref(eng, cfg["running"])
        if "ambient" in cfg:
            self.ambient = ref(eng, cfg["ambient"])
        for k in ("running_above", "open_value", "above", "below", "delta", "hysteresis"):
            self.opt(cfg, k)

    def cond(self, t, values, points):
        k = self.kind
        v = usable(self.input, values, points)
        # evidence key of the value: damper, temp (temperature) or flow (flow, main_flow)
        ev = {"temp" if k == "temperature" else ("damper" if k == "damper" else "flow"): v}
        running = True
        if self.running is not None:
            p = usable(self.running, values, points)
            ev["running"] = p
            if p is None:
                return None, None, ev
            running = p > self.running_above
        if v is None:
            return None, None, ev
        if k == "damper":
            on = v == self.open_value
            return running and on, not (running and on), ev
        if k == "main_flow":
            ev["threshold"] = self.below
            return running and v < self.below, (not running) or v >= self.below + self.hysteresis, ev
        thr = self.above
        if k == "temperature" and self.ambient is not None:
            a = usable(self.ambient, values, points)
            ev["ambient"] = a
            if a is None:
                return None, None, ev
            thr = a + self.delta
        ev["threshold"] = thr
        return running and v > thr, (not running) or v <= thr - self.hysteresis, ev
