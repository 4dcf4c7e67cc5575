"""Sim/wall clock, local time and HJ 212 period alignment.

Every time in the application is Unix epoch seconds (UTC), whatever the port's own epoch: the HAL's
`now()` already converts (MicroPython's epoch is 2000 on the ESP32, 1970 on unix). Local time is
epoch + a fixed UTC offset (China has no DST), computed with the integer calendar of
protocols/calendar.py, so no port's `time.gmtime`/`mktime` epoch is ever involved.

Periods: minute periods of `interval` minutes (a divisor of 60), hours and days all start on local-time
boundaries. Because the offset is whole minutes and every period length divides a day, the start of
the period containing t is  t - ((t + offset_s) mod length).
"""

from protocols.calendar import civil, days_from_civil

MIN_INTERVALS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
HOUR = 3600
DAY = 86400


def local(t, offset_s):
    """(year, month, day, hour, minute, second) local time of epoch seconds t."""
    s = int(t // 1) + offset_s
    days = s // DAY
    rem = s - days * DAY
    y, mo, d = civil(days)
    return (y, mo, d, rem // 3600, rem // 60 % 60, rem % 60)


def epoch(y, mo, d, h=0, mi=0, s=0, offset_s=0):
    """Epoch seconds of a local time (inverse of local())."""
    return days_from_civil(y, mo, d) * DAY + h * 3600 + mi * 60 + s - offset_s


def stamp(t, offset_s, ms=False):
    """HJ 212 `YYYYMMDDhhmmss` (plus `zzz` when ms) local time of epoch seconds t."""
    lt = t + offset_s
    s = "%04d%02d%02d%02d%02d%02d" % local(lt, 0)
    if ms:
        s += "%03d" % int((lt - int(lt // 1)) * 1000)
    return s


def parse_stamp(text, offset_s):
    """Epoch seconds of an HJ 212 `YYYYMMDDhhmmss` local time (extra digits such as ms are ignored)."""
    if len(text) < 14:
        raise ValueError("time %r: expected YYYYMMDDhhmmss" % (text,))
    f = [int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14])]
    if not (1 <= f[1] <= 12 and 1 <= f[2] <= 31 and f[3] < 24 and f[4] < 60 and f[5] < 60):
        raise ValueError("time %r: field out of range" % (text,))
    return epoch(f[0], f[1], f[2], f[3], f[4], f[5], offset_s)


def period_length(kind, interval_min=1):
    """Seconds in a period: kind "min" (of interval_min minutes), "hour" or "day"."""
    if kind == "min":
        if interval_min not in MIN_INTERVALS:
            raise ValueError("minute interval %r is not one of %r" % (interval_min, MIN_INTERVALS))
        return interval_min * 60
    if kind == "hour":
        return HOUR
    if kind == "day":
        return DAY
    raise ValueError("period kind %r is not min, hour or day" % (kind,))


def period_start(t, length, offset_s):
    """Start (epoch s, int) of the period of `length` seconds that contains t, aligned in local time."""
    s = int(t // 1)
    return s - (s + offset_s) % length


class Clock:
    """The application's clock: sim epoch seconds from the HAL, plus sim-time sleeps.

    On the unix HIL port time may be scaled (sim seconds per real second); on the ESP32 it is the RTC.
    `now()` is float on unix, int seconds on the ESP32 (its floats are 32-bit: 1.7e9 has a 128 s ulp),
    so code that needs exact seconds works on int(now()).
    """

    def __init__(self, hal):
        self.hal = hal
        self.now = hal.now
        self.sleep_until = hal.sleep_until

    async def sleep(self, s):
        await self.hal.sleep_until(self.hal.now() + s)

    def scale(self):
        return getattr(self.hal, "TIME_SCALE", 1)
