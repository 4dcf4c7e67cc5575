"""Device config (schema 1, see firmware/CONFIG.md): load, validate, fill defaults.

Every problem is collected (not just the first) so one safe-mode boot shows them all. Messages read
`path: what is wrong; expected ...`, e.g. `buses[1].devices[0].address: 0 out of range; expected 1..247`.
"""

import json

MIN_INTERVALS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
UNIT_CONVERSIONS = (("ppm", "mg/m3"), ("ug/m3", "mg/m3"), ("mg/m3", "mg/m3"))
# Characters that would break an HJ 212 data segment if they appeared in a field value.
_SEGMENT_CHARS = ";,=&\r\n"

KEYS = {
    "": ("schema", "site", "logger", "store", "buses", "stations", "centers", "rules"),
    "store": ("max_bytes", "seg_bytes"),
    "site": ("name", "utc_offset_min"),
    "logger": ("sample_s", "rtd_interval_s", "min_interval_min", "valid_fraction", "o2_guard"),
    "bus": (
        "name",
        "uart",
        "baud",
        "parity",
        "stop_bits",
        "tx",
        "rx",
        "de",
        "timeout_ms",
        "retries",
        "turnaround_ms",
        "backoff_s",
        "devices",
    ),
    "device": ("name", "template", "address", "poll_s"),
    "station": ("name", "mn", "st", "channels"),
    "channel": (
        "code",
        "source",
        "nox_from",
        "o2_ref",
        "o2",
        "flow",
        "unit",
        "from_unit",
        "molar_mass",
        "range",
    ),
    "center": (
        "name",
        "host",
        "port",
        "version",
        "stations",
        "overtime_s",
        "recount",
        "realtime",
    ),
    "center_station": ("pw",),
}


class ConfigError(Exception):
    """Raised with the list of every problem found; str() joins them one per line."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = errors


def templates_dir():
    try:
        import protocols

        path = protocols.__file__
        return path[: path.rfind("/")] + "/templates"
    except Exception:
        return "protocols/templates"


def read_template(name, folder=None):
    """The template dict, or None when the file does not exist or is not JSON."""
    try:
        with open((folder or templates_dir()) + "/" + name + ".json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load(path, folder=None):
    """Reads and validates the config file; raises ConfigError (also for a missing or non-JSON file)."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError as exc:
        raise ConfigError(
            ["%s: cannot read (%s); expected the device config written by `emlog build`" % (path, exc)]
        )
    except ValueError as exc:
        raise ConfigError(
            ["%s: not valid JSON (%s); expected the device config written by `emlog build`" % (path, exc)]
        )
    return validate(cfg, folder)


class _Checker:
    def __init__(self):
        self.errors = []

    def err(self, path, text):
        self.errors.append("%s: %s" % (path, text))

    def obj(self, value, path, keys):
        if not isinstance(value, dict):
            self.err(path, "is %s; expected an object" % _kind(value))
            return False
        for k in value:
            if k not in keys:
                self.err(_join(path, k), "unknown key; expected one of %s" % ", ".join(keys))
        return True

    def lst(self, value, path, nonempty=True):
        if not isinstance(value, list):
            self.err(path, "is %s; expected a list" % _kind(value))
            return False
        if nonempty and not value:
            self.err(path, "is empty; expected at least one entry")
            return False
        return True

    def integer(self, d, key, path, lo, hi, default=None, choices=None):
        p = _join(path, key)
        v = d.get(key)
        if v is None:
            if default is None:
                self.err(p, "missing; expected an integer %s" % _rng(lo, hi, choices))
                return None
            d[key] = default
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(p, "is %s; expected an integer %s" % (_kind(v), _rng(lo, hi, choices)))
            return None
        if choices is not None and v not in choices:
            self.err(p, "%d is not allowed; expected one of %s" % (v, ", ".join([str(c) for c in choices])))
            return None
        if choices is None and (v < lo or v > hi):
            self.err(p, "%d out of range; expected %s..%s" % (v, lo, hi))
            return None
        return v

    def number(self, d, key, path, lo, hi, default=None, lo_open=False, hi_open=False):
        p = _join(path, key)
        v = d.get(key)
        if v is None:
            if default is None:
                self.err(p, "missing; expected a number in %s" % _interval(lo, hi, lo_open, hi_open))
                return None
            d[key] = default
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.err(p, "is %s; expected a number in %s" % (_kind(v), _interval(lo, hi, lo_open, hi_open)))
            return None
        if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
            self.err(p, "%s out of range; expected a number in %s" % (v, _interval(lo, hi, lo_open, hi_open)))
            return None
        return v

    def string(self, d, key, path, default=None, maxlen=64, what="a string", wire=True):
        p = _join(path, key)
        v = d.get(key)
        if v is None:
            if default is None:
                self.err(p, "missing; expected %s" % what)
                return None
            d[key] = default
            return default
        if not isinstance(v, str) or not v:
            self.err(p, "is %s; expected %s" % ("an empty string" if v == "" else _kind(v), what))
            return None
        if len(v) > maxlen:
            self.err(p, "is %d characters long; expected at most %d" % (len(v), maxlen))
            return None
        for c in _SEGMENT_CHARS if wire else ():
            if c in v:
                self.err(p, "contains %r; expected %s without ; , = & or line breaks" % (c, what))
                return None
        return v

    def boolean(self, d, key, path, default):
        v = d.get(key)
        if v is None:
            d[key] = default
            return default
        if not isinstance(v, bool):
            self.err(_join(path, key), "is %s; expected true or false" % _kind(v))
            return None
        return v

    def unique(self, seen, value, path, what):
        if value is None:
            return
        if value in seen:
            self.err(
                path, "%s %r is already used by %s; expected each %s once" % (what, value, seen[value], what)
            )
        else:
            seen[value] = path


def _join(path, key):
    return key if not path else path + "." + key


def _kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return "a " + type(v).__name__


def _rng(lo, hi, choices):
    if choices is not None:
        return "in " + ", ".join([str(c) for c in choices])
    return "in %s..%s" % (lo, hi)


def _interval(lo, hi, lo_open, hi_open):
    return "%s%s, %s%s" % ("(" if lo_open else "[", lo, hi, ")" if hi_open else "]")


def validate(cfg, folder=None):
    """Validates a parsed config; returns it with defaults filled in, or raises ConfigError."""
    c = _Checker()
    if not c.obj(cfg, "config", KEYS[""]):
        raise ConfigError(c.errors)
    schema = cfg.get("schema")
    if schema != 1:
        c.err("schema", "is %r; expected 1 (this firmware reads schema 1)" % (schema,))

    site = cfg.setdefault("site", {})
    if c.obj(site, "site", KEYS["site"]):
        c.string(site, "name", "site", default="site", maxlen=120, wire=False)
        c.integer(site, "utc_offset_min", "site", -720, 840, default=480)

    lg = cfg.setdefault("logger", {})
    sample_s = 1
    if c.obj(lg, "logger", KEYS["logger"]):
        sample_s = c.integer(lg, "sample_s", "logger", 1, 60, default=1)
        if sample_s is not None and 60 % sample_s:
            c.err(
                "logger.sample_s",
                "%d does not divide 60; expected one of 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60" % sample_s,
            )
        sample_s = sample_s or 1
        c.integer(lg, "rtd_interval_s", "logger", 30, 3600, default=30)
        c.integer(lg, "min_interval_min", "logger", 1, 30, default=10, choices=MIN_INTERVALS)
        c.number(lg, "valid_fraction", "logger", 0, 1, default=0.75, lo_open=True)
        c.number(lg, "o2_guard", "logger", 0, 21, default=19.0, lo_open=True, hi_open=True)

    store = cfg.setdefault("store", {})
    if c.obj(store, "store", KEYS["store"]):
        # the flash budget of the record store (firmware/STORE.md); leave LittleFS room beside it
        c.integer(store, "max_bytes", "store", 16384, 16 * 1024 * 1024, default=1536 * 1024)
        c.integer(store, "seg_bytes", "store", 1024, 65536, default=8192)

    points = {}  # device name -> template points dict (None when the template is unknown)
    buses = cfg.get("buses")
    if buses is None:
        c.err("buses", "missing; expected a list of RS-485 buses")
    elif c.lst(buses, "buses"):
        _check_buses(c, buses, sample_s, points, folder)

    station_names = {}
    stations = cfg.get("stations")
    if stations is None:
        c.err("stations", "missing; expected a list of stations")
    elif c.lst(stations, "stations"):
        for i, st in enumerate(stations):
            p = "stations[%d]" % i
            if not c.obj(st, p, KEYS["station"]):
                continue
            c.unique(station_names, c.string(st, "name", p, maxlen=32), p + ".name", "station name")
            mn = c.string(
                st, "mn", p, maxlen=24, what="the station's MN (24 characters 0-9/A-F in HJ 212-2017)"
            )
            if mn is not None and not _alnum(mn):
                c.err(p + ".mn", "%r has characters other than letters and digits; expected 0-9/A-F" % mn)
            stc = c.string(st, "st", p, maxlen=2, what="the 2-character HJ 212 system code (e.g. 31)")
            if stc is not None and (len(stc) != 2 or not _alnum(stc)):
                c.err(
                    p + ".st",
                    "%r; expected 2 characters 0-9/A-Z (e.g. 31 flue gas, 39 construction dust)" % stc,
                )
            _check_channels(c, st, p, points)

    centers = cfg.get("centers")
    if centers is None:
        c.err("centers", "missing; expected a list of platforms (may be empty)")
    elif c.lst(centers, "centers", nonempty=False):
        names = {}
        for i, ce in enumerate(centers):
            p = "centers[%d]" % i
            if not c.obj(ce, p, KEYS["center"]):
                continue
            c.unique(names, c.string(ce, "name", p, maxlen=32), p + ".name", "center name")
            c.string(ce, "host", p, maxlen=128, what="a host name or IP address")
            c.integer(ce, "port", p, 1, 65535)
            c.integer(ce, "version", p, 0, 0, default=2017, choices=(2017,))
            c.integer(ce, "overtime_s", p, 1, 99, default=10)
            c.integer(ce, "recount", p, 1, 99, default=3)
            c.boolean(ce, "realtime", p, True)
            sts = ce.get("stations")
            sp = p + ".stations"
            if sts is None:
                c.err(sp, 'missing; expected an object station name -> {"pw": password}')
            elif c.obj(sts, sp, list(sts.keys()) if isinstance(sts, dict) else ()):
                if not sts:
                    c.err(sp, "is empty; expected at least one station")
                for name in sts:
                    q = sp + "." + name
                    if stations is not None and isinstance(stations, list) and name not in station_names:
                        c.err(
                            q,
                            "unknown station; expected one of %s" % ", ".join(station_names)
                            if station_names
                            else "unknown station; no station is defined",
                        )
                    ent = sts[name]
                    if c.obj(ent, q, KEYS["center_station"]):
                        c.string(
                            ent,
                            "pw",
                            q,
                            maxlen=16,
                            what="the station's password on this center (no default is shipped)",
                        )
    if cfg.get("rules") is not None:
        # Rules section (firmware/RULES.md): checked by app/rules/check.py, which also merges limit presets.
        limits = folder[: folder.rfind("/")] + "/limits" if folder else None
        _rules_checker().check(c, cfg, points, limits)
    if c.errors:
        raise ConfigError(c.errors)
    return cfg


def _rules_checker():
    import gc

    gc.collect()  # the checker is big: load it into a heap without the validation's garbage
    try:
        from app.rules import check

        return check
    except ImportError:
        # Host tools load this file by path (no `app` package): load the checker next to it the same way.
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "emlog_rules_check", __file__[: __file__.rfind("/")] + "/rules/check.py"
        )
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


def _alnum(s):
    for ch in s:
        if not ("0" <= ch <= "9" or "A" <= ch <= "Z" or "a" <= ch <= "z"):
            return False
    return True


def _check_buses(c, buses, sample_s, points, folder):
    bus_names = {}
    uarts = {}
    pins = {}
    device_names = {}
    templates = {}
    for i, bus in enumerate(buses):
        p = "buses[%d]" % i
        if not c.obj(bus, p, KEYS["bus"]):
            continue
        c.unique(bus_names, c.string(bus, "name", p, maxlen=32), p + ".name", "bus name")
        c.unique(uarts, c.integer(bus, "uart", p, 0, 9), p + ".uart", "UART")
        c.integer(bus, "baud", p, 0, 0, default=9600, choices=BAUDS)
        parity = c.string(bus, "parity", p, default="N", maxlen=1, what="N, E or O")
        if parity is not None and parity not in ("N", "E", "O"):
            c.err(p + ".parity", "%r; expected N, E or O" % parity)
        c.integer(bus, "stop_bits", p, 1, 2, default=1)
        for key in ("tx", "rx", "de"):
            if key == "de" and bus.get("de") is None:
                bus["de"] = None  # auto-direction transceiver: no DE pin
                continue
            c.unique(pins, c.integer(bus, key, p, 0, 48), p + "." + key, "pin")
        c.integer(bus, "timeout_ms", p, 10, 10000, default=300)
        c.integer(bus, "retries", p, 0, 5, default=1)
        c.integer(bus, "turnaround_ms", p, 0, 100, default=2)
        bo = bus.get("backoff_s")
        if bo is None:
            bus["backoff_s"] = [2, 60]
        elif (
            not isinstance(bo, list)
            or len(bo) != 2
            or not _nums(bo)
            or bo[0] <= 0
            or bo[1] < bo[0]
            or bo[1] > 3600
        ):
            c.err(p + ".backoff_s", "%r; expected [first, max] seconds with 0 < first <= max <= 3600" % (bo,))
        devs = bus.get("devices")
        if devs is None:
            c.err(p + ".devices", "missing; expected a list of instruments on this bus")
            continue
        if not c.lst(devs, p + ".devices"):
            continue
        addrs = {}
        for j, dev in enumerate(devs):
            q = "%s.devices[%d]" % (p, j)
            if not c.obj(dev, q, KEYS["device"]):
                continue
            name = c.string(dev, "name", q, maxlen=32)
            if name is not None and "." in name:
                c.err(
                    q + ".name",
                    "%r contains '.'; expected a plain name (sources are written device.point)" % name,
                )
                name = None
            c.unique(device_names, name, q + ".name", "device name")
            c.unique(addrs, c.integer(dev, "address", q, 1, 247), q + ".address", "address")
            poll = c.integer(dev, "poll_s", q, 1, 3600, default=sample_s)
            if poll is not None and poll % sample_s:
                c.err(
                    q + ".poll_s",
                    "%d is not a multiple of logger.sample_s (%d); expected a multiple" % (poll, sample_s),
                )
            tname = c.string(dev, "template", q, what="a template name (a file in protocols/templates)")
            pts = None
            if tname is not None:
                if tname not in templates:
                    t = read_template(tname, folder)
                    templates[tname] = t.get("points") if isinstance(t, dict) else None
                pts = templates[tname]
                if pts is None:
                    c.err(
                        q + ".template",
                        "unknown template %r (no protocols/templates/%s.json); expected one of "
                        "the instrument templates" % (tname, tname),
                    )
            if name is not None:
                points[name] = pts


def _nums(values):
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
    return True


def _check_channels(c, st, p, points):
    chans = st.get("channels")
    cp = p + ".channels"
    if chans is None:
        c.err(cp, "missing; expected the station's list of HJ 212 channels")
        return
    if not c.lst(chans, cp):
        return
    codes = {}
    sourced = {}
    o2 = None
    flow = None
    for k, ch in enumerate(chans):
        q = "%s[%d]" % (cp, k)
        if not c.obj(ch, q, KEYS["channel"]):
            continue
        code = c.string(ch, "code", q, maxlen=12, what="an HJ 212 code such as a21002")
        c.unique(codes, code, q + ".code", "code")
        has_src = "source" in ch
        has_nox = "nox_from" in ch
        if has_src == has_nox:
            c.err(
                q, "has %s; expected exactly one of source or nox_from" % ("both" if has_src else "neither")
            )
        if has_src:
            src = c.string(ch, "source", q, what="device.point")
            if src is not None:
                dot = src.find(".")
                dev, pt = (src[:dot], src[dot + 1 :]) if dot > 0 else (src, "")
                if dev not in points:
                    c.err(
                        q + ".source",
                        "unknown device %r; expected device.point with a device defined on a bus%s"
                        % (dev, " (" + ", ".join(points) + ")" if points else ""),
                    )
                elif not pt:
                    c.err(q + ".source", "%r has no point; expected device.point" % src)
                elif points[dev] is not None and pt not in points[dev]:
                    c.err(
                        q + ".source",
                        "unknown point %r of device %r; expected one of %s"
                        % (pt, dev, ", ".join(points[dev])),
                    )
                elif code is not None:
                    sourced[code] = q
        if c.boolean(ch, "o2", q, False):
            if o2 is not None:
                c.err(q + ".o2", "second O2 channel (first is %s); expected one per station" % o2)
            o2 = q
        if c.boolean(ch, "flow", q, False):
            if flow is not None:
                c.err(q + ".flow", "second flow channel (first is %s); expected one per station" % flow)
            flow = q
        if "o2_ref" in ch:
            c.number(ch, "o2_ref", q, 0, 21, hi_open=True)
        fu = ch.get("from_unit")
        unit = ch.get("unit")
        if fu is not None or unit is not None:
            pair = (fu if fu is not None else unit, unit if unit is not None else "mg/m3")
            if pair not in UNIT_CONVERSIONS:
                c.err(
                    q + ".unit",
                    "cannot convert %r to %r; expected from_unit ppm or ug/m3 with unit mg/m3" % pair,
                )
            else:
                ch["from_unit"], ch["unit"] = pair
                if pair[0] == "ppm":
                    c.number(ch, "molar_mass", q, 0, 1000, lo_open=True)
        if "molar_mass" in ch and ch.get("from_unit") != "ppm":
            c.err(q + ".molar_mass", "only used with from_unit ppm; expected no molar_mass here")
        if "range" in ch:
            r = ch["range"]
            if not isinstance(r, list) or len(r) != 2 or not _nums(r) or r[0] >= r[1]:
                c.err(q + ".range", "%r; expected [min, max] with min < max" % (r,))
    # Second pass: references to other channels of the same station.
    for k, ch in enumerate(chans):
        if not isinstance(ch, dict):
            continue
        q = "%s[%d]" % (cp, k)
        nf = ch.get("nox_from")
        if nf is not None:
            if (
                not isinstance(nf, list)
                or len(nf) != 2
                or not isinstance(nf[0], str)
                or not isinstance(nf[1], str)
            ):
                c.err(q + ".nox_from", "%r; expected [NO code, NO2 code] of this station" % (nf,))
            else:
                for x in nf:
                    if x not in sourced:
                        c.err(
                            q + ".nox_from",
                            "%r is not a channel with a source in this station; expected the "
                            "codes of its NO and NO2 channels" % x,
                        )
        if ch.get("o2_ref") is not None and o2 is None:
            c.err(q + ".o2_ref", 'needs the station\'s O2 channel; expected a channel with "o2": true')
