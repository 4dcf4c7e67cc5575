"""HJ 212 CN 3020 upload of a rule event: CP groups in the layout of HJ 212-2017 C.40 / C.42."""

INFO_LOG = "i11001-Info"
INFO_ALARM = "i12003-Info"
MAX_LOG_BYTES = 880  # HJ 212-2017 C.40: a log must be shorter than 890 bytes


def _stamp(t, offset_s):
    s = int(t) + offset_s
    days = s // 86400
    rem = s - days * 86400
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return "%04d%02d%02d%02d%02d%02d" % (y, m, d, rem // 3600, rem // 60 % 60, rem % 60)


def log_text(text):
    """The text made safe for //...//: no '//' or '&&' or line breaks inside, under 890 UTF-8 bytes."""
    text = text.replace("//", "/ /").replace("&&", "& &").replace("\r", " ").replace("\n", " ")
    b = text.encode()
    if len(b) > MAX_LOG_BYTES:
        b = b[:MAX_LOG_BYTES]
        while b and (b[-1] & 0xC0) == 0x80:  # do not cut a UTF-8 sequence in half
            b = b[:-1]
        if b and b[-1] >= 0xC0:
            b = b[:-1]
        text = b.decode()
    return text


def alarm_state(event):
    """HJ 212 i12003 value for the event: 1 alarm (start, count, one-shot event), 0 normal (end), else None."""
    s = event["state"]
    if s in ("start", "event", "count"):
        return "1"
    if s == "end":
        return "0"
    return None


def event_cp(event, offset_s=28800):
    """CP groups of the CN 3020 upload of one event, in the layout of HJ 212-2017 C.40/C.42:
    DataTime; PolId (only when the event concerns one pollutant code); i11001-Info=//log//;
    i12003-Info=alarm state (1/0; omitted for warnings and level changes)."""
    cp = [[("DataTime", _stamp(event["t"] or 0, offset_s))]]
    code = event.get("code")
    if code is not None:
        cp.append([("PolId", code)])
    cp.append([(INFO_LOG, "//" + log_text(event["text"]) + "//")])
    a = alarm_state(event)
    if a is not None:
        cp.append([(INFO_ALARM, a)])
    return cp
