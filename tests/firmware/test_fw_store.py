"""firmware/app/store.py on LittleFS (MicroPython's VfsLfs2 over the file-backed block device).

Expected records are built here from the inputs (values rounded through f32 with struct, the documented
storage precision), never from the store's own output.
"""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")
if "host_tools/emulators" not in sys.path:
    sys.path.insert(0, "host_tools/emulators")

import gc
import os
import struct
import time

import blockdev
from app.store import Store

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "128k"  # compiling store.py + this file from source; the device loads .mpy

IMG = "/tmp/emlog_test_store_%d.img" % time.time_ns()
MNT = "/st"
T0 = 1767225600  # 2026-01-01 00:00 UTC
LINKS = [
    {"name": "nat/boiler", "station": "boiler", "realtime": True},
    {"name": "nat/dust", "station": "dust", "realtime": True},
    {"name": "prov/boiler", "station": "boiler", "realtime": False},
]


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def fresh(blocks=128):
    blockdev.umount(MNT)
    bd = blockdev.FileBlockDev(IMG, block_count=blocks)
    blockdev.mount(bd, MNT, mkfs=True)
    return bd


def reboot():
    """A power cycle: the caller has dropped its Store (`st = None`), so the heap starts clean."""
    gc.collect()
    blockdev.umount(MNT)
    bd = blockdev.FileBlockDev(IMG)
    blockdev.mount(bd, MNT)
    return bd


def open_store(**kw):
    return Store(MNT + "/store", LINKS, **kw)


def stat_rec(kind, station, t, k):
    vals = [
        ["a21003", {"Min": 1.1 + k, "Avg": 2.2 + k, "Max": 3.3 + k, "Cou": 0.000123 * (k + 1), "Flag": "N"}],
        ["a21002", {"Min": 5.5, "Avg": 6.5, "Max": 7.5 + k, "ZsMin": 8.1, "ZsAvg": 9.1, "ZsMax": 10.1, "Flag": "D"}],
        ["a19001", {"Avg": 20.9 - k * 0.01}],
    ]
    if kind == "rtd":
        vals = [["a21003", {"Rtd": 1.5 + k, "ZsRtd": 2.5 + k, "Flag": "N"}], ["a19001", {"Rtd": 20.1}]]
    return {"kind": kind, "station": station, "t": t, "values": vals}


def expected(rec):
    """What the store must give back: same record, numbers rounded to f32, values as lists."""
    out = {"kind": rec["kind"], "station": rec.get("station") or "", "t": int(rec["t"])}
    if "values" in rec:
        vals = []
        for code, d in rec["values"]:
            e = {}
            for k in d:
                e[k] = d[k] if k == "Flag" else f32(d[k])
            vals.append([code, e])
        out["values"] = vals
    else:
        out["data"] = rec["data"]
    return out


PRIO = {"day": 0, "hour": 1, "evt": 2, "min": 3, "rtd": 4}  # tie order of pending (documented)


def plan(n_min=30):
    """(kind, station, t, k) of the records `fill` appends, in append order (small: records are rebuilt)."""
    out = []
    for i in range(n_min):
        t = T0 + 60 * i
        for station in ("boiler", "dust"):
            out.append(("min", station, t, i))
            out.append(("rtd", station, t + 30, i))
        if i % 10 == 9:
            out.append(("hour", "boiler", t, i))
        if i == 5:
            out.append(("evt", "", t, i))
    return out


def build(p):
    if p[0] == "evt":
        return {"kind": "evt", "station": "", "t": p[2], "data": {"text": "door open", "n": p[3]}}
    return stat_rec(p[0], p[1], p[2], p[3])


def fill(st, n_min=30):
    items = plan(n_min)
    for p in items:
        st.append(build(p))
    return items


def destined(p, link):
    if p[0] == "aud":
        return False
    if p[1] and p[1] != link["station"]:
        return False
    return p[0] != "rtd" or link["realtime"]


def test_append_pending_query_roundtrip():
    fresh()
    st = open_store(seg_bytes=1024)
    items = fill(st)
    for link in LINKS:
        want = [p for p in items if destined(p, link)]
        want.sort(key=lambda p: (p[2], PRIO[p[0]]))
        n = 0
        for _, r in st.pending(link["name"]):
            assert r == expected(build(want[n])), (link["name"], n, r)
            n += 1
        assert n == len(want), (link["name"], n, len(want))
    # History recall: inclusive range, exactly the stored records of that kind and station.
    t0, t1 = T0 + 60 * 7, T0 + 60 * 19
    want = [p for p in items if p[0] == "min" and p[1] == "boiler" and t0 <= p[2] <= t1]
    assert len(want) == 13

    def check_range():
        n = 0
        for r in st.query("min", "boiler", t0, t1):
            assert r == expected(build(want[n]))
            n += 1
        assert n == len(want)

    check_range()
    assert list(st.query("min", "boiler", T0 - 100, T0 - 1)) == []
    assert list(st.query("day", "boiler", 0, 2**31)) == []
    # Several segments were used (rotation), and the same holds after a reboot.
    assert len(st.lanes["min.boiler"].segs) > 1
    st = None  # the old store goes with the power
    reboot()
    st = open_store(seg_bytes=1024)
    check_range()
    assert st.snapshot()["truncated"] == 0


def test_acks_out_of_order_persist_across_reboot():
    fresh()
    st = open_store(seg_bytes=1024)
    fill(st, 10)
    link = "nat/boiler"
    items = list(st.pending(link, "min"))
    assert len(items) == 10
    # Live record acked ahead of the backlog, then backlog in order.
    assert st.ack(link, items[9][0])
    assert st.ack(link, items[0][0])
    assert st.ack(link, items[1][0])
    left = [r["t"] for _, r in st.pending(link, "min")]
    assert left == [T0 + 60 * i for i in range(2, 9)]
    st = None  # the old store goes with the power
    reboot()
    st = open_store(seg_bytes=2048)
    assert [r["t"] for _, r in st.pending(link, "min")] == left
    assert st.pending_count(link, "min") == 7
    # The other links are unaffected.
    assert len(list(st.pending("prov/boiler", "min"))) == 10


def test_acked_ahead_set_is_bounded():
    fresh()
    st = open_store()
    refs = [st.append(stat_rec("min", "boiler", T0 + 60 * i, i)) for i in range(40)]
    link = "nat/boiler"
    ok = [st.ack(link, refs[i]) for i in range(1, 40)]
    # seq 1 is never acked: 16 acks fit ahead of it, the rest are refused (stay pending, never lost).
    assert ok.count(True) == 16
    assert st.pending_count(link, "min") == 40 - 16
    assert st.ack(link, refs[0])
    # Seqs 1..17 are now contiguous: the first pending is seq 18 (refs[17]).
    assert [r["t"] for _, r in st.pending(link, "min")][0] == T0 + 60 * 17


def test_cursor_file_damage_falls_back_without_loss():
    fresh()
    st = open_store()
    refs = [st.append(stat_rec("min", "boiler", T0 + 60 * i, i)) for i in range(6)]
    link = "nat/boiler"
    for r in refs[:3]:
        st.ack(link, r)
    path = MNT + "/store/cur.~" + "".join(["%02x" % b for b in link.encode()])
    text = open(path).read()
    # A cut write-then-rename leaves a complete newer .t copy: it wins.
    st.ack(link, refs[3], sync=False)
    st.save_cursor(link)
    newer = open(path).read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])  # damaged main file
    with open(path + ".t", "w") as f:
        f.write(newer)
    st = None  # the old store goes with the power
    reboot()
    st = open_store()
    assert [r["t"] for _, r in st.pending(link, "min")] == [T0 + 60 * i for i in (4, 5)]
    # Both damaged or missing: everything is sent again (duplicates are fine, losses are not).
    os.remove(path + ".t")
    with open(path, "w") as f:
        f.write(newer[:-3])
    st = None  # the old store goes with the power
    reboot()
    st = open_store()
    assert len(list(st.pending(link, "min"))) == 6


def test_torn_tail_is_truncated_and_never_served():
    fresh()
    st = open_store()
    recs = [stat_rec("min", "dust", T0 + 60 * i, i) for i in range(5)]
    for r in recs:
        st.append(r)
    lane = st.lanes["min.dust"]
    path = lane.seg_path(lane.segs[-1])
    size = os.stat(path)[6]
    with open(path, "rb") as f:
        last = f.read()[-40:]
    with open(path, "ab") as f:
        f.write(b"\x44\x30\x00\x06\x00\x00\x00" + last[:12])  # a record header and part of its body
    st = None  # the old store goes with the power
    reboot()
    st = open_store()
    assert st.snapshot()["truncated"] == 1
    assert os.stat(path)[6] == size
    assert list(st.query("min", "dust", 0, 2**31)) == [expected(r) for r in recs]
    st.append(stat_rec("min", "dust", T0 + 300, 5))
    assert len(list(st.query("min", "dust", 0, 2**31))) == 6


def test_corrupt_record_inside_a_segment_is_skipped():
    fresh()
    st = open_store(seg_bytes=1024)
    recs = None
    for i in range(40):
        st.append(stat_rec("min", "boiler", T0 + 60 * i, i))
    lane = st.lanes["min.boiler"]
    assert len(lane.segs) >= 3
    path = lane.seg_path(lane.segs[0])
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x40  # one flipped bit in the middle of the first segment
    with open(path, "wb") as f:
        f.write(data)
    del recs
    n = 0
    last = None
    for r in st.query("min", "boiler", 0, 2**31):
        k = (r["t"] - T0) // 60
        assert r == expected(stat_rec("min", "boiler", T0 + 60 * k, k)), r  # nothing corrupted is served
        n += 1
        last = k
    assert 0 < n < 40
    assert last == 39  # later segments are still read
    assert st.bad >= 1
    assert len([1 for _ in st.pending("nat/boiler", "min")]) == n


def test_overflow_drops_rtd_then_min_keeps_hour_and_day_and_alarms():
    fresh(256)
    st = open_store(seg_bytes=1024, max_bytes=24 * 1024, block=1024)
    drops = []
    st.on_drop = lambda kind, n: drops.append((kind, n))
    hours = []
    days = []
    for i in range(300):
        t = T0 + 60 * i
        st.append(stat_rec("rtd", "boiler", t, i))
        st.append(stat_rec("min", "boiler", t, i))
        if i % 20 == 0:
            r = stat_rec("hour", "boiler", t, i)
            hours.append(r)
            st.append(r)
        if i % 100 == 0:
            r = stat_rec("day", "boiler", t, i)
            days.append(r)
            st.append(r)
        assert st.total_bytes() <= st.max_bytes
    snap = st.snapshot()
    assert snap["drops"].get("rtd", 0) > 0 and snap["drops"].get("min", 0) > 0
    assert "hour" not in snap["drops"] and "day" not in snap["drops"]
    assert drops[0][0] == "rtd"  # lowest priority goes first
    assert list(st.query("hour", "boiler", 0, 2**31)) == [expected(r) for r in hours]
    assert list(st.query("day", "boiler", 0, 2**31)) == [expected(r) for r in days]
    # Every min/rtd record still held is one of the newest (oldest dropped first).
    mins = [r["t"] for r in st.query("min", "boiler", 0, 2**31)]
    assert mins == list(range(mins[0], T0 + 60 * 300, 60))
    # The drop alarm is a site-wide event pending for every link, with the counts.
    for link in LINKS:
        alarms = [r for _, r in st.pending(link["name"], "evt") if r["data"].get("alarm") == "store_drop"]
        assert alarms, link["name"]
        last = alarms[-1]["data"]
        assert last["total"] <= snap["dropped"] and last["dropped"]["rtd"] > 0
    # Records the store dropped were never acknowledged: the count equals what the model lost.
    held = len(mins) + len(list(st.query("rtd", "boiler", 0, 2**31)))
    assert snap["dropped"] == 600 - held


def test_acked_data_is_reclaimed_before_anything_is_dropped():
    fresh(256)
    st = open_store(seg_bytes=1024, max_bytes=16 * 1024, block=1024)
    for i in range(400):
        ref = st.append(stat_rec("min", "dust", T0 + 60 * i, i))
        st.ack("nat/dust", ref, sync=(i % 10 == 0))
    st.save_cursor("nat/dust")
    snap = st.snapshot()
    assert snap["dropped"] == 0 and snap["reclaimed"] > 0
    held = [r["t"] for r in st.query("min", "dust", 0, 2**31)]
    assert held == list(range(held[0], T0 + 60 * 400, 60))


def test_clock_step_back_keeps_query_exact():
    fresh()
    st = open_store()
    times = [T0 + 600, T0 + 660, T0 + 720, T0 + 300, T0 + 360, T0 + 780]
    recs = [stat_rec("min", "boiler", t, i) for i, t in enumerate(times)]
    for r in recs:
        st.append(r)
    got = list(st.query("min", "boiler", T0 + 300, T0 + 660))
    want = [expected(r) for r in recs if T0 + 300 <= r["t"] <= T0 + 660]
    key = lambda r: r["t"]  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key) and len(want) == 4


def test_audit_is_not_uploaded_and_events_route_by_station():
    fresh()
    st = open_store()
    st.append({"kind": "aud", "t": T0, "data": "config changed by console"})
    st.append({"kind": "evt", "station": "dust", "t": T0 + 1, "data": {"text": "dust door"}})
    assert [r["data"]["text"] for _, r in st.pending("nat/dust")] == ["dust door"]
    assert list(st.pending("nat/boiler")) == []
    assert [r["data"] for r in st.query("aud", "", 0, 2**31)] == ["config changed by console"]


def test_teardown():
    blockdev.umount(MNT)
    os.remove(IMG)
