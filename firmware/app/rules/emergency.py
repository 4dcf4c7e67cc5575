"""Heavy-pollution emergency response: per alert level, the allowed power of named production lines."""

from app.rules.alarm import Alarm
from app.rules.base import Rule, num, ref, usable

LEVELS = ("none", "blue", "yellow", "orange", "red")


class EmergencyRule(Rule):
    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg)
        self.for_s = cfg.get("for_s", 60)
        self.grace_s = cfg.get("grace_s", 0)
        self.lines = []  # [name, ref, on_kw, Alarm]
        for name in sorted(cfg["lines"]):
            ln = cfg["lines"][name]
            self.lines.append([name, ref(ln["point"]), ln.get("on_kw", 0), Alarm(self.for_s, cfg.get("clear_s", 0))])
        # allowed[level index] = {line: max kW}; a line not listed is unrestricted at that level
        self.allowed = [cfg["levels"].get(lv, {}) for lv in LEVELS]

    def active(self):
        for ln in self.lines:
            if ln[3].active:
                return True
        return False

    def tick(self, eng, t, values, points):
        lvl = eng.level
        lim = self.allowed[lvl]
        in_grace = t - eng.level_t < self.grace_s
        for ln in self.lines:
            name, r, on_kw, alarm = ln
            p = usable(r, values, points)
            allowed = lim.get(name)
            if allowed is None or in_grace:
                on, off = False, True
                thr = None
            else:
                thr = allowed if allowed > on_kw else on_kw  # "0 kW" means off: judged by the running threshold
                on = None if p is None else p > thr
                off = None if p is None else p <= thr
            edge = alarm.step(t, on, off)
            if edge is None:
                continue
            ev = {"line": name, "level": LEVELS[lvl], "power_kw": p, "allowed_kw": allowed, "threshold_kw": thr}
            if edge == "start":
                eng.emit(self, t, "start", ev, "emergency %s: line %s runs at %s kW during %s alert (allowed %s kW)"
                         % (self.name, name, num(p), LEVELS[lvl], num(allowed)), name)
            else:
                ev["start"] = alarm.t0
                eng.emit(self, t, "end", ev, "emergency %s: line %s complies (%s alert, %s kW)"
                         % (self.name, name, LEVELS[lvl], num(p)), name)

    def snap(self):
        out = {}
        for ln in self.lines:
            out[ln[0]] = ln[3].active
        return {"active": self.active(), "lines": out}
