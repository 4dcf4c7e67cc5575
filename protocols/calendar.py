"""Proleptic Gregorian calendar on day counts since 1970-01-01: integer arithmetic only, so no port's
`time.gmtime`/`mktime` epoch (2000 on the ESP32, 1970 on unix) is ever involved. Runs on MicroPython and
CPython (Howard Hinnant's civil-date algorithms)."""


def civil(days):
    """(year, month, day) of a count of days since 1970-01-01."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400
    return (y + 1 if m <= 2 else y, m, d)


def days_from_civil(y, m, d):
    """Inverse of civil(): days since 1970-01-01 of a calendar date."""
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = m + 9 if m <= 2 else m - 3
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def month_days(y, m):
    """Days in month m (1..12) of year y."""
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31
