"""Rules engine: limits, bypass, treatment power, emergency response, data quality (firmware/RULES.md).

    engine = Rules(config, on_event)          # config validated by app.config (section "rules")
    engine.tick(t, values, points)            # once per sample tick
    engine.period(kind, t, record)            # a min/hour/day record closed
    engine.set_alert_level(level, source, t=None)
    engine.set_background(station, code, value, t=None)
    engine.should_send(event) -> bool         # wire rate limit; the store keeps every event
    engine.relays() -> {relay: bool}; engine.marks() -> {station: {code: flag}}; engine.snapshot()
    event_cp(event, offset_s=28800) -> HJ 212 CP groups for a 3020 upload

Imports of the rule families happen only for the families a site configures.
"""

LEVELS = ("none", "blue", "yellow", "orange", "red")


class Rules:
    def __init__(self, config, on_event):
        rc = config.get("rules") or {}
        lg = config.get("logger") or {}
        self.on_event = on_event
        self.sample_s = lg.get("sample_s", 1)
        self.valid_fraction = lg.get("valid_fraction", 0.75)
        self.offset = (config.get("site") or {}).get("utc_offset_min", 480) * 60
        wire = rc.get("wire") or {}
        from app.rules.alarm import WireLimiter

        self.wire = WireLimiter(wire.get("gap_s", 60), wire.get("burst", 5))
        alert = rc.get("alert") or {}
        self.platform_level = LEVELS.index(alert.get("level", "none"))
        self.schedule = []
        for e in alert.get("schedule", ()):
            a = _epoch(e["from"], self.offset)
            self.schedule.append((a, _epoch(e["to"], self.offset), LEVELS.index(e["level"])))
        self.level = self.platform_level
        self.level_t = 0
        self.level_source = "config"
        self.background = {}  # (station, code) -> value pushed by the platform
        self.events = 0
        self.ticks = 0
        self.rules = []
        for r in rc.get("list", ()):
            if r.get("enabled", True):
                self.rules.append(_build(r, self))

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
        if value is None:
            self.background.pop((station, code), None)
        else:
            self.background[(station, code)] = value

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
            self._event(t, "alert", None, None, "level",
                        {"level": LEVELS[lvl], "from": LEVELS[old], "source": src},
                        "alert level %s -> %s (%s)" % (LEVELS[old], LEVELS[lvl], src), None, None)

    # --- outputs ----------------------------------------------------------------------------

    def emit(self, rule, t, state, evidence, text, sub=None):
        key = rule.name if sub is None else rule.name + "/" + sub
        self._event(t, rule.name, rule.station, rule.code, state, evidence, text, rule.relay, key, rule.type)

    def _event(self, t, name, station, code, state, evidence, text, relay, key, typ="alert"):
        ev = {"t": t, "rule": name, "type": typ, "station": station, "state": state, "evidence": evidence,
              "text": text}
        if code is not None:
            ev["code"] = code
        if relay is not None:
            ev["relay"] = relay
        if key is not None and key != name:
            ev["key"] = key
        self.events += 1
        self.on_event(ev)

    def should_send(self, event):
        """Call once per event, in order: False = suppressed on the wire (it stays in the store)."""
        return self.wire.allow(event.get("key", event["rule"]), event["t"] or 0, event["state"])

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
                "wire_suppressed": self.wire.suppressed, "rules": rules}


def _build(cfg, eng):
    typ = cfg["type"]
    if typ == "limit":
        from app.rules.limits import LimitRule

        return LimitRule(cfg, eng)
    if typ == "bypass":
        from app.rules.bypass import BypassRule

        return BypassRule(cfg, eng)
    if typ == "power":
        from app.rules import power

        return power.build(cfg, eng)
    if typ == "emergency":
        from app.rules.emergency import EmergencyRule

        return EmergencyRule(cfg, eng)
    if typ == "quality":
        from app.rules import quality

        return quality.build(cfg, eng)
    raise ValueError("rule %s: unknown type %r" % (cfg.get("name"), typ))


def _epoch(stamp, offset_s):
    """Epoch seconds of a local YYYYMMDDhhmmss (civil-from-days arithmetic, no port time functions)."""
    y, mo, d = int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8])
    if mo <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (mo + 9 if mo <= 2 else mo - 3) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + int(stamp[8:10]) * 3600 + int(stamp[10:12]) * 60 + int(stamp[12:14]) - offset_s


def event_cp(event, offset_s=28800):
    """CP groups of the CN 3020 upload of one event (app/rules/wire.py; loaded only when uploading)."""
    from app.rules.wire import event_cp as build

    return build(event, offset_s)
