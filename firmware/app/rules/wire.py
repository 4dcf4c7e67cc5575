"""HJ 212 CN 3020 upload of a rule event: CP groups in the layout of HJ 212-2017 C.40 / C.42."""

from app.clock import stamp
from app.cp import info_text


def event_cp(event, offset_s=28800):
    """CP groups of the CN 3020 upload of one event, in the layout of HJ 212-2017 C.40/C.42:
    DataTime; PolId (only when the event concerns one pollutant code); i11001-Info=//log//;
    i12003-Info=alarm state: 1 alarm (start, count, one-shot event), 0 normal (end), omitted for warnings
    and level changes."""
    cp = [[("DataTime", stamp(int(event["t"] or 0), offset_s))]]
    code = event.get("code")
    if code is not None:
        cp.append([("PolId", code)])
    cp.append([("i11001-Info", info_text(event["text"]))])
    s = event["state"]
    if s in ("start", "event", "count"):
        cp.append([("i12003-Info", "1")])
    elif s == "end":
        cp.append([("i12003-Info", "0")])
    return cp
