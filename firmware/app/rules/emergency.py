"""Heavy-pollution emergency response: per alert level, the allowed power of named production lines."""

from app.rules import LEVELS, Rule, num, ref, step, usable


class EmergencyRule(Rule):
    type = "emergency"
    for_s = 60
    grace_s = 0
    clear_s = 0

    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg, eng)
        for k in ("for_s", "grace_s", "clear_s"):
            self.opt(cfg, k)
        # (name, ref, on_kw, alarm [active, since, t0]) per line, by name
        self.lines = [(name, ref(eng, ln["point"]), ln.get("on_kw", 0), [False, None, None])
                      for name, ln in sorted(cfg["lines"].items())]
        self.levels = cfg["levels"]  # level -> {line: max kW}; a line not listed is unrestricted at that level

    def active(self):
        for ln in self.lines:
            if ln[3][0]:
                return True
        return False

    def tick(self, eng, t, values, points):
        lvl = eng.level
        lim = self.levels.get(LEVELS[lvl])
        in_grace = t - eng.level_t < self.grace_s
        for name, r, on_kw, alarm in self.lines:
            p = usable(r, values, points)
            allowed = lim.get(name) if lim else None
            if allowed is None or in_grace:
                on, off = False, True
                thr = None
            else:
                thr = allowed if allowed > on_kw else on_kw  # "0 kW" means off: judged by the running threshold
                on = None if p is None else p > thr
                off = None if p is None else p <= thr
            edge = step(alarm, t, on, off, self.for_s, self.clear_s)
            if edge is None:
                continue
            ev = {"line": name, "level": LEVELS[lvl], "power_kw": p, "allowed_kw": allowed, "threshold_kw": thr}
            if edge == "start":
                eng.emit(self, t, "start", ev, "emergency %s: line %s runs at %s kW during %s alert (allowed %s kW)"
                         % (self.name, name, num(p), LEVELS[lvl], num(allowed)), name)
            else:
                ev["start"] = alarm[2]
                eng.emit(self, t, "end", ev, "emergency %s: line %s complies (%s alert, %s kW)"
                         % (self.name, name, LEVELS[lvl], num(p)), name)

    def snap(self):
        out = {}
        for ln in self.lines:
            out[ln[0]] = ln[3][0]
        return {"active": self.active(), "lines": out}
