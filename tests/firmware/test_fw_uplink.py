"""Uplink to a center (firmware/app/uplink.py) against an in-process fake platform.

The fake link hands bytes between the uplink and a scripted platform inside one asyncio loop: no
sockets, no sleeps; OverTime is shortened to 50 ms real time where a missing ack is the point.
"""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

import asyncio

from app import log, uplink
from portable import approx

from protocols import hj212

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "128k"  # compiling uplink + hj212 from source; the device loads .mpy

MN = "31000000123456789ABCDEF0"
CENTER = {
    "name": "nat",
    "host": "127.0.0.1",
    "port": 9001,
    "version": 2017,
    "overtime_s": 10,
    "recount": 2,
    "realtime": True,
    "queue_bytes": 8000,
    "stations": {"boiler": {"pw": "123456"}},
}
STATION = {"name": "boiler", "mn": MN, "st": "31", "channels": []}
T0 = 1710469800  # 2024-03-15 10:30:00 Beijing (computed with CPython datetime)

log.setup(sink=lambda line: None)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


class FakeLink:
    """One connection: `write` goes to the platform, the platform's bytes come back through `read`."""

    def __init__(self, platform):
        self.platform = platform
        self.rx = []
        self.ev = asyncio.Event()
        self.closed = False

    async def read(self, n):
        while not self.rx and not self.closed:
            self.ev.clear()
            await self.ev.wait()
        return self.rx.pop(0) if self.rx else b""

    def write(self, data):
        self.platform.received(self, bytes(data))

    async def drain(self):
        pass

    def push(self, data, chunk=None):
        if chunk:
            for i in range(0, len(data), chunk):
                self.rx.append(data[i : i + chunk])
        else:
            self.rx.append(data)
        self.ev.set()

    def close(self):
        self.closed = True
        self.ev.set()

    async def wait_closed(self):
        pass


class Platform:
    def __init__(self, ack=True, chunk=None, drop_first=0, want=0):
        self.ack = ack
        self.chunk = chunk
        self.drop_first = drop_first  # ignore this many uploads before acking
        self.dec = hj212.StreamDecoder()
        self.packets = []
        self.want = want
        self.done = asyncio.Event()

    def received(self, link, data):
        for p in self.dec.feed(data):
            assert p.ok, p
            self.packets.append(p)
            if p.cn.startswith("90"):
                continue
            if self.drop_first > 0:
                self.drop_first -= 1
            elif self.ack:
                link.push(hj212.reply_9014(p).encode(), self.chunk)
            if self.want and len(self.uploads()) >= self.want:
                self.done.set()

    def uploads(self):
        return [p for p in self.packets if not p.cn.startswith("90")]


def _uplink(overtime=None, **kw):
    up = uplink.Uplink(CENTER, STATION, Clock(T0), utc_offset_min=480, seed=7, **kw)
    if overtime is not None:
        up.overtime_s = overtime
    return up


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


def _run(coro, timeout=5):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


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
        assert uplink.fmt_num(v) == want, (v, uplink.fmt_num(v), want)
    v = 1.0e-9
    while v < 1e9:
        for m in (1.0, 1.234567, 3.3333333, 9.87654321):
            x = v * m
            s = uplink.fmt_num(x)
            assert "e" not in s and "E" not in s, s
            assert approx(float(s), x, rel=6e-6, abs_tol=1e-12), (x, s)
        v *= 7.3


def test_stamp_local_time():
    assert uplink.stamp(0, 480 * 60) == "19700101080000"
    assert uplink.stamp(1710469800, 480 * 60) == "20240315103000"
    assert uplink.stamp(1709222399, 480 * 60) == "20240229235959"
    assert uplink.stamp(946656000, 480 * 60) == "20000101000000"
    assert uplink.stamp(2147483648, 480 * 60) == "20380119111408"
    assert uplink.stamp(1710469800.25, 480 * 60, ms=True) == "20240315103000250"


def test_encode_period_and_realtime_records():
    cp = uplink.encode_cp(_min_record(T0, 45.6), 480 * 60)
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
    assert uplink.encode_cp(rtd, 480 * 60) == (
        "DataTime=20240315103030;a21002-Rtd=45.6,a21002-ZsRtd=56.5,a21002-Flag=N;a19001-Flag=B"
    )


def test_qn_unique_and_increasing_from_sim_clock():
    up = _uplink()
    up.clock.t = T0 + 0.1234
    qns = [up.new_qn() for _ in range(5)]
    assert qns[0] == "20240315103000123"
    assert qns[1:] == ["20240315103000124", "20240315103000125", "20240315103000126", "20240315103000127"]


def test_session_sends_restart_first_then_records_in_order_and_empties_the_queue():
    up = _uplink()
    up.restart_notice(T0 - 5)
    for k in range(3):
        up.offer(_min_record(T0 + 60 * k, 40 + k))
    up.offer(
        {
            "kind": "hour",
            "station": "boiler",
            "t": T0 - 1800,
            "values": [["a21002", {"Avg": 1.5, "Flag": "N"}]],
        }
    )
    plat = Platform(chunk=1, want=5)  # acks arrive one byte at a time
    link = FakeLink(plat)

    async def go():
        task = asyncio.create_task(up.session(link, link))
        await plat.done.wait()
        while len(up.queue):  # the last ack is being read
            await asyncio.sleep_ms(1)
        task.cancel()

    _run(go())
    ups = plat.uploads()
    assert [p.cn for p in ups] == ["2081", "2051", "2051", "2051", "2061"]
    assert ups[0].get("RestartTime") == "20240315102955"
    assert [p.get("DataTime") for p in ups[1:4]] == ["20240315103000", "20240315103100", "20240315103200"]
    for p in ups:
        assert p.flag == 5 and p.mn == MN and p.pw == "123456" and p.st == "31"
    assert len(set([p.qn for p in ups])) == 5
    assert ups[2].get("a21002-Avg") == "41"
    assert up.c["acked"] == 5 and up.c["sent"] == 5 and up.c["resent"] == 0 and len(up.queue) == 0


def test_missing_ack_resends_same_qn_recount_times_then_drops_the_link_keeping_the_record():
    up = _uplink(overtime=0.05)
    up.offer(_min_record(T0, 45.6))
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
    assert len(up.queue) == 1 and up.c["timeouts"] == 3 and up.c["resent"] == 2


def test_late_ack_after_one_resend_is_accepted():
    up = _uplink(overtime=0.05)
    up.offer(_min_record(T0, 45.6))
    plat = Platform(drop_first=1, want=2)
    link = FakeLink(plat)

    async def go():
        task = asyncio.create_task(up.session(link, link))
        await plat.done.wait()
        while len(up.queue):
            await asyncio.sleep_ms(1)
        task.cancel()

    _run(go())
    assert len(plat.uploads()) == 2 and up.c["acked"] == 1 and up.c["resent"] == 1


def _request(cn, pw="123456", mn=MN, qn="20240315103005001", flag=5, cp=""):
    seg = "QN=%s;ST=31;CN=%s;PW=%s;MN=%s;Flag=%d;CP=&&%s&&" % (qn, cn, pw, mn, flag, cp)
    return hj212.frame(seg)


def test_wrong_requests_get_9011_with_the_right_qnrtn_and_acks_for_other_qns_are_ignored():
    up = _uplink()
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
        link.push(_request("1011", qn="20240315103005005"))  # valid: not answered yet (next issue)
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


def test_realtime_off_ignores_rtd_records():
    center = dict(CENTER)
    center["realtime"] = False
    up = uplink.Uplink(center, STATION, Clock(T0))
    assert not up.offer({"kind": "rtd", "station": "boiler", "t": T0, "values": []})
    assert up.offer(_min_record(T0, 1)) and len(up.queue) == 1


def test_backoff_exponential_capped_jittered_and_seeded():
    a = uplink.Rng(123)
    b = uplink.Rng(123)
    da = [uplink.backoff_s(n, a, first=1, cap=60) for n in range(1, 12)]
    db = [uplink.backoff_s(n, b, first=1, cap=60) for n in range(1, 12)]
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

    up = _uplink(sleep=sleep, connect=connect)
    up.restart_notice(T0)
    for k in range(12):  # records produced while the center is unreachable
        up.offer(_min_record(T0 + 60 * k, k))

    async def go():
        task = asyncio.create_task(up.run())
        await plat.done.wait()
        while len(up.queue):
            await asyncio.sleep_ms(1)
        task.cancel()

    _run(go())
    assert attempts[0] == ("127.0.0.1", 9001) and len(attempts) == 5
    assert len(delays) == 4 and 0.5 <= delays[0] <= 1 and 4 <= delays[3] <= 8
    times = [p.get("DataTime") for p in plat.uploads()[1:]]
    assert len(times) == 12 and times == sorted(times)
    assert up.c["connect_fails"] == 4 and up.c["connects"] == 1 and up.queue.dropped == 0


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

    up = _uplink(sleep=sleep, connect=connect)
    up.offer(_min_record(T0, 5))

    async def go():
        task = asyncio.create_task(up.run())
        while not plat.uploads():
            await asyncio.sleep_ms(1)
        links[0].close()  # the center hangs up before acking
        await plat2.done.wait()
        while len(up.queue):
            await asyncio.sleep_ms(1)
        task.cancel()

    _run(go())
    assert plat.uploads()[0].get("DataTime") == plat2.uploads()[0].get("DataTime") == "20240315103000"
    assert up.c["link_down"] >= 1 and up.c["acked"] == 1
