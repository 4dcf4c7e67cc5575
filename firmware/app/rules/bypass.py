"""Bypass detection: damper open while running, hot bypass duct, bypass flow, main-duct flow collapse."""

from app.rules.base import CondRule, ref, usable

KINDS = ("damper", "temperature", "flow", "main_flow")
_VALUE_KEY = {"damper": "damper", "temperature": "temp", "flow": "flow", "main_flow": "flow"}


class BypassRule(CondRule):
    label = "bypass"

    def __init__(self, cfg, eng):
        CondRule.__init__(self, cfg, cfg.get("for_s", 60), cfg.get("clear_s", 60))
        self.input = ref(cfg["input"])
        self.run = ref(cfg.get("running"))
        self.run_above = cfg.get("running_above", 0)
        self.open_value = cfg.get("open_value", 1)
        self.above = cfg.get("above")
        self.below = cfg.get("below")
        self.ambient = ref(cfg.get("ambient"))
        self.delta = cfg.get("delta", 0)
        self.hyst = cfg.get("hysteresis", 0)
        self.key = _VALUE_KEY[self.kind]

    def cond(self, t, values, points):
        v = usable(self.input, values, points)
        ev = {self.key: v}
        running = True
        if self.run is not None:
            p = usable(self.run, values, points)
            ev["running"] = p
            if p is None:
                return None, None, ev
            running = p > self.run_above
        if v is None:
            return None, None, ev
        k = self.kind
        if k == "damper":
            on = v == self.open_value
            return running and on, not (running and on), ev
        if k == "main_flow":
            ev["threshold"] = self.below
            return running and v < self.below, (not running) or v >= self.below + self.hyst, ev
        thr = self.above
        if k == "temperature" and self.ambient is not None:
            a = usable(self.ambient, values, points)
            ev["ambient"] = a
            if a is None:
                return None, None, ev
            thr = a + self.delta
        ev["threshold"] = thr
        return running and v > thr, (not running) or v <= thr - self.hyst, ev
