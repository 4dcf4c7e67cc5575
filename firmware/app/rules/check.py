"""Validation of the config's `rules` section (called by app.config.validate) and limit presets.

Problems go to the config checker as `rules.list[i](name).key: what is wrong; expected ...`, so every
message names the rule. Presets (protocols/limits/<file>.json) are merged into the rule here; the keys
taken from a preset are listed in `from_preset` and those not marked verified in `unverified`.
"""

import json

LEVELS = ("none", "blue", "yellow", "orange", "red")
FLAGS = "FMSDCTB"
KINDS = {
    "bypass": ("damper", "temperature", "flow", "main_flow"),
    "power": ("not_running", "order", "derate"),
    "quality": ("flatline", "zero", "dilution", "offset"),
}
COMMON = ("name", "type", "kind", "relay", "enabled")
DAY = 86400
# key: (check, lo, hi); check: n number, i integer, p point (device.point), r point or station/code,
# c channel (station/code), t station name, b boolean, s string, f flag letters
SPEC = {
    "limit": {
        "channel": ("c",), "preset": ("s",), "limit": ("n", 0, 1e9), "unit": ("s",), "zs": ("b",),
        "window": ("s",), "minutes": ("i", 1, 60), "warn_fraction": ("n", 0, 1), "hysteresis": ("n", 0, 0.99),
        "exclude": ("f",), "daily_max": ("i", 0, 96), "background_default": ("n", 0, 1e9),
        "background_cap": ("n", 0, 1e9), "valid_fraction": ("n", 0, 1), "on_s": ("i", 0, DAY),
        "off_s": ("i", 0, DAY), "o2_ref": ("n", 0, 20.9), "standard": ("s",), "source": ("s",),
        "unverified": None, "from_preset": None,
    },
    "bypass": {
        "input": ("r",), "running": ("r",), "running_above": ("n", -1e9, 1e9), "open_value": ("i", 0, 1),
        "above": ("n", -1e9, 1e9), "below": ("n", 0, 1e9), "ambient": ("r",), "delta": ("n", 0, 1000),
        "hysteresis": ("n", 0, 1e9), "for_s": ("i", 0, DAY), "clear_s": ("i", 0, DAY), "station": ("t",),
    },
    "power": {
        "production": ("p",), "treatment": ("p",), "on_kw": ("n", 0, 1e6), "idle_kw": ("n", 0, 1e6),
        "rated_kw": ("n", 0, 1e6), "fraction": ("n", 0, 1), "for_s": ("i", 0, DAY), "clear_s": ("i", 0, DAY),
        "lead_s": ("i", 0, DAY), "lag_s": ("i", 0, DAY), "debounce_s": ("i", 0, 3600), "station": ("t",),
    },
    "emergency": {
        "lines": None, "levels": None, "for_s": ("i", 0, DAY), "grace_s": ("i", 0, DAY), "clear_s": ("i", 0, DAY),
        "station": ("t",),
    },
    "quality": {
        "channel": ("c",), "running": ("r",), "running_above": ("n", -1e9, 1e9), "for_s": ("i", 1, DAY),
        "tolerance": ("n", 0, 1e9), "zero_max": ("n", -1e9, 1e9), "o2": ("c",), "flow": ("c",),
        "window_min": ("i", 1, 60), "o2_rise": ("n", 0, 21), "conc_drop": ("n", 0, 1),
        "flow_rise": ("n", 0, 100), "step": ("n", 0, 1e9), "band": ("n", 0, 1e9), "hold_s": ("i", 1, DAY),
        "clear_s": ("i", 0, DAY), "mark": ("f",),
    },
}
REQUIRED = {
    "limit": ("channel",),
    "bypass": ("kind", "input"),
    "power": ("kind", "production", "treatment", "on_kw", "idle_kw"),
    "emergency": ("lines", "levels"),
    "quality": ("kind", "channel"),
}
# Preset fields copied into a limit rule unless the site sets them.
PRESET_FIELDS = ("limit", "unit", "window", "minutes", "zs", "o2_ref", "daily_max", "background_cap")


def limits_dir():
    try:
        import protocols

        path = protocols.__file__
        return path[: path.rfind("/")] + "/limits"
    except Exception:
        return "protocols/limits"


def read_preset_file(name, folder=None):
    try:
        with open((folder or limits_dir()) + "/" + name + ".json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def check(c, cfg, points, folder=None):
    """Checks cfg["rules"] with the config checker `c`; `points` = device name -> template points."""
    rc = cfg.get("rules")
    if rc is None:
        return
    if not c.obj(rc, "rules", ("alert", "wire", "list")):
        return
    chans = _channels(cfg)
    alert = rc.setdefault("alert", {})
    if c.obj(alert, "rules.alert", ("level", "schedule")):
        lv = alert.setdefault("level", "none")
        if lv not in LEVELS:
            c.err("rules.alert.level", "%r; expected one of %s" % (lv, ", ".join(LEVELS)))
        sch = alert.setdefault("schedule", [])
        if c.lst(sch, "rules.alert.schedule", nonempty=False):
            for i, e in enumerate(sch):
                p = "rules.alert.schedule[%d]" % i
                if not c.obj(e, p, ("from", "to", "level")):
                    continue
                a = _stamp_ok(c, e.get("from"), p + ".from")
                b = _stamp_ok(c, e.get("to"), p + ".to")
                if a and b and e["from"] >= e["to"]:
                    c.err(p, "from %s is not before to %s; expected from < to" % (e["from"], e["to"]))
                if e.get("level") not in LEVELS[1:]:
                    c.err(p + ".level", "%r; expected one of %s" % (e.get("level"), ", ".join(LEVELS[1:])))
    wire = rc.setdefault("wire", {})
    if c.obj(wire, "rules.wire", ("gap_s", "burst")):
        c.integer(wire, "gap_s", "rules.wire", 0, DAY, default=60)
        c.integer(wire, "burst", "rules.wire", 1, 100, default=5)
    lst = rc.setdefault("list", [])
    if not c.lst(lst, "rules.list", nonempty=False):
        return
    names = {}
    emergencies = 0
    for i, r in enumerate(lst):
        p = "rules.list[%d]" % i
        if not isinstance(r, dict):
            c.err(p, "is %s; expected an object" % type(r).__name__)
            continue
        name = r.get("name")
        if isinstance(name, str) and name:
            p = "%s(%s)" % (p, name)
        typ = r.get("type")
        if typ not in SPEC:
            c.err(p + ".type", "%r; expected one of %s" % (typ, ", ".join(sorted(SPEC))))
            continue
        spec = SPEC[typ]
        if not c.obj(r, p, COMMON + tuple(spec)):
            continue
        c.unique(names, c.string(r, "name", "rules.list[%d]" % i, maxlen=32, what="a rule name"), p + ".name",
                 "rule name")
        c.boolean(r, "enabled", p, True)
        if r.get("relay") is not None:
            c.string(r, "relay", p, maxlen=32, what="a relay output name of the board")
        kinds = KINDS.get(typ)
        if kinds is not None and "kind" in r and r["kind"] not in kinds:
            c.err(p + ".kind", "%r; expected one of %s" % (r["kind"], ", ".join(kinds)))
            continue
        if kinds is None and "kind" in r:
            c.err(p + ".kind", "not used by %s rules; expected no kind" % typ)
        if typ == "limit":
            _preset(c, r, p, folder)
        for key in REQUIRED[typ]:
            if r.get(key) is None:
                c.err(p + "." + key, "missing; expected %s" % _what(typ, key))
        for key in r:
            s = spec.get(key)
            if s is not None:
                _value(c, r, key, s, p, points, chans)
        if typ == "limit":
            _limit(c, r, p, chans, points)
        elif typ == "bypass":
            _bypass(c, r, p)
        elif typ == "power":
            _power(c, r, p)
        elif typ == "emergency":
            emergencies += 1
            if emergencies > 1:
                c.err(p, "second emergency rule; expected one (it lists every line)")
            _emergency(c, r, p, points)
        elif typ == "quality":
            _quality(c, r, p)


def _what(typ, key):
    return {
        "channel": "a channel as station/code",
        "kind": "one of " + ", ".join(KINDS.get(typ, ())),
        "input": "the input as device.point or station/code",
        "production": "the production line's power meter point (device.point, kW)",
        "treatment": "the treatment facility's power meter point (device.point, kW)",
        "on_kw": "the production running threshold in kW",
        "idle_kw": "the treatment idle threshold in kW",
        "lines": 'an object line -> {"point": meter, "on_kw": kW}',
        "levels": "an object level -> {line: allowed kW}",
    }.get(key, "a value")


def _channels(cfg):
    out = {}
    for st in cfg.get("stations") or ():
        if isinstance(st, dict) and isinstance(st.get("name"), str):
            d = {}
            for ch in st.get("channels") or ():
                if isinstance(ch, dict) and isinstance(ch.get("code"), str):
                    d[ch["code"]] = ch
            out[st["name"]] = d
    return out


def _stamp_ok(c, v, p):
    if not isinstance(v, str) or len(v) != 14 or not v.isdigit():
        c.err(p, "%r; expected local time YYYYMMDDhhmmss" % (v,))
        return False
    return True


def _value(c, r, key, s, p, points, chans):
    v = r[key]
    q = p + "." + key
    k = s[0]
    if k in ("n", "i"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (k == "i" and not isinstance(v, int)):
            c.err(q, "is %r; expected %s %s..%s" % (v, "an integer" if k == "i" else "a number", s[1], s[2]))
        elif v < s[1] or v > s[2] or (k == "n" and s[1] == 0 and v == 0 and key not in _ZERO_OK):
            c.err(q, "%s is impossible; expected %s..%s%s" % (
                v, s[1], s[2], " (above 0)" if v == 0 else ""))
    elif k == "b":
        if not isinstance(v, bool):
            c.err(q, "is %r; expected true or false" % (v,))
    elif k == "s":
        if not isinstance(v, str) or not v:
            c.err(q, "is %r; expected a string" % (v,))
    elif k == "f":
        if not isinstance(v, str) or not v or [x for x in v if x not in FLAGS]:
            c.err(q, "%r; expected HJ 212 flag letters from %s" % (v, FLAGS))
    elif k == "p":
        _point(c, v, q, points)
    elif k == "r":
        if isinstance(v, str) and "/" in v:
            _channel(c, v, q, chans)
        else:
            _point(c, v, q, points)
    elif k == "c":
        _channel(c, v, q, chans)
    elif k == "t" and (not isinstance(v, str) or v not in chans):
        c.err(q, "unknown station %r; expected one of %s (its links report this rule's events)"
              % (v, ", ".join(sorted(chans)) or "(none defined)"))


_ZERO_OK = ("background_default", "hysteresis", "tolerance", "delta", "below", "running_above",
            "zero_max", "above", "idle_kw")


def _point(c, v, q, points):
    if not isinstance(v, str) or v.find(".") <= 0:
        c.err(q, "%r; expected device.point of a device defined on a bus" % (v,))
        return
    dev, pt = v.split(".", 1)
    if dev not in points:
        c.err(q, "unknown device %r; expected one of %s" % (dev, ", ".join(sorted(points)) or "(none defined)"))
    elif points[dev] is not None and pt not in points[dev]:
        c.err(q, "unknown point %r of device %r; expected one of %s" % (pt, dev, ", ".join(points[dev])))


def _channel(c, v, q, chans):
    if not isinstance(v, str) or v.rfind("/") <= 0:
        c.err(q, "%r; expected station/code of a configured channel" % (v,))
        return False
    i = v.rfind("/")
    st, code = v[:i], v[i + 1 :]
    if st not in chans:
        c.err(q, "unknown station %r; expected one of %s" % (st, ", ".join(sorted(chans)) or "(none defined)"))
        return False
    if code not in chans[st]:
        c.err(q, "unknown channel %r of station %r; expected one of %s" % (code, st, ", ".join(chans[st])))
        return False
    return True


def _preset(c, r, p, folder):
    for k in r.get("from_preset") or ():
        r.pop(k, None)  # values a previous validation copied: take them from the preset again
    r.pop("from_preset", None)
    r.pop("unverified", None)
    name = r.get("preset")
    if name is None:
        return
    if not isinstance(name, str) or name.find("/") <= 0:
        c.err(p + ".preset", "%r; expected file/preset, e.g. gb13271-2014/gas-new-nox" % (name,))
        return
    fname, key = name.split("/", 1)
    data = read_preset_file(fname, folder)
    if data is None:
        c.err(p + ".preset", "no preset file protocols/limits/%s.json; expected one of the limit preset files" % fname)
        return
    pr = data.get("presets", {}).get(key)
    if pr is None:
        c.err(p + ".preset", "no preset %r in %s.json; expected one of %s" % (
            key, fname, ", ".join(sorted(data.get("presets", {})))))
        return
    marks = pr.get("marks", {})
    taken = []
    unverified = []
    for k in PRESET_FIELDS:
        if k in pr and k not in r:
            r[k] = pr[k]
            taken.append(k)
            if marks.get(k, "U") != "V":
                unverified.append("%s=%s [%s]" % (k, pr[k], marks.get(k, "U")))
    r["from_preset"] = taken
    r["unverified"] = unverified
    r["standard"] = data.get("standard", fname)
    r["source"] = pr.get("source", data.get("source", ""))
    if pr.get("code") is not None:
        r["preset_code"] = pr["code"]


def _limit(c, r, p, chans, points):
    code = r.pop("preset_code", None)
    ch = r.get("channel")
    chcfg = None
    if isinstance(ch, str) and "/" in ch:
        i = ch.rfind("/")
        chcfg = chans.get(ch[:i], {}).get(ch[i + 1 :])
        if code is not None and ch[i + 1 :] != code:
            c.err(p + ".preset", "%s is a limit for %s, the channel is %s; expected a preset of this pollutant"
                  % (r.get("preset"), code, ch[i + 1 :]))
    w = r.setdefault("window", "rolling")
    if w not in ("rolling", "hour", "day"):
        c.err(p + ".window", "%r; expected rolling, hour or day" % (w,))
    if w != "rolling" and "minutes" in r and "minutes" not in (r.get("from_preset") or ()):
        c.err(p + ".minutes", "only for window rolling; expected no minutes with window %s" % w)
    if w == "rolling":
        r.setdefault("minutes", 15)
    o2_ref = r.get("o2_ref")
    zs = r.setdefault("zs", o2_ref is not None)
    if chcfg is not None:
        if zs and chcfg.get("o2_ref") is None:
            c.err(p + ".zs", "channel %s has no o2_ref, so no converted value; expected o2_ref on the channel "
                  "or zs false" % ch)
        elif zs and o2_ref is not None and chcfg.get("o2_ref") != o2_ref:
            c.err(p + ".zs", "the limit is at %s %% O2 but channel %s converts to %s %%; expected equal reference O2"
                  % (o2_ref, ch, chcfg.get("o2_ref")))
        unit = _unit(chcfg, points)
        lu = r.setdefault("unit", "mg/m3")
        if unit is not None and unit != lu:
            c.err(p + ".unit", "limit in %s but channel %s reports %s; expected the channel's unit" % (lu, ch, unit))
    if r.get("limit") is None:
        c.err(p + ".limit", "missing; expected the limit value (or a preset)")
    wf = r.get("warn_fraction")
    if isinstance(wf, (int, float)) and wf >= 1:
        c.err(p + ".warn_fraction", "%s is impossible; expected a fraction below 1" % wf)
    if r.get("daily_max") is not None and w == "day":
        c.err(p + ".daily_max", "counts windows per day; expected a rolling or hour window")


def _unit(ch, points):
    if ch.get("unit"):
        return ch["unit"]
    if ch.get("nox_from"):
        return "mg/m3"
    src = ch.get("source")
    if isinstance(src, str) and "." in src:
        dev, pt = src.split(".", 1)
        d = (points.get(dev) or {}).get(pt)
        if isinstance(d, dict):
            return d.get("unit")
    return None


def _bypass(c, r, p):
    k = r.get("kind")
    if k == "temperature":
        if ("above" in r) == ("ambient" in r):
            c.err(p, "has %s of above/ambient; expected exactly one (a fixed threshold or an ambient input)"
                  % ("both" if "above" in r else "neither"))
    elif k == "flow" and r.get("above") is None:
        c.err(p + ".above", "missing; expected the bypass flow threshold")
    elif k == "main_flow":
        if r.get("below") is None:
            c.err(p + ".below", "missing; expected the main-duct flow below which it has collapsed")
        if r.get("running") is None:
            c.err(p + ".running", "missing; expected the production power point (flow collapse only counts "
                  "while production runs)")
    elif k == "damper" and "above" in r:
        c.err(p + ".above", "not used by a damper rule; expected open_value")


def _power(c, r, p):
    k = r.get("kind")
    if r.get("production") is not None and r.get("production") == r.get("treatment"):
        c.err(p + ".treatment", "is the production meter too; expected the treatment facility's own meter")
    if k == "derate":
        rated = r.get("rated_kw")
        fr = r.get("fraction")
        if rated is None or fr is None:
            c.err(p, "derate needs rated_kw and fraction; expected both")
        elif isinstance(rated, (int, float)) and isinstance(fr, (int, float)) and isinstance(
            r.get("idle_kw"), (int, float)
        ):
            if fr * rated <= r["idle_kw"]:
                c.err(p + ".fraction", "%s x rated %s kW = %s kW is not above idle_kw %s; an impossible threshold, "
                      "expected fraction x rated_kw > idle_kw" % (fr, rated, fr * rated, r["idle_kw"]))


def _emergency(c, r, p, points):
    lines = r.get("lines")
    if isinstance(lines, dict):
        if not lines:
            c.err(p + ".lines", "is empty; expected at least one production line")
        for name in lines:
            q = p + ".lines." + name
            ln = lines[name]
            if not c.obj(ln, q, ("point", "on_kw")):
                continue
            if ln.get("point") is None:
                c.err(q + ".point", "missing; expected the line's power meter point (device.point)")
            else:
                _point(c, ln["point"], q + ".point", points)
            c.number(ln, "on_kw", q, 0, 1e6, default=0.0)
    elif lines is not None:
        c.err(p + ".lines", "is %r; expected an object line -> {point, on_kw}" % (lines,))
    levels = r.get("levels")
    if isinstance(levels, dict):
        for lv in levels:
            q = p + ".levels." + lv
            if lv not in LEVELS[1:]:
                c.err(q, "unknown alert level; expected one of %s" % ", ".join(LEVELS[1:]))
                continue
            m = levels[lv]
            if not isinstance(m, dict):
                c.err(q, "is %r; expected an object line -> allowed kW" % (m,))
                continue
            for line in m:
                if isinstance(lines, dict) and line not in lines:
                    c.err(q + "." + line, "unknown line; expected one of %s" % ", ".join(sorted(lines)))
                v = m[line]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    c.err(q + "." + line, "%r; expected the allowed power in kW (0 = must be off)" % (v,))
    elif levels is not None:
        c.err(p + ".levels", "is %r; expected an object level -> {line: allowed kW}" % (levels,))


def _quality(c, r, p):
    k = r.get("kind")
    if k == "dilution":
        for key in ("o2", "flow"):
            if r.get(key) is None:
                c.err(p + "." + key, "missing; expected the station's %s channel as station/code" % key.upper()
                      if key == "o2" else "missing; expected the station's flow channel as station/code")
    if k == "offset" and r.get("step") is None:
        c.err(p + ".step", "missing; expected the smallest offset step to report")
    if k == "offset" and isinstance(r.get("band"), (int, float)) and isinstance(r.get("step"), (int, float)):
        if r["band"] >= r["step"]:
            c.err(p + ".band", "%s is not below step %s; expected band < step" % (r["band"], r["step"]))


def report(cfg):
    """Lines naming every limit value that came from a preset without a verified mark (for `site check`)."""
    out = []
    rc = cfg.get("rules") or {}
    for i, r in enumerate(rc.get("list") or ()):
        if isinstance(r, dict) and r.get("unverified"):
            out.append("rules.list[%d](%s): %s from %s (%s) NOT VERIFIED: %s; check the standard's text or set "
                       "the values in the site" % (i, r.get("name"), r.get("preset"), r.get("standard"),
                                                    r.get("source"), ", ".join(r["unverified"])))
    return out
