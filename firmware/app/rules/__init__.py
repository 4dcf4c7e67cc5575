"""Rules engine: limits, bypass, treatment power, emergency response, data quality (firmware/RULES.md).

    engine = Rules(config, on_event)          # config validated by app.config (section "rules")
    engine.tick(t, values, points)            # once per sample tick
    engine.period(kind, t, record)            # a min/hour/day record closed
    engine.set_alert_level(level, source, t=None)
    engine.set_background(station, code, value, t=None)
    engine.should_send(event) -> bool         # wire rate limit; the store keeps every event
    engine.relays() -> {relay: bool}; engine.marks() -> {station: {code: flag}}; engine.snapshot()
    event_cp(event, offset_s=28800) -> HJ 212 CP groups for a 3020 upload

Imports of the rule families happen only for the families a site configures. Below the engine: what
the families share (input references, the alarm state machine, the rule base classes, number text).

Heap: a rule keeps only what its config changes. Defaults are class attributes (stored once per class);
`Rule.opt()` sets an instance attribute (about 16 bytes a rule) only for a configured value that differs.
"""

from micropython import const

LEVELS = ("none", "blue", "yellow", "orange", "red")
_VALID = const("NST")  # flags whose value a bypass/power/quality rule may use (T: over range is still a reading)


class Rules:
    # Defaults (set on the instance only when configured otherwise)
    gap_s = 60  # wire limiter (rules.wire)
    burst = 5
    schedule = ()  # [(from, to, level index)] of rules.alert.schedule
    background = None  # (station, code) -> value pushed by the platform, once one is pushed

    def __init__(self, config, on_event):
        rc = config.get("rules") or {}
        self.on_event = on_event
        self.offset = (config.get("site") or {}).get("utc_offset_min", 480) * 60
        wire = rc.get("wire") or {}
        if wire.get("gap_s", 60) != 60:
            self.gap_s = wire["gap_s"]
        if wire.get("burst", 5) != 5:
            self.burst = wire["burst"]
        self.buckets = {}  # wire limiter: alarm key -> [tokens, last_t, start_sent]
        self.suppressed = 0
        alert = rc.get("alert") or {}
        self.platform_level = LEVELS.index(alert.get("level", "none"))
        if alert.get("schedule"):
            from app.clock import parse_stamp

            self.schedule = [(parse_stamp(e["from"], self.offset), parse_stamp(e["to"], self.offset),
                              LEVELS.index(e["level"])) for e in alert["schedule"]]
        self.level = self.platform_level
        self.level_t = 0
        self.level_source = "config"
        self.events = 0
        self.ticks = 0
        lg = config.get("logger") or {}
        self.refs = {}  # while the rules are built: the input references they share (ref())
        self.rules = [_build(r, self, lg) for r in rc.get("list", ()) if r.get("enabled", True)]
        del self.refs

    # --- inputs -----------------------------------------------------------------------------

    def tick(self, t, values, points):
        self.ticks += 1
        if self.schedule:
            self._apply_level(t)
        for r in self.rules:
            r.tick(self, t, values, points)

    def period(self, kind, t, record):
        for r in self.rules:
            r.period(self, kind, t, record)

    def set_alert_level(self, level, source, t=None):
        """Platform or operator level; the effective level is the more severe of it and the schedule."""
        self.platform_level = LEVELS.index(level)
        self.level_source = source
        self._apply_level(t)

    def set_background(self, station, code, value, t=None):
        """Background (e.g. county PM10 hourly mean) subtracted by net limits; None forgets it."""
        bg = self.background
        if value is None:
            if bg:
                bg.pop((station, code), None)
        else:
            if bg is None:
                bg = self.background = {}
            bg[(station, code)] = value

    def _apply_level(self, t):
        lvl = self.platform_level
        src = self.level_source
        if t is not None:
            for a, b, s in self.schedule:
                if a <= t < b and s > lvl:
                    lvl = s
                    src = "schedule"
        if lvl != self.level:
            old = self.level
            self.level = lvl
            self.level_t = t if t is not None else self.level_t
            self.emit(None, t, "level", {"level": LEVELS[lvl], "from": LEVELS[old], "source": src},
                      "alert level %s -> %s (%s)" % (LEVELS[old], LEVELS[lvl], src))

    # --- outputs ----------------------------------------------------------------------------

    def emit(self, rule, t, state, evidence, text, sub=None):
        """Raises an event of `rule` (None: the alert level); `sub` names one of the rule's alarms (key)."""
        ev = {"t": t, "rule": "alert", "type": "alert", "station": None, "state": state, "evidence": evidence,
              "text": text}
        if rule is not None:
            ev["rule"] = rule.name
            ev["type"] = rule.type
            ev["station"] = rule.station
            if rule.code is not None:
                ev["code"] = rule.code
            if rule.relay is not None:
                ev["relay"] = rule.relay
            if sub is not None:
                ev["key"] = rule.name + "/" + sub
        self.events += 1
        self.on_event(ev)

    def should_send(self, event):
        """Call once per event, in order: False = suppressed on the wire (it stays in the store).
        Token bucket per alarm key: at most `burst` events at once, then one per `gap_s`. An "end" is
        sent exactly when its "start" was sent, so the platform never sees a dangling alarm."""
        key = event.get("key", event["rule"])
        t = event["t"] or 0
        state = event["state"]
        b = self.buckets.get(key)
        if b is None:
            b = [float(self.burst), t, False]
            self.buckets[key] = b
        if state == "end":
            ok = b[2]
            b[2] = False
            if not ok:
                self.suppressed += 1
            return ok
        if self.gap_s > 0:
            b[0] = min(float(self.burst), b[0] + (t - b[1]) / self.gap_s)
        else:
            b[0] = float(self.burst)
        b[1] = t
        if b[0] >= 1.0:
            b[0] -= 1.0
            if state == "start":
                b[2] = True
            return True
        self.suppressed += 1
        return False

    def relays(self):
        out = {}
        for r in self.rules:
            if r.relay is not None:
                out[r.relay] = out.get(r.relay, False) or r.active()
        return out

    def marks(self):
        out = {}
        for r in self.rules:
            if r.mark and r.station is not None and r.active():
                out.setdefault(r.station, {})[r.code] = r.mark
        return out

    def snapshot(self):
        rules = {}
        for r in self.rules:
            rules[r.name] = r.snap()
        return {"level": LEVELS[self.level], "events": self.events, "ticks": self.ticks,
                "wire_suppressed": self.suppressed, "rules": rules}


def _build(cfg, eng, lg):
    typ = cfg["type"]
    if typ == "limit":
        from app.rules.limits import LimitRule

        return LimitRule(cfg, eng, lg)
    if typ == "bypass":
        from app.rules.bypass import BypassRule

        return BypassRule(cfg, eng)
    if typ == "power":
        if cfg["kind"] == "order":
            from app.rules.order import OrderRule

            return OrderRule(cfg, eng)
        from app.rules.power import NotRunningRule

        return NotRunningRule(cfg, eng)
    if typ == "emergency":
        from app.rules.emergency import EmergencyRule

        return EmergencyRule(cfg, eng)
    if typ == "quality":
        k = cfg["kind"]
        if k == "dilution":
            from app.rules.dilution import DilutionRule

            return DilutionRule(cfg, eng)
        from app.rules import quality

        return (quality.OffsetRule if k == "offset" else quality.FlatlineRule)(cfg, eng)
    raise ValueError("rule %s: unknown type %r" % (cfg.get("name"), typ))


def event_cp(event, offset_s=28800):
    """CP groups of the CN 3020 upload of one event (app/rules/wire.py; loaded only when uploading)."""
    from app.rules.wire import event_cp as build

    return build(event, offset_s)


# --- shared by the rule families -------------------------------------------------------------

def ref(eng, text):
    """'device.point' -> the text itself; 'station/code' -> (station, code). While the engine builds its
    rules (eng.refs), rules on the same input share one reference, channels of a station its name."""
    if text is None:
        return None
    refs = eng.refs
    r = refs.get(text)
    if r is None:
        i = text.rfind("/")
        if i > 0:
            st = text[:i]
            r = (refs.setdefault(st, st), text[i + 1 :])
        else:
            r = text
        refs[text] = r
    return r


def read(r, values, points):
    """(value or None, flag) of a reference in this tick; a missing input reads (None, "B")."""
    if type(r) is str:  # device point
        e = points.get(r)
        if e is None:
            return None, "B"
        if isinstance(e, tuple) or isinstance(e, list):
            return e[0], e[1]
        return e, "N"
    st = values.get(r[0])
    if st is None:
        return None, "B"
    e = st.get(r[1])
    if e is None:
        return None, "B"
    return e[0], e[1]


def usable(r, values, points):
    """Value when present and flagged N/S/T, else None."""
    v, f = read(r, values, points)
    if v is None or f not in _VALID:
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


def step(a, t, on, off, on_s, off_s):
    """Alarm a = [active, since, t0] (since: when the pending edge condition began; t0: when the alarm
    became active), debounced on both edges: raises after `on_s` of continuous `on`, clears after `off_s`
    of continuous `off`. Callers pass separate on/off conditions so hysteresis lives in the rule; None
    (condition unknown, e.g. no valid data) changes nothing, so a data gap neither raises nor clears.
    Returns "start", "end" or None."""
    if a[0]:
        cond, wait = off, off_s
    else:
        cond, wait = on, on_s
    if cond is None:
        return None
    if not cond:
        a[1] = None
        return None
    if a[1] is None:
        a[1] = t
    if t - a[1] < wait:
        return None
    a[1] = None
    if a[0]:
        a[0] = False
        return "end"
    a[0] = True
    a[2] = t
    return "start"


class Rule:
    """Common fields. Subclasses implement tick(eng, t, values, points) and optionally period()."""

    type = ""  # the family (limit, bypass, power, emergency, quality)
    station = None  # whose links report the events; None: every link
    code = None
    relay = None
    mark = None
    alarm = (False,)  # [active, since, t0] of the rules with one alarm (see step)

    def __init__(self, cfg, eng):
        self.name = cfg["name"]
        ch = cfg.get("channel")
        if ch:
            self.station, self.code = ref(eng, ch)
        else:
            self.opt(cfg, "station")
        self.opt(cfg, "relay")
        self.opt(cfg, "mark")

    def opt(self, cfg, key, attr=None):
        """self.<attr or key> = cfg[key] when configured and not the class default (same type too)."""
        attr = attr or key
        v = cfg.get(key)
        d = getattr(self, attr)
        if v is not None and (v != d or type(v) is not type(d)):
            setattr(self, attr, v)

    def active(self):
        return self.alarm[0]

    def snap(self):
        return {"active": self.active()}

    def period(self, eng, kind, t, record):
        pass


class CondRule(Rule):
    """A rule whose alarm follows a condition evaluated each tick: cond() -> (on, off, evidence).
    The alarm's debounce is `on_s` / `clear_s` (class defaults per family)."""

    on_s = 0
    clear_s = 0

    def __init__(self, cfg, eng):
        Rule.__init__(self, cfg, eng)
        self.opt(cfg, "clear_s")
        self.alarm = [False, None, None]

    def cond(self, t, values, points):
        """(on, off, evidence) for this tick; each condition rule defines it."""
        raise NotImplementedError

    def tick(self, eng, t, values, points):
        on, off, ev = self.cond(t, values, points)
        a = self.alarm
        edge = step(a, t, on, off, self.on_s, self.clear_s)
        if edge is None:
            return
        parts = []  # the evidence as text: "key=value ..." in key order
        for k in sorted(ev):
            v = ev[k]
            parts.append("%s=%s" % (k, num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v))
        if edge == "start":
            eng.emit(self, t, "start", ev, "%s %s: %s" % (self.type, self.name, " ".join(parts)))
        else:
            out = {"start": a[2], "duration_s": t - a[2]}
            for k in ev:
                out[k] = ev[k]
            eng.emit(self, t, "end", out, "%s %s ended: %s" % (self.type, self.name, " ".join(parts)))

    def snap(self):
        a = self.alarm
        return {"active": a[0], "since": a[2] if a[0] else None}
