"""Channels: HJ 212 codes of one station computed from device points each tick.

Per channel and tick: value (None when there is none), data flag, converted value Zs (or None).
- value = point value x unit factor: ppm -> mg/m3 at 273.15 K / 101.325 kPa is x M / 22.414
  (molar volume 22.414 L/mol); ug/m3 -> mg/m3 is / 1000.
- NOx as NO2 = NO x 46/30 + NO2 (molar masses 46 and 30), from the station's NO and NO2 channels
  (their converted values); its flag is the worse of the two.
- Flag: B when the device gave no answer for the tick; else the instrument status flag (D, C, M, F ...
  from the template's status rules); else T when the value is above the measuring range (the
  channel's `range`, else the template's, in the instrument's unit); else N.
- Zs = C x (21 - o2_ref) / (21 - O2) with the station's O2 of the same tick; none when O2 has no
  value or O2 >= o2_guard (the factor explodes as O2 -> 21).
"""

try:
    from micropython import const
except ImportError:  # CPython (host tests)

    def const(x):
        return x

NO2_PER_NO = 46.0 / 30.0
MOLAR_VOLUME = 22.414
RANK = "DBCMTFSN"  # worst first: combining flags and breaking ties between abnormal flags
VALID = "NS"


def worse(a, b):
    return a if RANK.find(a) <= RANK.find(b) else b


def unit_factor(from_unit, unit, molar_mass=None):
    if from_unit is None or from_unit == unit:
        return 1.0
    if from_unit == "ppm" and unit == "mg/m3":
        if not molar_mass:
            raise ValueError("ppm -> mg/m3 needs the molar mass")
        return molar_mass / MOLAR_VOLUME
    if from_unit == "ug/m3" and unit == "mg/m3":
        return 0.001
    raise ValueError("cannot convert %s to %s" % (from_unit, unit))


def zs(c, o2, o2_ref, guard):
    """Converted concentration at reference O2, or None when O2 is missing or at/above the guard."""
    if c is None or o2 is None or o2 >= guard:
        return None
    return c * (21.0 - o2_ref) / (21.0 - o2)


# A channel as sample() needs it: one tuple, not an object with an attribute dict (20 channels).
_DEV = const(0)  # device object, or None for a computed channel (NOx)
_IDX = const(1)  # index of the device point
_FACTOR = const(2)  # unit factor
_RMAX = const(3)  # top of the measuring range, in the instrument's unit (compared before the factor)
_NOX = const(4)  # (NO index, NO2 index) for NOx as NO2, else None
_O2_REF = const(5)  # reference O2 for Zs, else None


def channel(cfg, devices):
    """(tuple for sample(), unit) of one channel config."""
    code = cfg["code"]
    rng = cfg.get("range")
    unit = cfg.get("unit")
    if "source" in cfg:
        src = cfg["source"]
        dot = src.find(".")
        dev = devices.get(src[:dot])
        if dot <= 0 or dev is None:
            raise ValueError("channel %s: unknown device in source %r" % (code, src))
        idx = dev.point(src[dot + 1 :])
        if rng is None:
            rng = dev.ranges[idx]
        point_unit = dev.units[idx]
        from_unit = cfg.get("from_unit", point_unit if unit else None)
        factor = unit_factor(from_unit, unit or point_unit, cfg.get("molar_mass"))
        nox = None
        if unit is None:
            unit = point_unit
    else:
        dev, idx, factor, nox, unit = None, -1, 1.0, cfg["nox_from"], "mg/m3"
    return [dev, idx, factor, rng[1] if rng else None, nox, cfg.get("o2_ref")], unit


class Station:
    """The channels of one station; sample() refreshes v (values), f (flags) and z (Zs) for a tick."""

    def __init__(self, cfg, devices, o2_guard=19.0):
        self.name = cfg["name"]
        self.guard = o2_guard
        ccfg = cfg["channels"]
        n = len(ccfg)
        self.codes = [c["code"] for c in ccfg]
        self.v = [None] * n
        self.f = ["B"] * n
        self.z = [None] * n
        self.o2 = -1
        self.flow = -1
        chans = []
        units = []
        for i in range(n):
            ch, unit = channel(ccfg[i], devices)
            chans.append(ch)
            units.append(unit)
            if ccfg[i].get("o2"):
                self.o2 = i
            if ccfg[i].get("flow"):
                self.flow = i
        for ch in chans:
            if ch[_NOX] is not None:
                ch[_NOX] = (self.codes.index(ch[_NOX][0]), self.codes.index(ch[_NOX][1]))
        self.chans = [tuple(ch) for ch in chans]
        # Cou: pollutants (mg/m3) and the flow itself, when the station measures flow
        self.cou = [self.flow >= 0 and (bool(ccfg[i].get("flow")) or units[i] == "mg/m3") for i in range(n)]
        self.has_zs = [ch[_O2_REF] is not None for ch in chans]

    def device(self, code):
        """The device feeding channel `code`, or None (a computed channel, or no such code)."""
        return self.chans[self.codes.index(code)][_DEV] if code in self.codes else None

    def devices(self):
        """The devices feeding this station's channels."""
        return [ch[_DEV] for ch in self.chans if ch[_DEV] is not None]

    def sample(self):
        chans = self.chans
        v = self.v
        f = self.f
        n = len(chans)
        for i in range(n):
            c = chans[i]
            dev = c[_DEV]
            if dev is None:
                continue
            x = dev.values[c[_IDX]]
            if dev.flag == "B" or x is None:
                v[i] = None
                f[i] = "B"
                continue
            flag = dev.flag
            if flag == "N" and c[_RMAX] is not None and x > c[_RMAX]:
                flag = "T"
            v[i] = x * c[_FACTOR] if c[_FACTOR] != 1.0 else x
            f[i] = flag
        for i in range(n):
            c = chans[i]
            if c[_NOX] is None:
                continue
            a, b = c[_NOX]
            if v[a] is None or v[b] is None:
                v[i] = None
                f[i] = "B"
                continue
            x = v[a] * NO2_PER_NO + v[b]
            flag = worse(f[a], f[b])
            if flag == "N" and c[_RMAX] is not None and x > c[_RMAX]:
                flag = "T"
            v[i] = x
            f[i] = flag
        o2 = v[self.o2] if self.o2 >= 0 else None
        z = self.z
        for i in range(n):
            ref = chans[i][_O2_REF]
            z[i] = None if ref is None else zs(v[i], o2, ref, self.guard)

    def rtd_values(self):
        """The record "values" list of a realtime (2011) record for the current tick."""
        out = []
        for i in range(len(self.codes)):
            d = {"Flag": self.f[i]}
            if self.v[i] is not None:
                d["Rtd"] = self.v[i]
            if self.z[i] is not None:
                d["ZsRtd"] = self.z[i]
            out.append([self.codes[i], d])
        return out
