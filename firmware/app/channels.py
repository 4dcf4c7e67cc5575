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


class Channel:
    def __init__(self, cfg, devices):
        self.code = cfg["code"]
        self.dev = None
        self.idx = -1
        self.nox = None
        self.o2_ref = cfg.get("o2_ref")
        self.is_o2 = bool(cfg.get("o2"))
        self.is_flow = bool(cfg.get("flow"))
        rng = cfg.get("range")
        unit = cfg.get("unit")
        if "source" in cfg:
            src = cfg["source"]
            dot = src.find(".")
            dev = devices.get(src[:dot])
            if dot <= 0 or dev is None:
                raise ValueError("channel %s: unknown device in source %r" % (self.code, src))
            self.dev = dev
            self.idx = dev.point(src[dot + 1 :])
            if rng is None:
                rng = dev.ranges[self.idx]
            point_unit = dev.units[self.idx]
            from_unit = cfg.get("from_unit", point_unit if unit else None)
            self.factor = unit_factor(from_unit, unit or point_unit, cfg.get("molar_mass"))
            if unit is None:
                unit = point_unit
        else:
            self.nox = cfg["nox_from"]
            self.factor = 1.0
            unit = "mg/m3"
        self.unit = unit
        self.rmax = rng[1] if rng else None


class Station:
    """The channels of one station; sample() refreshes v (values), f (flags) and z (Zs) for a tick."""

    def __init__(self, cfg, devices, o2_guard=19.0):
        self.name = cfg["name"]
        self.guard = o2_guard
        chans = [Channel(c, devices) for c in cfg["channels"]]
        self.chans = chans
        self.codes = [c.code for c in chans]
        n = len(chans)
        self.v = [None] * n
        self.f = ["B"] * n
        self.z = [None] * n
        self.o2 = -1
        self.flow = -1
        pos = {}
        for i in range(n):
            pos[chans[i].code] = i
            if chans[i].is_o2:
                self.o2 = i
            if chans[i].is_flow:
                self.flow = i
        for c in chans:
            if c.nox is not None:
                c.nox = (pos[c.nox[0]], pos[c.nox[1]])
        # Cou: pollutants (mg/m3) and the flow itself, when the station measures flow
        self.cou = [self.flow >= 0 and (c.is_flow or c.unit == "mg/m3") for c in chans]
        self.has_zs = [c.o2_ref is not None for c in chans]

    def sample(self):
        chans = self.chans
        v = self.v
        f = self.f
        n = len(chans)
        for i in range(n):
            c = chans[i]
            dev = c.dev
            if dev is None:
                continue
            x = dev.values[c.idx]
            if dev.flag == "B" or x is None:
                v[i] = None
                f[i] = "B"
                continue
            flag = dev.flag
            if flag == "N" and c.rmax is not None and x > c.rmax:
                flag = "T"
            v[i] = x * c.factor if c.factor != 1.0 else x
            f[i] = flag
        for i in range(n):
            c = chans[i]
            if c.nox is None:
                continue
            a, b = c.nox
            if v[a] is None or v[b] is None:
                v[i] = None
                f[i] = "B"
                continue
            x = v[a] * NO2_PER_NO + v[b]
            flag = worse(f[a], f[b])
            if flag == "N" and c.rmax is not None and x > c.rmax:
                flag = "T"
            v[i] = x
            f[i] = flag
        o2 = v[self.o2] if self.o2 >= 0 else None
        z = self.z
        for i in range(n):
            ref = chans[i].o2_ref
            z[i] = None if ref is None else zs(v[i], o2, ref, self.guard)

    def rtd_values(self):
        """The record "values" list of a realtime (2011) record for the current tick."""
        out = []
        for i in range(len(self.chans)):
            d = {"Flag": self.f[i]}
            if self.v[i] is not None:
                d["Rtd"] = self.v[i]
            if self.z[i] is not None:
                d["ZsRtd"] = self.z[i]
            out.append([self.codes[i], d])
        return out
