"""Platform commands (firmware/app/commands.py, params.py) through a real Uplink and a scripted platform.

Expected packets are written from HJ 212-2017 Appendix C (C.1-C.13, C.20-C.23, C.41, C.43): QN reuse,
ST=91 on 9011/9012/9013, Flag=4 on replies, QnRtn/ExeRtn values of Tables 6 and 7. Times are derived by
hand: T0 = 2024-03-15 10:30:00 Beijing = 1710469800 (also used by test_fw_uplink.py).
"""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")
sys.path.insert(0, "tests/firmware")  # fake_link

import asyncio
import json
import os
import time

from app import commands, log, uplink
from app.params import Params
from app.store import Store
from fake_link import Clock, FakeLink

from protocols import hj212

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "320k"  # compiling uplink + commands + store + hj212 from source; the device loads .mpy

MN = "31000000123456789ABCDEF0"
T0 = 1710469800
OFFSET_S = 480 * 60
STATION = {"name": "boiler", "mn": MN, "st": "31",
           "channels": [{"code": "a21003", "source": "cems.no"}, {"code": "a19001", "source": "cems.o2"}]}

log.setup(sink=lambda line: None)


def _center(name="nat", pw="123456"):
    return {"name": name, "host": "127.0.0.1", "port": 9001, "version": 2017, "overtime_s": 10,
            "recount": 2, "realtime": True, "stations": {"boiler": {"pw": pw}}}


class Platform:
    """Acks uploads with Flag A=1 (9014), answers 1013 with 9013 (C.4); records everything."""

    def __init__(self, ack=True):
        self.ack = ack
        self.dec = hj212.StreamDecoder()
        self.packets = []
        self.ev = asyncio.Event()

    def received(self, link, data):
        for p in self.dec.feed(data):
            assert p.ok, p
            self.packets.append(p)
            self.ev.set()
            if p.cn.startswith("90"):
                continue
            if p.cn == "1013":
                link.push(hj212.reply_9013(p).encode())
            elif p.ack_wanted and self.ack:
                link.push(hj212.reply_9014(p).encode())

    async def wait(self, pred, timeout_ms=3000):
        start = time.ticks_ms()
        while not pred():
            if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
                raise AssertionError("platform waited in vain; got %r" % [(p.cn, p.cp_text()) for p in self.packets])
            self.ev.clear()
            try:
                await asyncio.wait_for_ms(self.ev.wait(), 100)
            except asyncio.TimeoutError:  # noqa: UP041 - MicroPython has no builtin TimeoutError
                pass


_dirs = [0]


def _fs():
    _dirs[0] += 1
    d = "/tmp/emlog-cmd-%d-%d" % (time.ticks_us() & 0xFFFFFF, _dirs[0])
    os.mkdir(d)
    return d


class Acq:
    """Acquisition stand-in with the optional setters the commands use."""

    def __init__(self):
        self.rtd_s = 30
        self.min_calls = []
        self.time_calls = []
        self.buses = []

    def set_min_interval(self, m):
        self.min_calls.append(m)

    def time_changed(self, old, new):
        self.time_calls.append((old, new))


class Env:
    def __init__(self, fs=None, ack=True, centers=("nat",), history=None, set_time=True):
        self.clock = Clock(T0)
        self.fs = fs or _fs()
        self.params = Params(self.fs)
        self.acq = Acq()
        self.set_calls = []

        def set_time_fn(t):
            self.set_calls.append(t)
            self.clock.set(t)

        links = [{"name": name + "/boiler", "station": "boiler", "realtime": True} for name in centers]
        self.store = Store(self.fs + "/store", links)
        self.history = history if history is not None else self.store
        self.cmds = commands.Commands(self.clock, OFFSET_S, {"rtd_interval_s": 30, "min_interval_min": 10},
                                      params=self.params, set_time=set_time_fn if set_time else None,
                                      acq=self.acq, history=self.history)
        self.cmds.time_sync_due = False
        self.ups = []
        for name in centers:
            center = _center(name)
            center["overtime_s"] = 0.05  # real seconds: a missing 9014 is noticed quickly
            up = uplink.Uplink(center, STATION, self.clock, utc_offset_min=480, store=self.store,
                               commands=self.cmds, seed=1)
            self.ups.append(up)
        self.up = self.ups[0]
        self.plat = Platform(ack)
        self.link = FakeLink(self.plat)

    def run(self, script, timeout=8):
        async def go():
            task = asyncio.create_task(self.up.session(self.link, self.link))
            try:
                await script(self)
            finally:
                task.cancel()
                await asyncio.sleep_ms(0)

        async def guarded():
            await asyncio.wait_for(go(), timeout)

        asyncio.run(guarded())


_qn = [0]


def _next_qn():
    _qn[0] += 1
    return "20240315103500%03d" % _qn[0]


def _req(cn, cp="", pw="123456", mn=MN, st="31", flag=5, qn=None):
    qn = qn or _next_qn()
    return qn, hj212.frame("QN=%s;ST=%s;CN=%s;PW=%s;MN=%s;Flag=%d;CP=&&%s&&" % (qn, st, cn, pw, mn, flag, cp))


def _exchange(env, cn, cp="", **kw):
    """Sends one request; returns every packet of its flow once it ended (9012, 9013 or a refusal)."""
    qn, data = _req(cn, cp, **kw)
    out = []

    async def script(e):
        e.link.push(data)

        def ended():
            for p in e.plat.packets:
                if p.qn == qn and (p.cn in ("9012", "9013") or (p.cn == "9011" and p.get("QnRtn") != "1")):
                    return True
            return False

        await e.plat.wait(ended)
        out.extend(e.plat.packets)

    env.plat.packets = []
    env.run(script)
    return qn, out


def _summary(qn, packets):
    """(cn, st, flag, cp) of the packets with the request's QN, in order."""
    return [(p.cn, p.st, p.flag, p.cp_text()) for p in packets if p.qn == qn]


def _stored(env):
    with open(env.fs + "/params.json") as f:
        return json.load(f)


# -- 1000, 1011, 1012, 1061..1064 ------------------------------------------------------------------------


def test_1000_sets_overtime_recount_per_link_persisted_and_audited():
    env = Env()
    qn, pk = _exchange(env, "1000", "OverTime=5;ReCount=4")
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=1"), ("9012", "91", 4, "ExeRtn=1")]
    assert env.up.overtime_s == 5 and env.up.recount == 4
    assert _stored(env)["links"]["nat/boiler"] == {"overtime_s": 5, "recount": 4}
    whats = [(e[1], e[2], e[3], e[4]) for e in commands.audit_entries(T0, T0)][-2:]
    assert whats == [("nat/boiler", "overtime_s", "0.05", "5"), ("nat/boiler", "recount", "2", "4")]
    # reported to the platform as 3020 log uploads (queued on this link)
    infos = [it for it in env.up.urgent if it[0] == "info"]
    assert len(infos) == 2 and "recount 2 -> 4" in infos[1][1] and infos[1][1].startswith("DataTime=20240315103000;")
    # and durably in the store's audit lane
    auds = [r["data"] for r in env.store.query("aud", "", T0, T0)]
    assert auds[-2:] == [["nat/boiler", "overtime_s", "0.05", "5"], ["nat/boiler", "recount", "2", "4"]]
    # a reboot applies the stored values to a fresh link
    env2 = Env(fs=env.fs)
    assert env2.up.overtime_s == 5 and env2.up.recount == 4


def test_1000_out_of_range_changes_nothing():
    env = Env()
    n = len(commands.audit_entries())
    qn, pk = _exchange(env, "1000", "OverTime=0;ReCount=3")
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=1"), ("9012", "91", 4, "ExeRtn=3")]
    assert env.up.recount == 2 and len(commands.audit_entries()) == n


def test_1011_returns_logger_time_c2():
    env = Env()
    qn, pk = _exchange(env, "1011")
    assert _summary(qn, pk) == [
        ("9011", "91", 4, "QnRtn=1"),
        ("1011", "31", 4, "SystemTime=20240315103000"),
        ("9012", "91", 4, "ExeRtn=1"),
    ]
    qn, pk = _exchange(env, "1011", "PolId=a21003")  # instrument clock: not readable -> condition error
    assert _summary(qn, pk)[-1] == ("9012", "91", 4, "ExeRtn=3")


def test_1012_sets_the_clock_and_audits_old_and_new():
    env = Env()
    qn, pk = _exchange(env, "1012", "SystemTime=20240315120000")
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=1"), ("9012", "91", 4, "ExeRtn=1")]
    assert env.set_calls == [T0 + 5400]  # 12:00 - 10:30 Beijing = 90 min
    assert env.acq.time_calls == [(T0, T0 + 5400)]
    e = commands.audit_entries()[-1]
    assert e[1:] == ["nat/boiler", "SystemTime", "20240315103000", "20240315120000"]
    for bad in ("SystemTime=20241315120000", "SystemTime=1999", "SystemTime=19990101000000", "PolId=a21003"):
        qn, pk = _exchange(env, "1012", bad)
        assert _summary(qn, pk)[-1] == ("9012", "91", 4, "ExeRtn=3"), bad
    assert len(env.set_calls) == 1
    # within the second SystemTime names (its resolution), the clock is already right: not stepped
    env.clock.set(T0 + 5400 + 0.6)
    qn, pk = _exchange(env, "1012", "SystemTime=20240315120000")
    assert _summary(qn, pk)[-1] == ("9012", "91", 4, "ExeRtn=1")
    assert len(env.set_calls) == 1 and len(env.acq.time_calls) == 1 and env.clock() == T0 + 5400.6
    assert commands.audit_entries()[-1][1:] == ["nat/boiler", "SystemTime", "20240315120000", "20240315120000"]
    qn, pk = _exchange(env, "1012", "SystemTime=20240315115959")  # 1.6 s behind: stepped
    assert env.set_calls[-1] == T0 + 5399 and env.acq.time_calls[-1] == (T0 + 5400.6, T0 + 5399)


def test_intervals_get_and_set_with_range_checks():
    env = Env()
    qn, pk = _exchange(env, "1061")
    assert _summary(qn, pk)[1] == ("1061", "31", 4, "RtdInterval=30")
    qn, pk = _exchange(env, "1062", "RtdInterval=60")
    assert _summary(qn, pk)[-1] == ("9012", "91", 4, "ExeRtn=1")
    assert env.acq.rtd_s == 60
    qn, pk = _exchange(env, "1061")
    assert _summary(qn, pk)[1][3] == "RtdInterval=60"
    for bad in ("RtdInterval=29", "RtdInterval=3601", "RtdInterval=x", ""):
        qn, pk = _exchange(env, "1062", bad)
        assert _summary(qn, pk)[-1][3] == "ExeRtn=3", bad
    assert env.acq.rtd_s == 60
    qn, pk = _exchange(env, "1063")
    assert _summary(qn, pk)[1] == ("1063", "31", 4, "MinInterval=10")
    qn, pk = _exchange(env, "1064", "MinInterval=7")  # not a divisor listed in Table 9
    assert _summary(qn, pk)[-1][3] == "ExeRtn=3" and env.acq.min_calls == []
    qn, pk = _exchange(env, "1064", "MinInterval=5")
    assert _summary(qn, pk)[-1][3] == "ExeRtn=1" and env.acq.min_calls == [5]
    qn, pk = _exchange(env, "1063")
    assert _summary(qn, pk)[1][3] == "MinInterval=5"
    assert _stored(env)["logger"] == {"rtd_interval_s": 60, "min_interval_min": 5}
    cfg = Params(env.fs).overlay({"logger": {"rtd_interval_s": 30, "min_interval_min": 10}})
    assert cfg["logger"] == {"rtd_interval_s": 60, "min_interval_min": 5}


# -- 1072 password ---------------------------------------------------------------------------------------


def test_1072_password_per_center_persisted_never_logged_in_clear():
    env = Env(centers=("nat", "prov"))
    lines = []
    log.setup(sink=lines.append)
    try:
        qn, pk = _exchange(env, "1072", "NewPW=654321")
    finally:
        log.setup(sink=lambda line: None)
    # C.9: 9011 and 9012 answer the request, so they carry the PW it came with
    assert [(p.cn, p.pw, p.cp_text()) for p in pk if p.qn == qn] == [
        ("9011", "123456", "QnRtn=1"), ("9012", "123456", "ExeRtn=1")]
    assert env.up.pw == "654321" and env.ups[1].pw == "123456"  # the other center keeps its own
    assert _stored(env)["links"] == {"nat/boiler": {"pw": "654321"}}
    assert not [ln for ln in lines if "654321" in ln]
    assert commands.audit_entries()[-1][1:] == ["nat/boiler", "PW", "******", "******"]
    qn, pk = _exchange(env, "1061")  # old password now refused: QnRtn=3, nothing else
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=3")]
    qn, pk = _exchange(env, "1061", pw="654321")
    assert _summary(qn, pk)[-1][3] == "ExeRtn=1"
    assert Env(fs=env.fs).up.pw == "654321"
    for bad in ("NewPW=ab cd", "NewPW=" + "x" * 33, "NewPW=", ""):
        qn, pk = _exchange(env, "1072", bad, pw="654321")
        assert _summary(qn, pk)[-1][3] == "ExeRtn=3", bad
    assert env.up.pw == "654321"


# -- 2011/2012, 2021/2022 ---------------------------------------------------------------------------------


def test_realtime_start_stop_and_status_notifications():
    env = Env()
    qn, pk = _exchange(env, "2012")
    assert _summary(qn, pk) == [("9013", "91", 4, "")]  # C.11: a notification, no 9011
    assert env.up.realtime is False
    assert not env.up._sends("rtd", T0)  # stored realtime records are skipped, not encoded
    assert env.up._held(None, {"kind": "rtd", "station": "boiler", "t": T0, "values": []})[3] is None
    qn, pk = _exchange(env, "2011")
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=1"), ("9012", "91", 4, "ExeRtn=1")]
    assert env.up.realtime is True
    qn, pk = _exchange(env, "2021")
    assert _summary(qn, pk)[-1][3] == "ExeRtn=1" and env.up.status is True
    qn, pk = _exchange(env, "2022")
    assert _summary(qn, pk) == [("9013", "91", 4, "")] and env.up.status is False
    assert _stored(env)["links"]["nat/boiler"] == {"realtime": True, "status": False}
    assert [e[2:] for e in commands.audit_entries()[-4:]] == [
        ["realtime", "on", "off"], ["realtime", "off", "on"], ["status", "off", "on"], ["status", "on", "off"]]


# -- history ---------------------------------------------------------------------------------------------


def _min_rec(t, avg):
    return {"kind": "min", "station": "boiler", "t": t,
            "values": [["a21003", {"Min": avg, "Avg": avg, "Max": avg, "Flag": "N"}]]}


class ListHistory:
    def __init__(self, recs):
        self.recs = recs
        self.calls = []

    def query(self, kind, station, t0, t1):
        self.calls.append((kind, station))
        return [r for r in self.recs if r["kind"] == kind and r["station"] == station and t0 <= r["t"] < t1]


def test_history_from_the_store_one_record_per_packet_acked_then_9012_and_cursors_untouched():
    env = Env(centers=("nat", "prov"))
    for t, avg in ((T0 - 600, 1), (T0 - 540, 2), (T0 - 480, 3)):
        env.store.append(_min_rec(t, avg))
    for ref, _rec in list(env.store.pending("nat/boiler")):
        env.store.ack("nat/boiler", ref)  # delivered long ago to this center; kept for recall
    env.store.append(_min_rec(T0, 9))  # a live record, uploaded during the recall
    before = [env.store.pending_count(u.name) for u in env.ups]
    assert before == [1, 4]
    # 10:20:00 .. 10:21:00 inclusive (C.20: precision minute)
    qn, pk = _exchange(env, "2051", "BeginTime=20240315102000;EndTime=20240315102100")
    flow = [p for p in pk if p.qn == qn or p.cn == "2051" and p.get("DataTime", "") < "20240315103000"]
    assert [(p.cn, p.cp_text()[:23]) for p in flow] == [
        ("9011", "QnRtn=1"),
        ("2051", "DataTime=20240315102000"),
        ("2051", "DataTime=20240315102100"),
        ("9012", "ExeRtn=1"),
    ]
    recs = flow[1:3]
    assert recs[0].qn != qn and recs[1].qn != recs[0].qn and recs[0].flag == 5  # new QN each, ack wanted (C.48)
    assert recs[0].get("a21003-Avg") == "1" and recs[1].get("a21003-Avg") == "2"
    # recall reads the store; it moves no upload cursor (the other center's records all still pending)
    assert env.store.pending_count("prov/boiler") == before[1]
    qn, pk = _exchange(env, "2061", "BeginTime=20240315080000;EndTime=20240315090000")
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=1"), ("9012", "91", 4, "ExeRtn=100")]
    qn, pk = _exchange(env, "2051", "BeginTime=20240315102100;EndTime=20240315102000")
    assert _summary(qn, pk)[-1][3] == "ExeRtn=3"
    qn, pk = _exchange(env, "2041", "BeginTime=20240315000000;EndTime=20240315000000")
    assert _summary(qn, pk)[-1][3] == "ExeRtn=100"


def test_history_record_over_1024_bytes_is_recalled_in_parts_each_acked():
    env = Env()
    vals = [["a%05d" % (21000 + k), {"Min": 1.5, "Avg": 2.5, "Max": 3.5, "ZsMin": 4.5, "ZsAvg": 5.5,
                                      "ZsMax": 6.5, "Cou": 0.25, "Flag": "N"}] for k in range(14)]
    ref = env.store.append({"kind": "hour", "station": "boiler", "t": T0 - 1800, "values": vals})
    env.store.ack("nat/boiler", ref)  # uploaded before: only the recall sends it now
    qn, pk = _exchange(env, "2061", "BeginTime=20240315100000;EndTime=20240315100000")
    parts = [p for p in pk if p.cn == "2061"]
    assert len(parts) >= 2 and _summary(qn, pk)[-1] == ("9012", "91", 4, "ExeRtn=1")
    n = str(len(parts))
    assert [(p.pnum, p.pno, p.flag) for p in parts] == [(n, str(i + 1), 7) for i in range(len(parts))]
    assert len(set([p.qn for p in parts])) == len(parts)
    codes = []
    for p in parts:
        assert p.cp_text().startswith("DataTime=20240315100000;")
        codes += [g[0][0][:-4] for g in p.cp[1:]]  # each group starts with <code>-Cou
    assert codes == [v[0] for v in vals]


def test_history_without_9014_resends_same_qn_then_exertn_4():
    env = Env(ack=False, history=ListHistory([_min_rec(T0 - 600, 1)]))
    env.up.recount = 1
    qn, pk = _exchange(env, "2051", "BeginTime=20240315102000;EndTime=20240315102000")
    recs = [p for p in pk if p.cn == "2051"]
    assert len(recs) == 2 and recs[0].qn == recs[1].qn  # sent, then re-sent once with the same QN
    assert _summary(qn, pk)[-1] == ("9012", "91", 4, "ExeRtn=4")


def test_history_flag4_request_streams_without_acks_c47():
    env = Env(ack=False, history=ListHistory([_min_rec(T0 - 600, 1), _min_rec(T0 - 540, 2)]))
    qn, pk = _exchange(env, "2051", "BeginTime=20240315102000;EndTime=20240315102100", flag=4)
    recs = [p for p in pk if p.cn == "2051"]
    assert [p.flag for p in recs] == [4, 4]
    assert _summary(qn, pk) == [("9012", "91", 4, "ExeRtn=1")]  # Flag A=0: no 9011 asked for


# -- refusals --------------------------------------------------------------------------------------------


def test_refused_requests_change_nothing_and_get_the_right_qnrtn():
    env = Env()
    n = len(commands.audit_entries())
    cases = [
        ({"pw": "000000"}, "3"),
        ({"mn": "31000000123456789ABCDEFF"}, "4"),
        ({"st": "32"}, "5"),
    ]
    for kw, rtn in cases:
        qn, pk = _exchange(env, "1062", "RtdInterval=90", **kw)
        assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=" + rtn)], kw
    qn, pk = _exchange(env, "9999")
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=8")]
    qn, pk = _exchange(env, "3011", "PolId=a21003")  # known, but the logger cannot calibrate analyzers
    assert _summary(qn, pk) == [("9011", "91", 4, "QnRtn=2")]
    assert env.acq.rtd_s == 30 and len(commands.audit_entries()) == n
    # bad CRC, header readable: QnRtn=9, and the request is not executed
    qn, data = _req("1062", "RtdInterval=90")
    data = bytearray(data)
    data[-4] = ord("0") if data[-4] != ord("0") else ord("1")

    async def script(e):
        e.link.push(bytes(data))
        await e.plat.wait(lambda: any(p.qn == qn for p in e.plat.packets))

    env.plat.packets = []
    env.run(script)
    assert _summary(qn, env.plat.packets) == [("9011", "91", 4, "QnRtn=9")]
    assert env.acq.rtd_s == 30


# -- 1013 time calibration request -----------------------------------------------------------------------


def test_1013_at_boot_then_platform_1012_moves_the_clock():
    env = Env()
    env.cmds.time_sync_due = True

    async def script(e):
        await e.plat.wait(lambda: any(p.cn == "1013" for p in e.plat.packets))
        # C.4 then C.3: the platform answered 9013 (Platform does) and now sets the time
        e.link.push(_req("1012", "SystemTime=20240315103100")[1])
        await e.plat.wait(lambda: any(p.cn == "9012" for p in e.plat.packets))

    env.run(script)
    req = [p for p in env.plat.packets if p.cn == "1013"]
    assert len(req) == 1 and req[0].flag == 5 and req[0].cp_text() == "" and req[0].st == "31"
    assert env.cmds.time_syncs == 1 and env.set_calls == [T0 + 60]
    # Asked again at 10:31:00.9; the answer stamped 10:31:01 arrives at 10:31:02.3 (a slow link): the clock
    # read inside 10:31:01 during the exchange, so it already agrees. Without the request it would step back.
    env.clock.set(T0 + 60.9)
    env.cmds.time_sync_due = True  # the session's connect asks

    async def slow(e):
        await e.plat.wait(lambda: len([p for p in e.plat.packets if p.cn == "1013"]) == 2)
        e.clock.set(T0 + 62.3)
        e.link.push(_req("1012", "SystemTime=20240315103101")[1])
        await e.plat.wait(lambda: len([p for p in e.plat.packets if p.cn == "9012"]) == 2)

    env.run(slow)
    assert env.set_calls == [T0 + 60] and env.clock() == T0 + 62.3  # not stepped back to :01
    qn, pk = _exchange(env, "1012", "SystemTime=20240315103101")  # the same, unasked: 1.3 s ahead
    assert env.set_calls == [T0 + 60, T0 + 61]
    env.plat.packets = []
    env.cmds.on_connect(env.up, 10)  # short outage: no new request
    assert not env.cmds.time_sync_due and not env.up.dispatch.pending()
    env.cmds.on_connect(env.up, commands.LONG_OUTAGE_S)
    assert env.up.dispatch.pending() == 1  # a 1013 flow is queued for this link
    env.up.dispatch.stop()


# -- 3020 --------------------------------------------------------------------------------------------------


def test_3020_log_recall_and_status():
    env = Env()
    _exchange(env, "1062", "RtdInterval=120")
    qn, pk = _exchange(env, "3020", "InfoId=i11001;BeginTime=20240315103000;EndTime=20240315103000")
    logs = [p for p in pk if p.cn == "3020"]
    assert logs and logs[-1].get("i11001-Info") == "//nat/boiler set RtdInterval 30 -> 120//"
    assert logs[-1].qn != qn and logs[-1].get("DataTime") == "20240315103000"
    assert _summary(qn, pk)[-1][3] == "ExeRtn=1"
    qn, pk = _exchange(env, "3020", "InfoId=i12001")
    assert _summary(qn, pk)[1] == ("3020", "31", 4, "DataTime=20240315103000;i12001-Info=0")
    qn, pk = _exchange(env, "3020", "PolId=a99999;InfoId=i12001")
    assert _summary(qn, pk)[-1][3] == "ExeRtn=3"
    qn, pk = _exchange(env, "3020", "InfoId=i13004")
    assert _summary(qn, pk)[-1][3] == "ExeRtn=3"


# -- params file -----------------------------------------------------------------------------------------


def test_params_file_damaged_values_ignored_and_new_file_fallback():
    fs = _fs()
    with open(fs + "/params.json.new", "w") as f:
        json.dump({"logger": {"rtd_interval_s": 5, "min_interval_min": 15},
                   "links": {"nat/boiler": {"pw": "a;b", "recount": 7}}}, f)
    p = Params(fs)  # only .new exists (cut between write and rename): it is read
    assert p.logger == {"min_interval_min": 15}
    assert p.link_values("nat", "boiler") == {"recount": 7}
    p.set_link("nat", "boiler", "realtime", False)
    assert sorted(os.listdir(fs)) == ["params.json"]
    with open(fs + "/params.json", "w") as f:
        f.write("{broken")
    assert Params(fs).logger == {}
