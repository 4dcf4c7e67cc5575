"""HJ 212 CN 3020 upload of a rule event: CP groups in the layout of HJ 212-2017 C.40 / C.42."""

from micropython import const

from app.clock import stamp

_MAX_LOG_BYTES = const(880)  # HJ 212-2017 C.40: a log must be shorter than 890 bytes


def log_text(text):
    """The text made safe for //...//: no '//' or '&&' or line breaks inside, under 890 UTF-8 bytes."""
    text = text.replace("//", "/ /").replace("&&", "& &").replace("\r", " ").replace("\n", " ")
    b = text.encode()
    if len(b) > _MAX_LOG_BYTES:
        b = b[:_MAX_LOG_BYTES]
        while b and (b[-1] & 0xC0) == 0x80:  # do not cut a UTF-8 sequence in half
            b = b[:-1]
        if b and b[-1] >= 0xC0:
            b = b[:-1]
        text = b.decode()
    return text


def event_cp(event, offset_s=28800):
    """CP groups of the CN 3020 upload of one event, in the layout of HJ 212-2017 C.40/C.42:
    DataTime; PolId (only when the event concerns one pollutant code); i11001-Info=//log//;
    i12003-Info=alarm state: 1 alarm (start, count, one-shot event), 0 normal (end), omitted for warnings
    and level changes."""
    cp = [[("DataTime", stamp(int(event["t"] or 0), offset_s))]]
    code = event.get("code")
    if code is not None:
        cp.append([("PolId", code)])
    cp.append([("i11001-Info", "//" + log_text(event["text"]) + "//")])
    s = event["state"]
    if s in ("start", "event", "count"):
        cp.append([("i12003-Info", "1")])
    elif s == "end":
        cp.append([("i12003-Info", "0")])
    return cp
