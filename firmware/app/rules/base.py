"""Shared pieces of the rule families: input references, the condition-rule base class, number text."""

from app.rules.alarm import Alarm

VALID = "NST"  # flags whose value a bypass/power/quality rule may use (T: over range is still a reading)


def ref(text):
    """'device.point' -> ("p", text, None); 'station/code' -> ("c", station, code)."""
    if text is None:
        return None
    i = text.rfind("/")
    if i > 0:
        return ("c", text[:i], text[i + 1 :])
    return ("p", text, None)


def read(r, values, points, zs=False):
    """(value or None, flag) of a reference in this tick; a missing input reads (None, "B")."""
    if r[0] == "p":
        e = points.get(r[1])
        if e is None:
            return None, "B"
        if isinstance(e, tuple) or isinstance(e, list):
            return e[0], e[1]
        return e, "N"
    st = values.get(r[1])
    if st is None:
        return None, "B"
    e = st.get(r[2])
    if e is None:
        return None, "B"
    if not zs:
        return e[0], e[1]
    if len(e) > 2:
        return e[2], e[1]
    z = st.get(r[2] + "-Zs")
    return (z[0] if z else None), e[1]


def usable(r, values, points):
    """Value when present and flagged N/S/T, else None."""
    v, f = read(r, values, points)
    if v is None or f not in VALID:
        return None
    return v


def num(v):
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    s = "%.4f" % v
    s = s.rstrip("0")
    return s[:-1] if s.endswith(".") else s


class Rule:
    """Common fields. Subclasses implement tick(eng, t, values, points) and optionally period()."""

    def __init__(self, cfg):
        self.name = cfg["name"]
        self.type = cfg["type"]
        self.kind = cfg.get("kind")
        self.relay = cfg.get("relay")
        self.mark = cfg.get("mark")
        self.station = cfg.get("station")  # whose links report the events; None: every link
        self.code = None
        ch = cfg.get("channel")
        if ch:
            i = ch.rfind("/")
            self.station = ch[:i]
            self.code = ch[i + 1 :]

    def active(self):
        return False

    def snap(self):
        return {"active": self.active()}

    def period(self, eng, kind, t, record):
        pass


class CondRule(Rule):
    """A rule whose alarm follows a condition evaluated each tick: cond() -> (on, off, evidence)."""

    label = "condition"

    def __init__(self, cfg, on_s, off_s):
        Rule.__init__(self, cfg)
        self.alarm = Alarm(on_s, off_s)
        self.ev0 = None

    def active(self):
        return self.alarm.active

    def cond(self, t, values, points):
        """(on, off, evidence) for this tick; each condition rule defines it."""
        raise NotImplementedError

    def tick(self, eng, t, values, points):
        on, off, ev = self.cond(t, values, points)
        edge = self.alarm.step(t, on, off)
        if edge == "start":
            self.ev0 = ev
            eng.emit(self, t, "start", ev, "%s %s: %s" % (self.label, self.name, _evtext(ev)))
        elif edge == "end":
            out = {"start": self.alarm.t0, "duration_s": t - self.alarm.t0}
            for k in ev:
                out[k] = ev[k]
            eng.emit(self, t, "end", out, "%s %s ended: %s" % (self.label, self.name, _evtext(ev)))

    def snap(self):
        return {"active": self.alarm.active, "since": self.alarm.t0 if self.alarm.active else None}


def _evtext(ev):
    parts = []
    for k in sorted(ev):
        v = ev[k]
        parts.append("%s=%s" % (k, num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v))
    return " ".join(parts)
