"""Minute / hour / day statistics of a station's channels (rule in firmware/STATISTICS.md).

Memory does not grow with the period: each channel keeps one fixed array of sums, counts, minima and
maxima per level. Samples feed the minute-interval period; a closed minute period is merged into the
hour and a closed hour into the day. Merging counts, sums, minima and maxima is exactly the same as
feeding the hour every sample, and it keeps 32-bit float sums (ESP32) shorter.
"""

from array import array

ABNORMAL = "DBCMTF"  # tie-break order when two abnormal flags are equally frequent
_INF = float("inf")

# slots of a channel's accumulator
N = 0  # samples (incl. missing ticks once the period closed)
NV = 1  # valid samples (flag N or S, with a value)
SUM = 2
MIN = 3
MAX = 4
NA = 5  # samples with a value, valid or not (fallback when none is valid)
SUMA = 6
MINA = 7
MAXA = 8
COU = 9
ZN = 10
ZSUM = 11
ZMIN = 12
ZMAX = 13
ZNA = 14
ZSUMA = 15
ZMINA = 16
ZMAXA = 17
SLOTS = 18
_MINS = (MIN, MINA, ZMIN, ZMINA)
_MAXS = (MAX, MAXA, ZMAX, ZMAXA)


class Period:
    """Accumulators of one level (minute period, hour or day) for every channel of a station.

    One flat array of doubles (SLOTS per channel) and one of flag counts: a few objects, not 2 per
    channel, because every object header counts in a 64 KiB heap."""

    def __init__(self, n, length):
        self.n = n
        self.length = length
        self.start = None
        self.a = array("d", bytes(8 * SLOTS * n))
        self.fc = array("i", bytes(4 * len(ABNORMAL) * n))

    def reset(self, start):
        self.start = start
        a = self.a
        for i in range(0, len(a), SLOTS):
            for k in range(SLOTS):
                a[i + k] = 0.0
            for k in _MINS:
                a[i + k] = _INF
            for k in _MAXS:
                a[i + k] = -_INF
        fc = self.fc
        for k in range(len(fc)):
            fc[k] = 0

    def add(self, i, v, flag, z, cou):
        """One sample of channel i: value v (or None), its flag, its Zs z (or None), its Cou part."""
        a = self.a
        b = i * SLOTS
        a[b + N] += 1
        valid = v is not None and (flag == "N" or flag == "S")
        if not valid:
            k = ABNORMAL.find(flag)
            self.fc[i * 6 + (k if k >= 0 else 1)] += 1  # unknown flag letters count as B
        if v is None:
            return
        a[b + NA] += 1
        a[b + SUMA] += v
        if v < a[b + MINA]:
            a[b + MINA] = v
        if v > a[b + MAXA]:
            a[b + MAXA] = v
        if valid:
            a[b + NV] += 1
            a[b + SUM] += v
            if v < a[b + MIN]:
                a[b + MIN] = v
            if v > a[b + MAX]:
                a[b + MAX] = v
            a[b + COU] += cou
        if z is not None:
            a[b + ZNA] += 1
            a[b + ZSUMA] += z
            if z < a[b + ZMINA]:
                a[b + ZMINA] = z
            if z > a[b + ZMAXA]:
                a[b + ZMAXA] = z
            if valid:
                a[b + ZN] += 1
                a[b + ZSUM] += z
                if z < a[b + ZMIN]:
                    a[b + ZMIN] = z
                if z > a[b + ZMAX]:
                    a[b + ZMAX] = z

    def fill(self, expected):
        """Ticks of the period with no sample at all (logger not running yet) count as B."""
        a = self.a
        for i in range(self.n):
            miss = expected - int(a[i * SLOTS + N])
            if miss > 0:
                a[i * SLOTS + N] += miss
                self.fc[i * 6 + 1] += miss

    def merge_into(self, other):
        a = self.a
        b = other.a
        for j in range(len(a)):
            k = j % SLOTS
            if k in _MINS:
                if a[j] < b[j]:
                    b[j] = a[j]
            elif k in _MAXS:
                if a[j] > b[j]:
                    b[j] = a[j]
            else:
                b[j] += a[j]
        fa = self.fc
        fb = other.fc
        for k in range(len(fa)):
            fb[k] += fa[k]

    def flag(self, i, need):
        """Period flag of channel i: N with at least `need` valid samples, else the dominant abnormal flag."""
        if self.a[i * SLOTS + NV] >= need:
            return "N"
        fc = self.fc
        o = i * 6
        best = 0
        for k in range(1, 6):
            if fc[o + k] > fc[o + best]:
                best = k
        return ABNORMAL[best]

    def values(self, codes, need, cou, has_zs):
        out = []
        a = self.a
        for i in range(len(codes)):
            b = i * SLOTS
            d = {"Flag": self.flag(i, need)}
            if a[b + NV] > 0:
                d["Min"] = a[b + MIN]
                d["Avg"] = a[b + SUM] / a[b + NV]
                d["Max"] = a[b + MAX]
            elif a[b + NA] > 0:
                d["Min"] = a[b + MINA]
                d["Avg"] = a[b + SUMA] / a[b + NA]
                d["Max"] = a[b + MAXA]
            if cou[i]:
                d["Cou"] = a[b + COU]
            if has_zs[i]:
                if a[b + ZN] > 0:
                    d["ZsMin"] = a[b + ZMIN]
                    d["ZsAvg"] = a[b + ZSUM] / a[b + ZN]
                    d["ZsMax"] = a[b + ZMAX]
                elif a[b + NV] == 0 and a[b + ZNA] > 0:
                    d["ZsMin"] = a[b + ZMINA]
                    d["ZsAvg"] = a[b + ZSUMA] / a[b + ZNA]
                    d["ZsMax"] = a[b + ZMAXA]
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
        n = len(station.codes)
        self.levels = (
            ("min", Period(n, period_length("min", min_interval))),
            ("hour", Period(n, HOUR)),
            ("day", Period(n, DAY)),
        )

    def _need(self, length):
        return self.frac * (length // self.sample_s)

    def _close(self, lvl, out):
        kind, p = self.levels[lvl]
        expected = p.length // self.sample_s
        p.fill(expected)
        st = self.st
        out.append({"kind": kind, "station": st.name, "t": p.start,
                    "values": p.values(st.codes, self.frac * expected, st.cou, st.has_zs)})
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
