"""Data quality / anti-fraud, kind dilution: air let in to dilute the flue gas (a quality rule; the kind has
its own module, loaded only when configured). Never alters data: raises events and, with `mark`, reports a
suggested flag through Rules.marks() while active."""

from array import array

from app.rules import Rule, num, ref, step, usable


class DilutionRule(Rule):
    """Per-minute means; over the last window_min minutes O2 rose by >= o2_rise (% points) while the raw
    concentration fell by >= conc_drop (fraction) and the flow rose by >= flow_rise (fraction)."""

    type = "quality"
    window_min = 10
    o2_rise = 2.0
    conc_drop = 0.3
    flow_rise = 0.2
    clear_s = 0

    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg, eng)
        self.ch = ref(eng, cfg["channel"])
        self.o2 = ref(eng, cfg["o2"])
        self.flow = ref(eng, cfg["flow"])
        for k in ("window_min", "o2_rise", "conc_drop", "flow_rise", "clear_s"):
            self.opt(cfg, k)
        self.alarm = [False, None, None]
        n = self.window_min + 1
        self.ring = array("f", [0.0] * (3 * n))  # minute means o2, conc, flow
        self.ok = bytearray(n)
        self.pos = 0
        self.acc = [0.0, 0.0, 0.0, 0]  # this minute's sums of o2, conc, flow and their count
        self.minute = None

    def tick(self, eng, t, values, points):
        m = int(t) // 60
        gap = 0 if self.minute is None else m - self.minute
        self.minute = m
        a = self.acc
        if gap:
            # Close the finished minute (and any skipped ones, empty), then judge the window ending now.
            n = self.window_min + 1
            for i in range(min(gap, n)):
                p = self.pos
                good = i == 0 and a[3] > 0
                self.ok[p] = 1 if good else 0
                if good:
                    self.ring[3 * p] = a[0] / a[3]
                    self.ring[3 * p + 1] = a[1] / a[3]
                    self.ring[3 * p + 2] = a[2] / a[3]
                self.pos = (p + 1) % n
            a[0] = a[1] = a[2] = 0.0
            a[3] = 0
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
                on = (o1 - o0 >= self.o2_rise and c1 <= c0 * (1.0 - self.conc_drop)
                      and f1 >= f0 * (1.0 + self.flow_rise))
                off = not on
            end = m * 60
            edge = step(self.alarm, end, on, off, 0, self.clear_s)
            if edge == "start":
                eng.emit(self, end, "start", ev, "quality %s: dilution suspected, O2 %s->%s %%, %s %s->%s, flow %s->%s"
                         % (self.name, num(ev["o2_from"]), num(ev["o2_to"]), self.code, num(ev["conc_from"]),
                            num(ev["conc_to"]), num(ev["flow_from"]), num(ev["flow_to"])))
            elif edge == "end":
                out = dict(ev) if ev else {}
                out["start"] = self.alarm[2]
                eng.emit(self, end, "end", out, "quality %s: dilution pattern ended" % self.name)
        o = usable(self.o2, values, points)
        c = usable(self.ch, values, points)
        f = usable(self.flow, values, points)
        if o is None or c is None or f is None:
            return
        a[0] += o
        a[1] += c
        a[2] += f
        a[3] += 1
