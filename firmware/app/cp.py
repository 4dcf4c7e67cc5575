"""Records as HJ 212 text: the CN of each record kind, CP data areas, numbers, `//text//` values.

One table maps record kinds to CNs (uploads and history recall); `fmt_num` is the one wire format for
numbers; `info_text` the one way a free text becomes an HJ 212 `//text//` value.
"""

from micropython import const

from app.clock import stamp

# Record kind -> CN of its upload (and of its history recall for min/hour/day). "rt" (2041: facility
# running time) is a kind the store never holds: its recall always answers "no data".
CN = {"rtd": "2011", "min": "2051", "hour": "2061", "day": "2031", "rt": "2041", "evt": "3020", "info": "3020",
      "restart": "2081"}
HISTORY = ("min", "hour", "day", "rt")  # kinds a platform recalls by CN with BeginTime/EndTime
FIELDS_RTD = ("Rtd", "ZsRtd")
FIELDS_PERIOD = ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")
MAX_TEXT_BYTES = const(880)  # HJ 212-2017 C.40: a log must be shorter than 890 bytes
_INF = float("inf")  # made once: float("inf") per call was a float each


def history_kind(cn):
    """Record kind a history recall CN asks for (2051 -> "min" ...), or None."""
    for k in HISTORY:
        if CN[k] == cn:
            return k
    return None


def fmt_num(v):
    """The one wire format for numbers: up to 6 significant digits, no exponent, no trailing zeros.

    6 digits keep the relative error below 1e-5 (HJ 212 `N14.2` fields allow far more than 2 decimals in
    practice); tiny Cou values (kg per minute) keep their significant digits instead of becoming 0.
    """
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    v = float(v)
    a = -v if v < 0 else v
    if a != a or a == _INF or a == 0:  # nan, inf, zero
        return "0"
    e = 0  # decimal exponent of a, found without math.log10 rounding surprises
    if a >= 1:
        n = int(a)  # the integer part's digits: no float allocated per step
        while n >= 10:
            n //= 10
            e += 1
    else:
        p = 1.0
        while a < p and e > -12:
            p /= 10
            e -= 1
    decimals = 5 - e
    if decimals < 0:
        decimals = 0
    elif decimals > 17:
        decimals = 17
    s = "%.*f" % (decimals, v)
    if "." in s:  # trailing zeros and point off, in one slice
        n = len(s)
        while s[n - 1] == "0":
            n -= 1
        if s[n - 1] == ".":
            n -= 1
        s = s[:n]
    if s in ("-0", ""):
        s = "0"
    return s


def info_text(text):
    """`//text//`: an HJ 212 free-text value (i11001 logs). The text may not hold the value's or the data
    area's terminators ('//', '&&') nor line breaks, and stays under 890 UTF-8 bytes (C.40)."""
    text = text.replace("//", "/ /").replace("&&", "& &").replace("\r", " ").replace("\n", " ")
    b = text.encode()
    if len(b) > MAX_TEXT_BYTES:
        n = MAX_TEXT_BYTES
        while n and (b[n] & 0xC0) == 0x80:  # b[n], the first byte cut off, continues a character
            n -= 1
        text = b[:n].decode()
    return "//" + text + "//"


def encode_cp(rec, offset_s):
    """CP data area of a record (see the record contract in firmware/README.md). Each `;` group is joined
    from its pieces as they are (no `code-field=value` string per value), then the groups once: no list
    grows long enough to need a large contiguous block on a fragmented heap."""
    kind = rec["kind"]
    parts = ["DataTime=", stamp(rec["t"], offset_s)]
    if kind == "restart":
        parts.append(";RestartTime=")
        parts.append(stamp(rec["restart"], offset_s))
        return "".join(parts)
    fields = FIELDS_RTD if kind == "rtd" else FIELDS_PERIOD
    for code, vals in rec["values"]:
        g = []
        for f in fields:
            v = vals.get(f)
            if v is None:
                continue
            if g:
                g.append(",")
            g.append(code)
            g.append("-")
            g.append(f)
            g.append("=")
            g.append(fmt_num(v))
        flag = vals.get("Flag")
        if flag:
            if g:
                g.append(",")
            g.append(code)
            g.append("-Flag=")
            g.append(flag)
        parts.append(";")
        parts.append("".join(g))
    return "".join(parts)


def groups_text(groups):
    """CP text of CP groups [[(key, value), ...], ...] (as `event_cp` returns them)."""
    out = []
    for g in groups:
        if out:
            out.append(";")
        first = True
        for k, v in g:
            if not first:
                out.append(",")
            first = False
            out.append(k if v is None else k + "=" + v)
    return "".join(out)


def event_text(data):
    """Log text of a stored event that did not come from the rules engine (e.g. the store's drop alarm)."""
    import json

    if data.get("alarm") == "store_drop":
        # The alarm's name first, the counts per kind as JSON last: readable, and parseable on the platform.
        return "store_drop: record store full, %d unsent records dropped since boot %s" % (
            data.get("total", 0), json.dumps(data.get("dropped") or {}))
    text = data.get("text")
    if text:
        return text
    return json.dumps(data)


def evt_cp(rec, offset_s):
    """CP text of the 3020 upload of a stored event record (rules event, or a logger alarm)."""
    from app.rules.wire import event_cp

    data = rec["data"]
    if not isinstance(data, dict):
        data = {"text": str(data)}
    if "rule" in data and "state" in data:
        ev = data
        if ev.get("t") is None:
            ev["t"] = rec["t"]
    else:
        ev = {"t": rec["t"], "state": "start" if data.get("alarm") else "event", "text": event_text(data)}
    return groups_text(event_cp(ev, offset_s))
