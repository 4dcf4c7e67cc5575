"""Rules engine: wire rate limiting of event floods and the CN 3020 CP of an event (HJ 212-2017 C.40/C.42)."""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from app.rules import Rules, event_cp

from protocols import hj212

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "128k"  # compiling from source; the device loads .mpy

T0 = 1704038400  # 2024-01-01 00:00:00 local (UTC+8)


def _engine(rules, wire=None):
    cfg = {"site": {"utc_offset_min": 480}, "logger": {"sample_s": 1},
           "rules": {"list": rules, "wire": wire or {}}}
    events = []
    return Rules(cfg, events.append), events


def _run(eng, start, end, fn, step=5):
    t = start
    while t < end:
        values, points = fn(t)
        eng.tick(t, values, points)
        t += step


# --- alarms on the wire, 3020 CP ---------------------------------------------------------------

def test_flood_rate_limited_on_wire_never_in_store():
    rule = {"name": "damper", "type": "bypass", "kind": "damper", "input": "d.di1", "for_s": 0, "clear_s": 0}
    eng, ev = _engine([rule], wire={"gap_s": 600, "burst": 3})
    # the damper toggles every 10 s for 200 s: 10 openings, 10 closings
    _run(eng, T0, T0 + 200, lambda t: ({}, {"d.di1": (1 if (t - T0) // 10 % 2 == 0 else 0, "N")}))
    assert len(ev) == 20  # all kept for the store
    sent = [eng.should_send(e) for e in ev]
    # 3 tokens: the first three starts go with their ends; later starts and their ends are held back
    assert sent == [True, True] * 3 + [False, False] * 7, sent
    assert eng.snapshot()["wire_suppressed"] == 14


def test_event_cp_matches_standard_layout():
    ev = {"t": T0 + 8 * 3600 + 58 * 60 + 57, "rule": "nox", "station": "boiler", "code": "a21002",
          "state": "start", "text": "limit nox exceeded: a21002 Zs 15min 206.7 > 200 mg/m3 // && 超标",
          "evidence": {}}
    cp = event_cp(ev, 480 * 60)
    pkt = hj212.build("31", "3020", "123456", "010000A8900016F000169DC0", cp, qn="20240101085857223", ack=True)
    back = hj212.parse(pkt.encode())
    f = back.fields()
    assert f["DataTime"] == "20240101085857"  # 08:58:57 local on 2024-01-01, by hand from T0
    assert f["PolId"] == "a21002" and f["i12003-Info"] == "1"
    info = f["i11001-Info"]
    assert info.startswith("//") and info.endswith("//") and "超标" in info
    assert "&&" not in info and "//" not in info[2:-2]
    end = dict(ev)
    end["state"] = "end"
    assert ["i12003-Info", "0"] == list(event_cp(end)[-1][0])
    warn = {"t": T0, "rule": "alert", "station": None, "state": "level", "text": "x" * 2000, "evidence": {}}
    cp = event_cp(warn)
    keys = [g[0][0] for g in cp]
    assert keys == ["DataTime", "i11001-Info"]  # no PolId, no alarm state for a level change
    assert len(cp[1][0][1].encode()) < 890
