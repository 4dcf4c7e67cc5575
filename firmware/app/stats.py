"""Minute / hour / day statistics of a station's channels (rule in firmware/STATISTICS.md).

Memory does not grow with the period: each channel keeps one fixed array of sums, counts, minima and
maxima per level. Samples feed the minute-interval period; a closed minute period is merged into the
hour and a closed hour into the day. Merging counts, sums, minima and maxima is exactly the same as
feeding the hour every sample, and it keeps 32-bit float sums (ESP32) shorter.
"""

from array import array

try:
    from micropython import const
except ImportError:  # CPython (host tests)

    def const(x):
        return x

ABNORMAL = "DBCMTF"  # tie-break order when two abnormal flags are equally frequent
_INF = float("inf")
# Sums, minima and maxima as wide as the port's float: doubles where floats are doubles (unix, HIL), singles
# on the ESP32, whose floats are 32-bit, so 8-byte slots would only hold 4-byte values there.
_FLOAT, _FLOAT_BYTES = ("d", 8) if 1.0 + 2.0**-30 != 1.0 else ("f", 4)

# A channel's accumulator: a count of samples (_N), then groups of 4 slots (count, sum, min, max): valid
# samples, samples with a value (valid or not: the fallback when none is valid), the Cou sum (one slot,
# only where the channel has Cou) and the same two groups for Zs (only where it has Zs). Channels without
# Zs or Cou carry no slots for them.
_N = const(0)
_VALID = const(1)  # group of valid samples (flag N or S, with a value)
_ANY = const(5)  # group of samples with a value
_G = const(4)  # slots per group: count, sum, min, max


def layout(cou, has_zs):
    """(start offsets per channel, Zs group offsets per channel or -1, Cou slot or -1, total slots)."""
    n = len(cou)
    starts, zs, cous = array("h", bytes(2 * n)), array("h", bytes(2 * n)), array("h", bytes(2 * n))
    at = 0
    for i in range(n):
        starts[i] = at
        at += 1 + 2 * _G
        cous[i] = at if cou[i] else -1
        at += 1 if cou[i] else 0
        zs[i] = at if has_zs[i] else -1
        at += 2 * _G if has_zs[i] else 0
    return starts, zs, cous, at


def _feed(a, g, v):
    a[g] += 1
    a[g + 1] += v
    if v < a[g + 2]:
        a[g + 2] = v
    if v > a[g + 3]:
        a[g + 3] = v


def _merge(a, b, g):
    b[g] += a[g]
    b[g + 1] += a[g + 1]
    if a[g + 2] < b[g + 2]:
        b[g + 2] = a[g + 2]
    if a[g + 3] > b[g + 3]:
        b[g + 3] = a[g + 3]


class Period:
    """Accumulators of one level (minute period, hour or day) for every channel of a station.

    One flat array of doubles laid out by `layout` and one of flag counts: a few objects, not 2 per
    channel, because every object header counts on a small heap."""

    def __init__(self, lay, length):
        self.lay = lay
        self.length = length
        self.start = None
        self.a = array(_FLOAT, bytes(_FLOAT_BYTES * lay[3]))
        self.fc = array("i", bytes(4 * len(ABNORMAL) * len(lay[0])))

    def _groups(self, i):
        """The start of every 4-slot group of channel i."""
        s = self.lay[0][i]
        z = self.lay[1][i]
        return (s + _VALID, s + _ANY) if z < 0 else (s + _VALID, s + _ANY, z, z + _G)

    def reset(self, start):
        self.start = start
        a = self.a
        for k in range(len(a)):
            a[k] = 0.0
        for i in range(len(self.lay[0])):
            for g in self._groups(i):
                a[g + 2] = _INF
                a[g + 3] = -_INF
        fc = self.fc
        for k in range(len(fc)):
            fc[k] = 0

    def add(self, i, v, flag, z, cou):
        """One sample of channel i: value v (or None), its flag, its Zs z (or None), its Cou part."""
        a = self.a
        s = self.lay[0][i]
        a[s + _N] += 1
        valid = v is not None and (flag == "N" or flag == "S")
        if not valid:
            k = ABNORMAL.find(flag)
            self.fc[i * 6 + (k if k >= 0 else 1)] += 1  # unknown flag letters count as B
        if v is None:
            return
        _feed(a, s + _ANY, v)
        if valid:
            _feed(a, s + _VALID, v)
            c = self.lay[2][i]
            if c >= 0:
                a[c] += cou
        zg = self.lay[1][i]
        if z is not None and zg >= 0:
            _feed(a, zg + _G, z)
            if valid:
                _feed(a, zg, z)

    def fill(self, expected):
        """Ticks of the period with no sample at all (logger not running yet) count as B."""
        a = self.a
        starts = self.lay[0]
        for i in range(len(starts)):
            miss = expected - int(a[starts[i] + _N])
            if miss > 0:
                a[starts[i] + _N] += miss
                self.fc[i * 6 + 1] += miss

    def merge_into(self, other):
        a = self.a
        b = other.a
        starts, _, cous, _ = self.lay
        for i in range(len(starts)):
            b[starts[i] + _N] += a[starts[i] + _N]
            for g in self._groups(i):
                _merge(a, b, g)
            if cous[i] >= 0:
                b[cous[i]] += a[cous[i]]
        fa = self.fc
        fb = other.fc
        for k in range(len(fa)):
            fb[k] += fa[k]

    def flag(self, i, need):
        """Period flag of channel i: N with at least `need` valid samples, else the dominant abnormal flag."""
        if self.a[self.lay[0][i] + _VALID] >= need:
            return "N"
        fc = self.fc
        o = i * 6
        best = 0
        for k in range(1, 6):
            if fc[o + k] > fc[o + best]:
                best = k
        return ABNORMAL[best]

    def values(self, codes, need):
        out = []
        a = self.a
        starts, zs, cous, _ = self.lay
        for i in range(len(codes)):
            s = starts[i]
            d = {"Flag": self.flag(i, need)}
            g = s + _VALID if a[s + _VALID] > 0 else (s + _ANY if a[s + _ANY] > 0 else -1)
            if g >= 0:
                d["Min"] = a[g + 2]
                d["Avg"] = a[g + 1] / a[g]
                d["Max"] = a[g + 3]
            if cous[i] >= 0:
                d["Cou"] = a[cous[i]]
            z = zs[i]
            if z >= 0:
                g = z if a[z] > 0 else (z + _G if a[s + _VALID] == 0 and a[z + _G] > 0 else -1)
                if g >= 0:
                    d["ZsMin"] = a[g + 2]
                    d["ZsAvg"] = a[g + 1] / a[g]
                    d["ZsMax"] = a[g + 3]
            out.append([codes[i], d])
        return out


class StationStats:
    """Feeds a Station's samples into minute/hour/day periods and returns records as periods close."""

    def __init__(self, station, sample_s=1, min_interval=1, offset_s=0, valid_fraction=0.75):
        from app.clock import DAY, HOUR, period_length, period_start

        self._start = period_start
        self._length = period_length
        self._next_len = None  # minute period length after the running one (MinInterval change)
        self.st = station
        self.sample_s = sample_s
        self.offset_s = offset_s
        self.frac = valid_fraction
        lay = layout(station.cou, station.has_zs)
        self.levels = (
            ("min", Period(lay, period_length("min", min_interval))),
            ("hour", Period(lay, HOUR)),
            ("day", Period(lay, DAY)),
        )

    def _need(self, length):
        return self.frac * (length // self.sample_s)

    def _close(self, lvl, out):
        kind, p = self.levels[lvl]
        expected = p.length // self.sample_s
        p.fill(expected)
        st = self.st
        out.append({"kind": kind, "station": st.name, "t": p.start,
                    "values": p.values(st.codes, self.frac * expected)})
        if lvl + 1 < len(self.levels):
            nxt = self.levels[lvl + 1][1]
            if nxt.start is None:
                nxt.reset(self._start(p.start, nxt.length, self.offset_s))
            p.merge_into(nxt)
        p.start = None
        if lvl == 0 and self._next_len is not None:
            p.length = self._next_len
            self._next_len = None

    def set_min_interval(self, minutes, now):
        """The running minute period ends at the first boundary of the new interval after `now` (it may be
        shorter or longer than either interval); the following periods have the new length."""
        length = self._length("min", minutes)
        p = self.levels[0][1]
        if p.start is None:
            p.length = length
            return
        p.length = self._start(now, length, self.offset_s) + length - p.start
        self._next_len = length

    def close_all(self, out):
        """Closes every running period now (clock stepped back): records with what they hold."""
        for lvl in range(len(self.levels)):
            if self.levels[lvl][1].start is not None:
                self._close(lvl, out)

    def _roll(self, t, out):
        # Close every level whose period ends at or before t (t is the next sample's tick).
        for lvl in range(len(self.levels)):
            p = self.levels[lvl][1]
            if p.start is not None and t >= p.start + p.length:
                self._close(lvl, out)

    def add_tick(self, t, out):
        """Feeds the station's current sample (Station.sample() done) for tick t; appends any closed
        period's record to `out` (minute before hour before day)."""
        self._roll(t, out)
        p = self.levels[0][1]
        if p.start is None:
            p.reset(self._start(t, p.length, self.offset_s))
        st = self.st
        v = st.v
        f = st.f
        z = st.z
        cou = st.cou
        sample_s = self.sample_s
        q = None
        if st.flow >= 0 and v[st.flow] is not None and (f[st.flow] == "N" or f[st.flow] == "S"):
            q = v[st.flow]
        for i in range(len(v)):
            part = 0.0
            if cou[i] and q is not None and v[i] is not None:
                part = v[i] * sample_s if i == st.flow else v[i] * q * sample_s * 1e-6
            p.add(i, v[i], f[i], z[i], part)
        self._roll(t + sample_s, out)
