"""Uplink to a center (firmware/app/uplink.py and its parts: link, sender, backlog, dispatch, cp) over the
record store (app/store.py, on a /tmp directory of the unix port) against an in-process fake platform.

The fake link hands bytes between the uplink and a scripted platform inside one asyncio loop: no
sockets, no sleeps; OverTime is shortened to 50 ms real time where a missing ack is the point.
Expected CP texts are written by hand from the record and HJ 212-2017 (6.3.3, C.40/C.42, C.49/C.50).
"""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")
sys.path.insert(0, "tests/firmware")  # fake_link

import asyncio
import json
import os
import struct
import time

from app import log, uplink
from app.backlog import BACKLOG_SLOTS, SLOTS
from app.clock import stamp
from app.cp import CN, encode_cp, fmt_num, history_kind, info_text
from app.link import Rng, backoff_s
from app.store import Store
from fake_link import Clock, FakeLink
from portable import approx

from protocols import hj212

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "256k"  # compiling uplink + store + hj212 from source; the device loads .mpy

MN = "31000000123456789ABCDEF0"
CENTER = {
    "name": "nat",
    "host": "127.0.0.1",
    "port": 9001,
    "version": 2017,
    "overtime_s": 10,
    "recount": 2,
    "realtime": True,
    "stations": {"boiler": {"pw": "123456"}},
}
STATION = {"name": "boiler", "mn": MN, "st": "31", "channels": []}
T0 = 1710469800  # 2024-03-15 10:30:00 Beijing (computed with CPython datetime)

log.setup(sink=lambda line: None)


class Platform:
    def __init__(self, ack=True, chunk=None, drop_first=0, want=0, on_upload=None, skip_pno=None):
        self.ack = ack
        self.chunk = chunk
        self.drop_first = drop_first  # ignore this many uploads before acking
        self.skip_pno = skip_pno  # never ack parts with this PNO
        self.dec = hj212.StreamDecoder()
        self.packets = []
        self.want = want
        self.done = asyncio.Event()
        self.on_upload = on_upload

    def received(self, link, data):
        for p in self.dec.feed(data):
            assert p.ok, p
            self.packets.append(p)
            if p.cn.startswith("90"):
                continue
            if self.on_upload is not None:
                self.on_upload(p)
            if self.drop_first > 0:
                self.drop_first -= 1
            elif self.ack and not (self.skip_pno and p.pno == self.skip_pno):
                link.push(hj212.reply_9014(p).encode(), self.chunk)
            if self.want and len(self.uploads()) >= self.want:
                self.done.set()

    def uploads(self):
        return [p for p in self.packets if not p.cn.startswith("90")]


_n = [0]


def _rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def _store(realtime=True):
    _n[0] += 1
    d = "/tmp/emlog-up-%d-%d" % (time.ticks_us() & 0xFFFFFF, _n[0])
    os.mkdir(d)
    return Store(d + "/store", [{"name": "nat/boiler", "station": "boiler", "realtime": realtime}])


def _done(store):
    _rmtree(store.root.rsplit("/", 1)[0])


def _uplink(store, overtime=None, **kw):
    up = uplink.Uplink(CENTER, STATION, Clock(T0), utc_offset_min=480, store=store, seed=7, **kw)
    if overtime is not None:
        up.overtime_s = overtime
    return up


def _put(up, rec):
    """What the app does with a record: store it, then tell the link."""
    ref = up.store.append(rec)
    up.notify(ref, rec)
    return ref


def _min_record(t, avg):
    return {
        "kind": "min",
        "station": "boiler",
        "t": t,
        "values": [
            [
                "a21002",
                {
                    "Min": avg - 1,
                    "Avg": avg,
                    "Max": avg + 1,
                    "Cou": 0.00096,
                    "ZsAvg": avg * 1.25,
                    "Flag": "N",
                },
            ],
            ["a19001", {"Min": 8.5, "Avg": 9, "Max": 9.5, "Flag": "M"}],
        ],
    }


def _rtd(t, v):
    return {"kind": "rtd", "station": "boiler", "t": t, "values": [["a21002", {"Rtd": v, "Flag": "N"}]]}


def _run(coro, timeout=5):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


def _drain(up, plat, link):
    """Runs a session until the platform got what it wants and the store has nothing pending."""

    async def go():
        task = asyncio.create_task(up.session(link, link))
        await plat.done.wait()
        while up.pending():  # the last ack is being read
            await asyncio.sleep_ms(1)
        task.cancel()
        await asyncio.sleep_ms(0)

    _run(go())


def _request(cn, pw="123456", mn=MN, qn="20240315103005001", flag=5, cp=""):
    seg = "QN=%s;ST=31;CN=%s;PW=%s;MN=%s;Flag=%d;CP=&&%s&&" % (qn, cn, pw, mn, flag, cp)
    return hj212.frame(seg)


def test_fmt_num_hand_values_and_precision():
    cases = (
        (45.6, "45.6"),
        (0.00096, "0.00096"),
        (21162.0, "21162"),
        (1234567.89, "1234568"),
        (-0.215, "-0.215"),
        (0, "0"),
        (0.0, "0"),
        (3, "3"),
        (1e-20, "0"),
        (99.99999, "100"),
        (99.9994, "99.9994"),
        (123.4567891, "123.457"),
        (-0.0, "0"),
        (12.5, "12.5"),
    )
    for v, want in cases:
        assert fmt_num(v) == want, (v, fmt_num(v), want)
    v = 1.0e-9
    while v < 1e9:
        for m in (1.0, 1.234567, 3.3333333, 9.87654321):
            x = v * m
            s = fmt_num(x)
            assert "e" not in s and "E" not in s, s
            assert approx(float(s), x, rel=6e-6, abs_tol=1e-12), (x, s)
        v *= 7.3


def _fmt_num_before(v):
    # fmt_num as it was before it stopped allocating a float per step: the wire text must not change
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        return "0"
    a = -v if v < 0 else v
    if a == 0:
        return "0"
    e = 0
    p = 1.0
    if a >= 1:
        while a >= p * 10:
            p *= 10
            e += 1
    else:
        while a < p and e > -12:
            p /= 10
            e -= 1
    decimals = min(max(5 - e, 0), 17)
    s = "%.*f" % (decimals, v)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def test_fmt_num_text_unchanged_by_its_leaner_code():
    def same(v):
        assert fmt_num(v) == _fmt_num_before(v), (v, fmt_num(v), _fmt_num_before(v))

    for v in (float("nan"), float("inf"), float("-inf"), True, 0, -7, 10, 1e22, 1e23, 9.999995, 99999.95, 0.999999,
              0.1234565, 1.0000005, -0.0000096, 5e-13, 1e-12, 123456.5, 999999.5):
        same(v)
    x = 1.7e-14
    while x < 1e25:
        for m in (1.0, 1.05, 2.5, 3.3333333, 9.999996, 9.87654321):
            same(x * m)
            same(-x * m)
            same(struct.unpack("<f", struct.pack("<f", x * m))[0])  # as the store gives it back
        x *= 3.1
    rec = {"kind": "min", "t": T0, "values": [["a1", {}], ["a2", {"Flag": "D"}], ["a3", {"Avg": 1.5}]]}
    assert encode_cp(rec, 480 * 60) == "DataTime=20240315103000;;a2-Flag=D;a3-Avg=1.5"


def test_stamp_local_time():
    assert stamp(0, 480 * 60) == "19700101080000"
    assert stamp(1710469800, 480 * 60) == "20240315103000"
    assert stamp(1709222399, 480 * 60) == "20240229235959"
    assert stamp(946656000, 480 * 60) == "20000101000000"
    assert stamp(2147483648, 480 * 60) == "20380119111408"
    assert stamp(1710469800.25, 480 * 60, ms=True) == "20240315103000250"


def test_encode_period_and_realtime_records():
    cp = encode_cp(_min_record(T0, 45.6), 480 * 60)
    assert cp == (
        "DataTime=20240315103000;a21002-Cou=0.00096,a21002-Min=44.6,a21002-Avg=45.6,a21002-Max=46.6,"
        "a21002-ZsAvg=57,a21002-Flag=N;a19001-Min=8.5,a19001-Avg=9,a19001-Max=9.5,a19001-Flag=M"
    )
    rtd = {
        "kind": "rtd",
        "station": "boiler",
        "t": T0 + 30,
        "values": [
            ["a21002", {"Rtd": 45.6, "ZsRtd": 56.5, "Flag": "N"}],
            ["a19001", {"Rtd": None, "Flag": "B"}],
        ],
    }
    assert encode_cp(rtd, 480 * 60) == (
        "DataTime=20240315103030;a21002-Rtd=45.6,a21002-ZsRtd=56.5,a21002-Flag=N;a19001-Flag=B"
    )


def test_one_kind_table_and_one_text_sanitiser():
    assert [CN[k] for k in ("rtd", "min", "hour", "day", "evt", "restart")] == ["2011", "2051", "2061", "2031",
                                                                               "3020", "2081"]
    assert [history_kind(cn) for cn in ("2051", "2061", "2031", "2041", "2011", "3020")] == [
        "min", "hour", "day", "rt", None, None]
    assert info_text("a//b&&c\r\nd") == "//a/ /b& &c  d//"
    long = info_text("\u00e9" * 500)  # 2 UTF-8 bytes each: cut at 880 bytes, never inside a character
    assert long == "//" + "\u00e9" * 440 + "//"


def test_qn_unique_and_increasing_from_sim_clock():
    up = _uplink(None)
    up.clock.t = T0 + 0.1234
    qns = [up.tx.new_qn() for _ in range(5)]
    assert qns[0] == "20240315103000123"
    assert qns[1:] == ["20240315103000124", "20240315103000125", "20240315103000126", "20240315103000127"]


def test_session_sends_restart_first_then_stored_records_in_time_order_and_acks_them_durably():
    st = _store()
    up = _uplink(st)
    up.restart_notice(T0 - 5)
    for k in range(3):
        st.append(_min_record(T0 + 60 * k, 40 + k))
    st.append({"kind": "hour", "station": "boiler", "t": T0 - 1800, "values": [["a21002", {"Avg": 1.5, "Flag": "N"}]]})
    plat = Platform(chunk=1, want=5)  # acks arrive one byte at a time
    _drain(up, plat, FakeLink(plat))
    ups = plat.uploads()
    # restart notice first, then the store's records by DataTime (the hour record is the oldest)
    assert [p.cn for p in ups] == ["2081", "2061", "2051", "2051", "2051"]
    assert ups[0].get("RestartTime") == "20240315102955"
    assert ups[1].get("DataTime") == "20240315100000" and ups[1].get("a21002-Avg") == "1.5"
    assert [p.get("DataTime") for p in ups[2:]] == ["20240315103000", "20240315103100", "20240315103200"]
    for p in ups:
        assert p.flag == 5 and p.mn == MN and p.pw == "123456" and p.st == "31" and p.pnum is None
    assert len(set([p.qn for p in ups])) == 5
    assert ups[3].get("a21002-Avg") == "41" and ups[3].get("a21002-Cou") == "0.00096"
    assert up.c["acked"] == 5 and up.c["sent"] == 5 and up.c["resent"] == 0 and up.pending() == 0
    # the acks are on flash: a reboot (store opened again) has nothing to send
    again = Store(st.root, [{"name": "nat/boiler", "station": "boiler", "realtime": True}])
    assert again.pending_count("nat/boiler") == 0
    _done(st)


def test_missing_ack_resends_same_qn_recount_times_then_drops_the_link_keeping_the_record():
    st = _store()
    up = _uplink(st, overtime=0.05)
    st.append(_min_record(T0, 45.6))
    plat = Platform(ack=False)
    link = FakeLink(plat)
    failed = []

    async def go():
        try:
            await up.session(link, link)
        except OSError as exc:
            failed.append(str(exc))

    _run(go())
    ups = plat.uploads()
    assert len(ups) == 1 + CENTER["recount"]
    assert len(set([p.qn for p in ups])) == 1
    assert failed and "no 9014" in failed[0]
    assert st.pending_count("nat/boiler") == 1 and up.c["timeouts"] == 3 and up.c["resent"] == 2
    _done(st)


def test_late_ack_after_one_resend_is_accepted():
    st = _store()
    up = _uplink(st, overtime=0.05)
    st.append(_min_record(T0, 45.6))
    plat = Platform(drop_first=1, want=2)
    _drain(up, plat, FakeLink(plat))
    assert len(plat.uploads()) == 2 and up.c["acked"] == 1 and up.c["resent"] == 1
    _done(st)


def _big_record(t, n):
    # Values exactly representable in f32, so the expected text is plain decimal by hand.
    vals = []
    for k in range(n):
        code = "a%05d" % (21000 + k)
        vals.append([code, {"Cou": 0.5 + k, "Min": 10.25 + k, "Avg": 20.5 + k, "Max": 30.75 + k,
                            "ZsMin": 40.125 + k, "ZsAvg": 50.5 + k, "ZsMax": 60.25 + k, "Flag": "N"}])
    return {"kind": "min", "station": "boiler", "t": t, "values": vals}


def _big_cp(rec):
    parts = ["DataTime=20240315103000"]
    for code, d in rec["values"]:
        items = []
        for f in ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax"):
            items.append("%s-%s=%s" % (code, f, repr(d[f])))
        items.append("%s-Flag=N" % code)
        parts.append(",".join(items))
    return ";".join(parts)


def test_record_over_1024_bytes_goes_in_parts_each_with_its_own_qn_and_9014():
    st = _store()
    up = _uplink(st)
    rec = _big_record(T0, 12)
    want_cp = _big_cp(rec)
    assert len(want_cp) > 1024  # the point of the test
    st.append(rec)
    plat = Platform(want=2)
    _drain(up, plat, FakeLink(plat))
    parts = plat.uploads()
    n = len(parts)
    assert n >= 2 and up.c["split"] == 1 and up.c["acked"] == 1 and up.c["sent"] == n
    qns = [p.qn for p in parts]
    assert len(set(qns)) == n and qns == sorted(qns)
    for i in range(n):
        p = parts[i]
        assert p.flag == 7  # 2017 version bits (4) + A (1) + D (2): HJ 212-2017 C.49
        assert p.pnum == str(n) and p.pno == str(i + 1) and p.cn == "2051"
        assert p.cp_text().startswith("DataTime=20240315103000;")
        assert len(p.segment().encode()) <= 1024
    r = hj212.Reassembler()
    merged = None
    for p in parts:
        merged = r.add(p) or merged
    assert merged.cp_text() == want_cp
    assert st.pending_count("nat/boiler") == 0
    _done(st)


def test_unacked_part_is_resent_with_its_qn_and_the_record_stays_pending():
    st = _store()
    up = _uplink(st, overtime=0.05)
    st.append(_big_record(T0, 12))
    plat = Platform(skip_pno="2")
    link = FakeLink(plat)
    failed = []

    async def go():
        try:
            await up.session(link, link)
        except OSError as exc:
            failed.append(str(exc))

    _run(go())
    ups = plat.uploads()
    assert [p.pno for p in ups] == ["1"] + ["2"] * (1 + CENTER["recount"])
    assert len(set([p.qn for p in ups[1:]])) == 1 and ups[1].qn != ups[0].qn
    assert failed and st.pending_count("nat/boiler") == 1 and up.c["acked"] == 0
    _done(st)


def test_live_records_interleave_with_the_backlog_one_at_a_time():
    st = _store()
    up = _uplink(st)
    backlog = [T0 + 60 * k for k in range(10)]
    for t in backlog:
        st.append(_min_record(t, 1))
    live = {backlog[1]: [T0 + 3600], backlog[4]: [T0 + 3660, T0 + 3720]}
    seen = {}

    def on_upload(p):
        # records the acquisition produces while the backlog drains
        t = None
        for k in live:
            if p.get("DataTime") == stamp(k, 480 * 60) and k not in seen:
                seen[k] = True
                t = k
        if t is not None:
            for lt in live[t]:
                _put(up, _min_record(lt, 2))

    plat = Platform(want=13, on_upload=on_upload)
    _drain(up, plat, FakeLink(plat))
    got = [p.get("DataTime") for p in plat.uploads()]
    # documented rule: after each backlog record at most one live record, live ones oldest first
    order = backlog[:2] + [T0 + 3600] + backlog[2:5] + [T0 + 3660] + backlog[5:6] + [T0 + 3720] + backlog[6:]
    assert got == [stamp(t, 480 * 60) for t in order], got
    assert up.c["live"] == 3 and up.c["backlog"] == 10 and up.pending() == 0
    _done(st)


def test_live_record_goes_as_produced_from_its_cp_text_held_once():
    st = _store()
    up = _uplink(st)
    rec = _min_record(T0, 0.1234565)  # f32 in the store prints 0.123457, the value as produced 0.123456
    plat = Platform(want=1)
    link = FakeLink(plat)

    async def go():
        task = asyncio.create_task(up.session(link, link))
        while not up.backlog.done:  # the (empty) backlog pass is over
            await asyncio.sleep_ms(1)
        _put(up, rec)
        assert up.backlog.live[0][1:] == ("min", T0, encode_cp(rec, 480 * 60).encode())  # not the record
        await plat.done.wait()
        while up.pending():
            await asyncio.sleep_ms(1)
        task.cancel()
        await asyncio.sleep_ms(0)

    _run(go())
    p = plat.uploads()[0]
    assert p.cp_text() == encode_cp(rec, 480 * 60) and "a21002-Avg=0.123456," in p.cp_text()
    assert up.c["live"] == 1 and up.c["acked"] == 1 and st.pending_count("nat/boiler") == 0
    _done(st)


def test_events_go_as_3020_unless_rate_limited_and_store_drop_alarm_is_reported():
    st = _store()
    up = _uplink(st)
    ev = {"t": T0 + 5, "rule": "boiler-nox", "type": "limit", "station": "boiler", "state": "start",
          "evidence": {"value": 120.5}, "text": "limit boiler-nox: 15min mean 120.5 > 100 mg/m3", "code": "a21002"}
    st.append({"kind": "evt", "station": "boiler", "t": T0 + 5, "data": ev})
    quiet = dict(ev)
    quiet["wire"] = 0
    quiet["t"] = T0 + 6
    st.append({"kind": "evt", "station": "boiler", "t": T0 + 6, "data": quiet})
    st.append({"kind": "evt", "station": "", "t": T0 + 7,
               "data": {"alarm": "store_drop", "dropped": {"rtd": 5, "min": 3}, "total": 8}})
    warn = {"t": T0 + 8, "rule": "boiler-nox", "type": "limit", "station": "boiler", "state": "warn",
            "evidence": {}, "text": "warning", "code": "a21002"}
    st.append({"kind": "evt", "station": "boiler", "t": T0 + 8, "data": warn})
    plat = Platform(want=3)
    _drain(up, plat, FakeLink(plat))
    got = [(p.cn, p.flag, p.cp_text()) for p in plat.uploads()]
    text = got[1][2]
    drops_json = text[text.index("{"):text.index("}") + 1]
    assert json.loads(drops_json) == {"rtd": 5, "min": 3}  # the counts as JSON (key order is the port's)
    assert got == [
        ("3020", 5, "DataTime=20240315103005;PolId=a21002;i11001-Info=//limit boiler-nox: 15min mean 120.5 > 100 "
                    "mg/m3//;i12003-Info=1"),
        ("3020", 5, "DataTime=20240315103007;i11001-Info=//store_drop: record store full, 8 unsent records "
                    "dropped since boot " + drops_json + "//;i12003-Info=1"),
        ("3020", 5, "DataTime=20240315103008;PolId=a21002;i11001-Info=//warning//"),
    ]
    assert up.c["skipped"] == 1 and up.pending() == 0
    _done(st)


def test_wrong_requests_get_9011_with_the_right_qnrtn_and_acks_for_other_qns_are_ignored():
    st = _store()
    up = _uplink(st)
    plat = Platform()
    link = FakeLink(plat)
    bad_crc = bytearray(_request("1011", qn="20240315103005004"))
    bad_crc[-4] = ord("0") if bad_crc[-4] != ord("0") else ord("1")  # break the CRC, keep the header readable

    async def go():
        task = asyncio.create_task(up.session(link, link))
        link.push(_request("1011", pw="654321", qn="20240315103005001"))
        link.push(_request("1011", mn="31000000123456789ABCDEFF", qn="20240315103005002"))
        link.push(_request("9999", qn="20240315103005003"))
        link.push(bytes(bad_crc))
        link.push(b"garbage\r\n")
        link.push(_request("1011", qn="20240315103005005"))  # valid: no commands attached, logged only
        link.push(hj212.frame("QN=20240315103005006;ST=91;CN=9014;PW=123456;MN=%s;Flag=4;CP=&&&&" % MN))
        while up.c["rx_frames"] + up.c["rx_bad"] < 7:
            await asyncio.sleep_ms(1)
        task.cancel()

    _run(go())
    replies = [(p.qn, p.cn, p.get("QnRtn"), p.st) for p in plat.packets]
    assert replies == [
        ("20240315103005001", "9011", "3", "91"),
        ("20240315103005002", "9011", "4", "91"),
        ("20240315103005003", "9011", "8", "91"),
        ("20240315103005004", "9011", "9", "91"),
    ]
    assert up.c["rx_bad"] == 2 and up.c["rx_unexpected"] == 2
    _done(st)


def test_realtime_switch_skips_stored_rtd_and_resumes_from_the_switch_time():
    st = _store()
    up = _uplink(st)
    up.realtime = False  # e.g. the platform sent 2012 before
    st.append(_rtd(T0, 1.5))
    st.append(_min_record(T0 + 10, 3))
    plat = Platform(want=1)
    link = FakeLink(plat)
    _drain(up, plat, link)
    assert [p.cn for p in plat.uploads()] == ["2051"] and up.c["skipped"] == 1
    up.clock.t = T0 + 100
    up.set_realtime(True)
    st.append(_rtd(T0 + 90, 2.5))  # before the switch: not sent
    st.append(_rtd(T0 + 120, 3.5))
    plat2 = Platform(want=1)
    _drain(up, plat2, FakeLink(plat2))
    assert [(p.cn, p.get("a21002-Rtd")) for p in plat2.uploads()] == [("2011", "3.5")]
    _done(st)


def test_center_without_realtime_gets_no_rtd_from_the_store():
    st = _store(realtime=False)
    center = dict(CENTER)
    center["realtime"] = False
    up = uplink.Uplink(center, STATION, Clock(T0), store=st)
    st.append(_rtd(T0, 1))
    st.append(_min_record(T0, 1))
    assert up.pending() == 1


def test_backoff_exponential_capped_jittered_and_seeded():
    a = Rng(123)
    b = Rng(123)
    da = [backoff_s(n, a, first=1, cap=60) for n in range(1, 12)]
    db = [backoff_s(n, b, first=1, cap=60) for n in range(1, 12)]
    assert da == db
    for n, d in enumerate(da, 1):
        nominal = min(60, 2 ** (n - 1))
        assert 0.5 * nominal <= d <= nominal, (n, d)
    assert len(set(da)) == len(da)  # jitter: no two equal


def test_outage_then_reconnect_delivers_backlog_in_time_order():
    plat = Platform(want=13)
    attempts = []
    delays = []

    async def connect(host, port):
        attempts.append((host, port))
        if len(attempts) <= 4:
            raise OSError("ECONNREFUSED")
        link = FakeLink(plat)
        return link, link

    async def sleep(s):
        delays.append(s)
        await asyncio.sleep_ms(0)

    st = _store()
    up = _uplink(st, sleep=sleep, connect=connect)
    up.restart_notice(T0)
    for k in range(12):  # records produced while the center is unreachable
        _put(up, _min_record(T0 + 60 * k, k))

    async def go():
        task = asyncio.create_task(up.run())
        await plat.done.wait()
        while up.pending():
            await asyncio.sleep_ms(1)
        task.cancel()

    _run(go())
    assert attempts[0] == ("127.0.0.1", 9001) and len(attempts) == 5
    assert len(delays) == 4 and 0.5 <= delays[0] <= 1 and 4 <= delays[3] <= 8
    times = [p.get("DataTime") for p in plat.uploads()[1:]]
    assert len(times) == 12 and times == sorted(times)
    assert up.c["connect_fails"] == 4 and up.c["connects"] == 1 and st.dropped == 0
    _done(st)


class DeadLink(FakeLink):
    """A connect that looked made, to a center that refuses: the first read fails."""

    async def read(self, n):
        raise OSError("ECONNREFUSED")


def test_connections_that_never_hear_the_center_back_off_and_are_logged_sparingly():
    refusing = Platform(ack=False)  # what is written on a refused connection goes nowhere
    plat = Platform(want=1)
    links = []
    delays = []
    said = []

    async def connect(host, port):
        link = DeadLink(refusing) if len(links) < 12 else FakeLink(plat)
        links.append(link)
        return link, link

    async def sleep(s):
        delays.append(s)
        await asyncio.sleep_ms(0)

    st = _store()
    up = _uplink(st, sleep=sleep, connect=connect)
    _put(up, _min_record(T0, 1))
    log.setup(sink=said.append)

    async def go():
        task = asyncio.create_task(up.run())
        await plat.done.wait()
        task.cancel()

    try:
        _run(go())
    finally:
        log.setup(sink=lambda line: None)
    assert len(links) == 13 and up.c["connects"] == 13 and up.c["link_down"] == 12, (len(links), up.c)
    assert len(delays) == 12
    for n, d in enumerate(delays, 1):  # exponential over the refused connections, as for failed connects
        nominal = min(60, 2 ** (n - 1))
        assert 0.5 * nominal <= d <= nominal, (n, d)
    down = [ln for ln in said if "link down" in ln]
    assert len(down) == 4, down  # failures 1, 2, 3 and 10 of the streak
    assert "link down (receive failed, OSError: ECONNREFUSED); retry in" in down[0], down[0]
    assert not [ln for ln in said if "receive failed" in ln and "link down" not in ln]  # said once per drop
    assert plat.uploads() and st.dropped == 0
    _done(st)


def test_link_closed_by_center_reconnects_and_resends_unacked_record():
    plat = Platform(ack=False)
    plat2 = Platform(want=1)
    links = []

    async def connect(host, port):
        link = FakeLink(plat if not links else plat2)
        links.append(link)
        return link, link

    async def sleep(s):
        await asyncio.sleep_ms(0)

    st = _store()
    up = _uplink(st, sleep=sleep, connect=connect)
    st.append(_min_record(T0, 5))

    async def go():
        task = asyncio.create_task(up.run())
        while not plat.uploads():
            await asyncio.sleep_ms(1)
        links[0].close()  # the center hangs up before acking
        await plat2.done.wait()
        while up.pending():
            await asyncio.sleep_ms(1)
        task.cancel()

    _run(go())
    assert plat.uploads()[0].get("DataTime") == plat2.uploads()[0].get("DataTime") == "20240315103000"
    assert up.c["link_down"] >= 1 and up.c["acked"] == 1
    _done(st)


def test_backlog_passes_are_shared_between_links_and_live_records_go_meanwhile():
    st = _store()
    up = _uplink(st)
    for k in range(3):
        st.append(_min_record(T0 + 60 * k, k))
    plat = Platform()
    link = FakeLink(plat)
    SLOTS.free = 0  # every backlog slot is held by other links

    async def until(pred):
        while not pred():
            await asyncio.sleep_ms(1)

    async def go():
        task = asyncio.create_task(up.session(link, link))
        await asyncio.sleep_ms(20)
        assert plat.uploads() == [] and up.backlog in SLOTS.waiting  # waiting for a slot, not spinning
        _put(up, _min_record(T0 + 3600, 9))  # a live record is not held back by the wait
        await until(lambda: len(plat.uploads()) == 1 and up.c["acked"] == 1)
        SLOTS.give()  # another link's pass ended: this one is woken and drains its backlog
        await until(lambda: up.pending() == 0)
        task.cancel()
        await asyncio.sleep_ms(0)

    try:
        _run(go())
        got = [p.get("DataTime") for p in plat.uploads()]
        assert got == ["20240315113000", "20240315103000", "20240315103100", "20240315103200"]
        assert SLOTS.free == 1  # the slot was given back when the pass ended
    finally:
        SLOTS.free = BACKLOG_SLOTS
        SLOTS.waiting = []
        _done(st)
