"""firmware/app/clock.py and protocols/calendar.py: local time, HJ 212 stamps, period alignment, civil dates
(values derived from datetime by hand and, on CPython, compared against datetime over many instants)."""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from app import clock
from portable import raises

from protocols import calendar

INTERPRETERS = ("cpython", "micropython")

BJ = 8 * 3600  # UTC+8


def test_stamp_known_instants():
    # (epoch, local UTC+8 stamp) worked out with datetime outside the code under test
    cases = [
        (1710469800, "20240315103000"),
        (1710431999, "20240314235959"),  # last second of a Beijing day ...
        (1710432000, "20240315000000"),  # ... and the first of the next (16:00 UTC)
        (1704038400, "20240101000000"),  # year change in Beijing while UTC is still 2023
        (951782400, "20000229080000"),  # leap day of a year divisible by 400
        (4102444799, "21000101075959"),
    ]
    for t, want in cases:
        assert clock.stamp(t, BJ) == want, (t, clock.stamp(t, BJ))
        assert clock.parse_stamp(want, BJ) == t
    assert clock.stamp(1710469800.9, BJ) == "20240315103000"  # fractions never round up
    assert clock.stamp(1710469800, 0) == "20240315023000"


def test_parse_rejects_bad_stamps():
    with raises(ValueError):
        clock.parse_stamp("2024031510", BJ)
    with raises(ValueError):
        clock.parse_stamp("20241315103000", BJ)


def test_minute_periods_align_to_local_boundaries():
    base = 1710432000  # 2024-03-15 00:00:00 Beijing
    t = base + 10 * 3600 + 37 * 60 + 12  # 10:37:12 local
    for interval, start_min in ((1, 37), (10, 30), (15, 30), (30, 30), (12, 36), (20, 20), (6, 36)):
        n = clock.period_length("min", interval)
        s = clock.period_start(t, n, BJ)
        assert s == base + 10 * 3600 + start_min * 60, (interval, s)
        assert clock.period_start(s, n, BJ) == s  # a start is its own period's start
        assert clock.period_start(s - 1, n, BJ) == s - n
    with raises(ValueError):
        clock.period_length("min", 7)


def test_hour_and_day_in_utc_plus_8():
    base = 1710432000  # 2024-03-15 00:00 Beijing = 2024-03-14 16:00 UTC
    assert clock.period_start(base + 5, clock.DAY, BJ) == base
    assert clock.period_start(base - 1, clock.DAY, BJ) == base - 86400
    assert clock.period_start(base + 86399, clock.DAY, BJ) == base
    assert clock.period_start(base + 3 * 3600 + 59 * 60, clock.HOUR, BJ) == base + 3 * 3600
    # a UTC day start is 08:00 in Beijing: not a day boundary there
    utc_midnight = 1710460800  # 2024-03-15 00:00 UTC
    assert clock.period_start(utc_midnight, clock.DAY, BJ) == base
    assert clock.period_start(utc_midnight, clock.DAY, 0) == utc_midnight
    # half-hour offsets (India, UTC+5:30): hours start at :30 UTC
    assert clock.period_start(utc_midnight + 10, clock.HOUR, 330 * 60) == utc_midnight - 1800


def test_civil_round_trip():
    for days in (-1, 0, 59, 60, 365, 10956, 11016, 19797, 47481, 146097):
        y, m, d = calendar.civil(days)
        assert calendar.days_from_civil(y, m, d) == days
        assert 1 <= d <= calendar.month_days(y, m)
    assert calendar.civil(0) == (1970, 1, 1)
    assert calendar.civil(11016) == (2000, 2, 29)
    assert [calendar.month_days(y, 2) for y in (1900, 2000, 2023, 2024)] == [28, 29, 28, 29]
    assert calendar.month_days(2024, 4) == 30 and calendar.month_days(2024, 12) == 31


def test_against_datetime_on_cpython():
    if sys.implementation.name != "cpython":
        return
    import datetime
    import random

    rnd = random.Random(7)
    for _ in range(3000):
        t = rnd.randrange(0, 4102444800)
        off = rnd.choice((480, 0, -300, 330, 345))
        lt = datetime.datetime.fromtimestamp(t, datetime.timezone(datetime.timedelta(minutes=off)))
        assert clock.stamp(t, off * 60) == lt.strftime("%Y%m%d%H%M%S")
        day = lt.replace(hour=0, minute=0, second=0)
        assert clock.period_start(t, clock.DAY, off * 60) == int(day.timestamp())
        m15 = lt.replace(minute=lt.minute - lt.minute % 15, second=0)
        assert clock.period_start(t, 900, off * 60) == int(m15.timestamp())
