"""Host-side reference statistics: the minute/hour/day records a correct logger must send for a scenario.

Written from the rules in firmware-shared / firmware/STATISTICS.md and the site config text, without
importing firmware code, so the HIL tests compare two independent implementations.

Per tick t (whole sim second, every `sample_s`) and channel:
- the value is what the instrument presents (template encoding: float32, integer scaling), converted by
  the channel (`from_unit` ug/m3 -> mg/m3 is /1000; ppm -> mg/m3 is x M / 22.414), NOx = NO x 46/30 + NO2;
- the flag is B when the device cannot answer for that tick (scenario fault hitting every request) or the
  logger reported that tick's sample lost (`lost`: e.g. a late or missed poll on a loaded host), else
  the template status flag of the instrument state (C/M/D), else T when the instrument value is above its
  measuring range (`range` of the channel or the template), else N; a derived channel takes B if any input
  is B, else the first non-N input flag;
- Zs = C x (21 - o2_ref) / (21 - O2) with that tick's O2, none when O2 >= o2_guard or O2 is missing;
- Cou (pollutants, when the station has a flow channel) = sum of C x Q x sample_s x 1e-6 kg over valid
  samples with a flow value; the flow channel's Cou = sum of Q x sample_s m3 over its valid samples.
A period is N when valid samples (N or S) >= valid_fraction x expected samples, else the most frequent
abnormal flag (ties D > B > C > M > T > F); Min/Avg/Max/Zs over valid samples, or over all samples with a
value when none is valid. Hour and day use the samples themselves, not the minute averages.
"""

import json

from host_tools import REPO_ROOT
from host_tools.emulators.instruments import Instrument, load_template

FLAG_PRIORITY = "DBCMTF"  # tie-break order for the dominant abnormal flag
VALID_FLAGS = ("N", "S")
NO_TO_NO2 = 46.0 / 30.0
MOLAR_VOLUME = 22.414


def _codes():
    try:
        with open(REPO_ROOT / "protocols" / "codes.json", encoding="utf-8") as fh:
            return json.load(fh)["codes"]
    except (OSError, ValueError, KeyError):
        return {}


class _Acc:
    """Incremental statistics of one channel over one period."""

    __slots__ = ("n", "valid", "flags", "vmin", "vmax", "vsum", "vn", "amin", "amax", "asum", "an",
                 "zmin", "zmax", "zsum", "zn", "azmin", "azmax", "azsum", "azn", "cou", "has_cou")

    def __init__(self):
        self.n = self.valid = self.vn = self.an = self.zn = self.azn = 0
        self.flags = {}
        self.vmin = self.vmax = self.amin = self.amax = None
        self.zmin = self.zmax = self.azmin = self.azmax = None
        self.vsum = self.asum = self.zsum = self.azsum = 0.0
        self.cou = 0.0
        self.has_cou = False

    def add(self, v, flag, zs, cou):
        self.n += 1
        ok = flag in VALID_FLAGS
        if ok:
            self.valid += 1
        else:
            self.flags[flag] = self.flags.get(flag, 0) + 1
        if v is not None:
            self.an += 1
            self.asum += v
            self.amin = v if self.amin is None else min(self.amin, v)
            self.amax = v if self.amax is None else max(self.amax, v)
            if ok:
                self.vn += 1
                self.vsum += v
                self.vmin = v if self.vmin is None else min(self.vmin, v)
                self.vmax = v if self.vmax is None else max(self.vmax, v)
        if zs is not None:
            self.azn += 1
            self.azsum += zs
            self.azmin = zs if self.azmin is None else min(self.azmin, zs)
            self.azmax = zs if self.azmax is None else max(self.azmax, zs)
            if ok:
                self.zn += 1
                self.zsum += zs
                self.zmin = zs if self.zmin is None else min(self.zmin, zs)
                self.zmax = zs if self.zmax is None else max(self.zmax, zs)
        if cou is not None and ok:
            self.cou += cou
        if cou is not None:
            self.has_cou = True

    def result(self, expected, valid_fraction):
        out = {}
        if self.vn:
            out["Min"], out["Avg"], out["Max"] = self.vmin, self.vsum / self.vn, self.vmax
        elif self.an:
            out["Min"], out["Avg"], out["Max"] = self.amin, self.asum / self.an, self.amax
        if self.zn:
            out["ZsMin"], out["ZsAvg"], out["ZsMax"] = self.zmin, self.zsum / self.zn, self.zmax
        elif self.azn and not self.vn:
            out["ZsMin"], out["ZsAvg"], out["ZsMax"] = self.azmin, self.azsum / self.azn, self.azmax
        if self.has_cou:
            out["Cou"] = self.cou
        out["Flag"] = period_flag(self.valid, expected, valid_fraction, self.flags)
        out["samples"] = self.n
        out["valid"] = self.valid
        return out


def period_flag(valid, expected, valid_fraction, abnormal):
    if valid >= valid_fraction * expected - 1e-9:
        return "N"
    if not abnormal:
        return None  # samples missing without a reason: the reference cannot say
    best = max(abnormal.values())
    for f in FLAG_PRIORITY:
        if abnormal.get(f) == best:
            return f
    return sorted(k for k, v in abnormal.items() if v == best)[0]


class Reference:
    def __init__(self, site, scenario, lost=()):
        self.site = site
        self.scn = scenario
        self.lost = set(lost)  # {(device, tick)}: samples the logger reported lost
        lg = site.get("logger", {})
        self.sample_s = int(lg.get("sample_s", 1))
        self.min_s = 60 * int(lg.get("min_interval_min", 1))
        self.valid_fraction = float(lg.get("valid_fraction", 0.75))
        self.o2_guard = float(lg.get("o2_guard", 19.0))
        self.offset_s = 60 * int(site.get("site", {}).get("utc_offset_min", 480))
        self.devices = {}
        for bus in site["buses"]:
            for dev in bus["devices"]:
                tpl = load_template(dev["template"])
                self.devices[dev["name"]] = (Instrument(dev["name"], tpl, dev["address"],
                                                        scenario.device(dev["name"]), scenario.start), tpl)
        self.codes = _codes()

    # ---- samples ------------------------------------------------------------------------------
    def point_sample(self, source, k, channel):
        """(instrument value or None, flag) of `device.point` at tick offset k."""
        dev, point = source.split(".", 1)
        inst, tpl = self.devices[dev]
        scn = inst.scn
        if not scn.answers(k) or (dev, self.scn.start + k) in self.lost:
            return None, "B"
        v = inst.value(point, k)
        state = scn.state(k)
        if state is not None and state in inst.status_bits:
            return v, state
        rng = channel.get("range") or tpl["points"][point].get("range")
        if rng is not None and v > rng[1]:
            return v, "T"
        return v, "N"

    def convert(self, v, channel):
        if v is None:
            return None
        fu = channel.get("from_unit")
        if fu == "ug/m3":
            return v / 1000.0
        if fu == "ppm":
            return v * float(channel["molar_mass"]) / MOLAR_VOLUME
        return v

    def station_samples(self, station, k):
        """{code: (value, flag, zs)} for one station at tick offset k, plus the flow value."""
        out = {}
        for ch in station["channels"]:
            if "source" in ch:
                v, f = self.point_sample(ch["source"], k, ch)
                out[ch["code"]] = [self.convert(v, ch), f, None]
        for ch in station["channels"]:
            if "nox_from" in ch:
                no, no2 = out[ch["nox_from"][0]], out[ch["nox_from"][1]]
                flags = [no[1], no2[1]]
                f = "B" if "B" in flags else next((x for x in flags if x != "N"), "N")
                v = None if no[0] is None or no2[0] is None else no[0] * NO_TO_NO2 + no2[0]
                out[ch["code"]] = [v, f, None]
        o2 = next((out[c["code"]][0] for c in station["channels"] if c.get("o2")), None)
        for ch in station["channels"]:
            if "o2_ref" in ch:
                rec = out[ch["code"]]
                if rec[0] is not None and o2 is not None and o2 < self.o2_guard:
                    rec[2] = rec[0] * (21.0 - float(ch["o2_ref"])) / (21.0 - o2)
        flow = next((out[c["code"]][0] for c in station["channels"] if c.get("flow")), None)
        return out, flow

    # ---- periods ------------------------------------------------------------------------------
    def align(self, t, period):
        return (t + self.offset_s) // period * period - self.offset_s

    def records(self, t_from, t_to, kinds=("min", "hour", "day")):
        """Reference records of every period fully inside [t_from, t_to) (sim epoch seconds)."""
        lengths = {"min": self.min_s, "hour": 3600, "day": 86400}
        out = []
        for kind in kinds:
            period = lengths[kind]
            ps = self.align(t_from, period)
            if ps < t_from:
                ps += period
            while ps + period <= t_to:
                for st in self.site["stations"]:
                    out.append(self.period(st, kind, ps, ps + period))
                ps += period
        return out

    def period(self, station, kind, t0, t1):
        accs = {}
        has_flow = any(c.get("flow") for c in station["channels"])
        for t in range(t0, t1, self.sample_s):
            k = t - self.scn.start
            samples, flow = self.station_samples(station, k)
            for ch in station["channels"]:
                code = ch["code"]
                v, f, zs = samples[code]
                cou = None
                if ch.get("flow"):
                    cou = None if v is None else v * self.sample_s
                elif has_flow and self.codes.get(code, {}).get("kind") == "pollutant":
                    cou = None if (v is None or flow is None) else v * flow * self.sample_s * 1e-6
                accs.setdefault(code, _Acc()).add(v, f, zs, cou)
        expected = (t1 - t0) // self.sample_s
        values = [[c["code"], accs[c["code"]].result(expected, self.valid_fraction)]
                  for c in station["channels"]]
        return {"kind": kind, "station": station["name"], "t": t0, "values": values}


def reference_records(site, scenario, t_from, t_to, kinds=("min", "hour", "day")):
    return Reference(site, scenario).records(t_from, t_to, kinds)



STAT_FIELDS = ("Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")


def close(a, b, abs_tol=1e-4, rel_tol=1e-5):
    """Float comparison allowing the wire formatting (4 decimals) and float summation order."""
    return abs(a - b) <= abs_tol + rel_tol * abs(b)


def compare_values(got, ref_values, cou=True):
    """Mismatches (strings) between received values {code: {field: value}} and a reference record's values.

    Flags must match exactly; Min/Avg/Max/Zs within `close`; Cou when the reference has one and the period
    is N. A field the reference has but the frame lacks is a mismatch; Zs fields are only required when the
    reference has them.
    """
    out = []
    for code, ref in ref_values:
        g = got.get(code)
        if g is None:
            out.append("%s missing" % code)
            continue
        if ref.get("Flag") is not None and g.get("Flag") != ref["Flag"]:
            out.append("%s Flag %r != %r" % (code, g.get("Flag"), ref["Flag"]))
        for f in STAT_FIELDS:
            if f in ref:
                v = g.get(f)
                if not isinstance(v, float) or not close(v, ref[f]):
                    out.append("%s-%s %r != %.6f" % (code, f, v, ref[f]))
        if cou and "Cou" in ref and ref.get("Flag") == "N":
            v = g.get("Cou")
            if not isinstance(v, float) or not close(v, ref["Cou"]):
                out.append("%s-Cou %r != %.6f" % (code, v, ref["Cou"]))
    return out
