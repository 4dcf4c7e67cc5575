"""PlatformServer round trips: frames from hj212.md §8 / Appendix C, dedupe, bad frames, registry,
platform requests, faults. Expected reply frames are literals from the docs or built with a CRC written
here from the standard's Appendix A text (not the code under test)."""

import asyncio
import random

import pytest
from hj212_reference import crc_appendix_a

from host_tools.platform.faults import PlatformFaults
from host_tools.platform.registry import Device, Registry
from host_tools.platform.sender import LightLogger
from host_tools.platform.server import PlatformServer
from host_tools.platform.store import Store

MN = "31000000123456789ABCDEF0"
# hj212.md §8.1 (realtime, Flag=5) and its 9014 reply.
RTD = (
    b"##0493QN=20240315103000123;ST=31;CN=2011;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&"
    b"DataTime=20240315103000;a21002-Rtd=45.6,a21002-ZsRtd=56.5,a21002-Flag=N;a21003-Rtd=28.3,"
    b"a21003-Flag=N;a21004-Rtd=2.2,a21004-Flag=N;a21026-Rtd=12.5,a21026-ZsRtd=15.5,a21026-Flag=N;"
    b"a34013-Rtd=3.2,a34013-ZsRtd=4.0,a34013-Flag=N;a19001-Rtd=8.9,a19001-Flag=N;a00000-Rtd=35.27,"
    b"a00000-Flag=N;a01011-Rtd=12.35,a01011-Flag=N;a01012-Rtd=55.2,a01012-Flag=N;a01013-Rtd=-0.215,"
    b"a01013-Flag=N;a01014-Rtd=9.8,a01014-Flag=N&&A001\r\n"
)
RTD_ACK = (
    b"##0087QN=20240315103000123;ST=91;CN=9014;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&&&AB41\r\n"
)
# §8.2 minute data and its 9014.
MINUTE = (
    b"##0638QN=20240315103000456;ST=31;CN=2051;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&"
    b"DataTime=20240315102000;a00000-Cou=21162.0,a00000-Min=34.80,a00000-Avg=35.27,a00000-Max=35.90,"
    b"a00000-Flag=N;a21002-Cou=0.965,a21002-Min=41.2,a21002-Avg=45.6,a21002-Max=50.3,a21002-ZsMin=51.1,"
    b"a21002-ZsAvg=56.5,a21002-ZsMax=62.4,a21002-Flag=N;a21026-Cou=0.265,a21026-Min=11.0,"
    b"a21026-Avg=12.5,a21026-Max=14.1,a21026-ZsAvg=15.5,a21026-Flag=N;a34013-Cou=0.068,a34013-Min=2.9,"
    b"a34013-Avg=3.2,a34013-Max=3.6,a34013-ZsAvg=4.0,a34013-Flag=N;a19001-Min=8.6,a19001-Avg=8.9,"
    b"a19001-Max=9.3,a19001-Flag=N;a01012-Min=54.8,a01012-Avg=55.2,a01012-Max=55.9,a01012-Flag=N&&"
    b"D581\r\n"
)
MINUTE_ACK = (
    b"##0087QN=20240315103000456;ST=91;CN=9014;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&&&CB81\r\n"
)
# §8.3 hour record (logger -> platform) and §8.3 "PW error" variant of 9011 for QN ...110512001.
HOUR_QN1 = "20240315110512001"
PW_ERROR_9011 = (
    b"##0094QN=20240315110512001;ST=91;CN=9011;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;"
    b"CP=&&QnRtn=3&&B8C1\r\n"
)


def std_frame(segment):
    seg = segment.encode()
    return b"##%04d%s%04X\r\n" % (len(seg), seg, crc_appendix_a(seg))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def started(tmp_path=None, **kw):
    store = Store(str(tmp_path / "p.db") if tmp_path else ":memory:")
    return await PlatformServer("127.0.0.1", 0, store, **kw).start()


async def raw_client(server):
    return await asyncio.open_connection("127.0.0.1", server.port)


def test_std_crc_reproduces_appendix_a_vector():
    seg = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;" + (
        b"CP=&&RtdInterval=30&&"
    )
    assert "%04X" % crc_appendix_a(seg) == "1C80"


def test_uploads_acked_with_9014_after_commit_and_stored(tmp_path):
    async def main():
        server = await started(tmp_path, center="center-a")
        frames = server.subscribe()
        r, w = await raw_client(server)
        w.write(RTD)
        assert await r.readline() == RTD_ACK
        w.write(MINUTE)
        assert await r.readline() == MINUTE_ACK
        rx = await frames.get()
        assert rx.center == "center-a" and rx.crc_ok is True and rx.cn == "2011" and rx.reply == "9014"
        # committed before the ack: a second connection to the same file sees it
        other = Store.open_readonly(tmp_path / "p.db")
        assert other.count("records") == 2
        w.close()
        await server.stop()
        return server

    server = run(main())
    recs = server.store.records(mn=MN)
    assert [(r[1], r[2]) for r in recs] == [("2011", "20240315103000"), ("2051", "20240315102000")]
    values = recs[1][4]
    assert (
        values["a21002-ZsMax"] == "62.4"
        and values["a00000-Cou"] == "21162.0"
        and values["a01012-Flag"] == "N"
    )
    assert "DataTime" not in values
    raws = [row[0] for row in server.store.query("SELECT raw FROM frames ORDER BY id")]
    assert raws == [RTD, MINUTE]


def test_duplicate_record_stored_once_and_still_acked():
    async def main():
        server = await started()
        r, w = await raw_client(server)
        for _ in range(3):
            w.write(MINUTE)
        for _ in range(3):
            assert await r.readline() == MINUTE_ACK
        w.close()
        await server.stop()
        return server

    server = run(main())
    assert server.store.count("records") == 1
    assert server.store.count("frames") == 3
    assert server.stats["duplicates"] == 2


def test_bad_crc_gets_9011_qnrtn_9_is_logged_and_connection_stays_usable():
    bad = RTD[:-6] + b"0000\r\n"
    expected = std_frame("QN=20240315103000123;ST=91;CN=9011;PW=123456;MN=%s;Flag=4;CP=&&QnRtn=9&&" % MN)

    async def main():
        server = await started()
        r, w = await raw_client(server)
        w.write(bad)
        assert await r.readline() == expected
        w.write(RTD)
        assert await r.readline() == RTD_ACK
        w.close()
        await server.stop()
        return server

    server = run(main())
    rows = server.store.query("SELECT crc_ok, error, reply, raw FROM frames ORDER BY id")
    assert rows[0] == (0, "crc", "9011", bad)
    assert rows[1][:3] == (1, None, "9014")
    assert server.store.count("records") == 1


def test_garbage_on_one_connection_does_not_disturb_another():
    rng = random.Random(1234)

    async def main():
        server = await started(max_buffer=2048)
        good = await LightLogger(MN).connect("127.0.0.1", server.port)
        r, w = await raw_client(server)
        acks = []
        for i in range(40):
            chunk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
            if i % 5 == 0:
                chunk = b"##" + chunk  # make the decoder try to frame it
            if i % 7 == 0:
                chunk = b"##9999" + chunk + b"\r\n"
            w.write(chunk)
            frame = good.record_frame(
                "2051", "20240315%02d%02d00" % (i // 60, i % 60), {"a21002": {"Avg": str(i), "Flag": "N"}}
            )
            acks.append(await good.upload(frame))
        w.write(b"##0010QN=1;CP=&&&&" * 200)  # a hostile flood of unframeable headers
        await server.wait_for(lambda s: s.stats["bad"] >= 40, timeout=20)
        await good.close()
        w.close()
        await server.stop()
        return server, acks

    server, acks = run(main())
    assert all(a.ok and a.cn == "9014" for a in acks)
    assert server.store.count("records") == 40
    assert server.stats["bad"] >= 40


def test_registry_unknown_mn_and_wrong_password_get_9011_and_nothing_stored():
    registry = Registry([Device(MN, "654321", "31", "2017")])
    hour = std_frame(
        "QN=%s;ST=31;CN=2061;PW=123456;MN=%s;Flag=5;CP=&&DataTime=20240315080000;"
        "a21002-Avg=45.6&&" % (HOUR_QN1, MN)
    )
    stranger = RTD.replace(b"MN=3100", b"MN=9900")
    stranger = std_frame(stranger[6:-6].decode())

    async def main():
        server = await started(registry=registry)
        r, w = await raw_client(server)
        w.write(hour)
        assert await r.readline() == PW_ERROR_9011
        w.write(stranger)
        reply = await r.readline()
        assert b"CN=9011" in reply and b"QnRtn=4&&" in reply and b"MN=9900" in reply
        w.close()
        await server.stop()
        return server

    server = run(main())
    assert server.store.count("records") == 0
    assert server.store.count("frames", "error = 'registry'") == 2
    assert server.stats["rejected"] == 2


def test_registry_accepts_registered_logger():
    registry = Registry([Device(MN, "123456", "31", "2017")])

    async def main():
        server = await started(registry=registry)
        r, w = await raw_client(server)
        w.write(RTD)
        assert await r.readline() == RTD_ACK
        w.close()
        await server.stop()

    run(main())


def test_request_flow_set_interval_and_history_recall():
    async def main():
        server = await started()
        log = LightLogger(MN)
        log.history[("2061", "20240315080000")] = [[("a21002-Avg", "45.6"), ("a21002-Flag", "N")]]
        log.history[("2061", "20240315090000")] = [[("a21002-Avg", "47.1"), ("a21002-Flag", "N")]]
        await log.connect("127.0.0.1", server.port)
        # the logger must have been seen before the platform can address it
        assert (
            await log.upload(log.record_frame("2011", "20240315100000", {"a21002": {"Rtd": "1"}}))
        ).cn == "9014"
        result, packets = await server.request_all(MN, "1062", [("RtdInterval", "30")])
        assert result == "ExeRtn=1"
        assert [p.cn for p in packets] == ["9011", "9012"]
        sent = log.requests[-1]
        assert (
            sent.cn == "1062" and sent.get("RtdInterval") == "30" and sent.flag == 5 and sent.pw == "123456"
        )
        result, packets = await server.request_all(
            MN, "2061", [("BeginTime", "20240315080000"), ("EndTime", "20240315090000")]
        )
        assert result == "ExeRtn=1"
        assert [p.cn for p in packets] == ["9011", "2061", "2061", "9012"]
        result, packets = await server.request_all(
            MN, "2061", [("BeginTime", "20230101000000"), ("EndTime", "20230101000000")]
        )
        assert result == "ExeRtn=100"
        result, _ = await server.request_all(MN, "2012")
        assert result == "9013"
        await log.close()
        await server.stop()
        return server

    server = run(main())
    recs = server.store.records(mn=MN, cn="2061")
    assert [(r[2], r[4]["a21002-Avg"]) for r in recs] == [
        ("20240315080000", "45.6"),
        ("20240315090000", "47.1"),
    ]
    assert server.store.count("frames", "direction = 'out'") == 4


def test_password_change_updates_registry_and_timeout_reported():
    registry = Registry([Device(MN, "123456", "31")])

    async def main():
        server = await started(registry=registry)
        log = await LightLogger(MN).connect("127.0.0.1", server.port)
        await log.upload(log.record_frame("2011", "20240315100000", {"a21002": {"Rtd": "1"}}))
        result, _ = await server.request_all(MN, "1072", [("NewPW", "654321")])
        assert result == "ExeRtn=1"
        assert registry.get(MN).pw == "654321"
        assert (
            await log.upload(log.record_frame("2011", "20240315100100", {"a21002": {"Rtd": "2"}}))
        ).cn == "9014"
        log.answer_requests = False  # a logger that ignores requests -> timeout, not a hang
        result, packets = await server.request_all(MN, "1061", timeout=0.3)
        assert result == "timeout" and packets == []
        with pytest.raises(LookupError):
            await server.request_all("NOSUCHMN", "1061")
        await log.close()
        await server.stop()

    run(main())


def test_time_calibration_request_gets_9013_then_1012():
    async def main():
        server = await started(clock=lambda: 1710460800.0)  # 2024-03-15 00:00:00 UTC = 08:00 Beijing
        log = LightLogger(MN)
        await log.connect("127.0.0.1", server.port)
        notice = log.packet("1013", [], ack=True, qn="20240315000500001")
        reply = await log.upload(notice.encode())
        assert reply.encode() == (
            b"##0087QN=20240315000500001;ST=91;CN=9013;PW=123456;"
            b"MN=31000000123456789ABCDEF0;Flag=4;CP=&&&&5440\r\n"
        )  # hj212.md §8.4
        await server.wait_for(lambda s: s.store.count("frames", "cn = '9012'") == 1)
        req = log.requests[-1]
        assert req.cn == "1012" and req.get("SystemTime") == "20240315080000"
        await log.close()
        await server.stop()

    run(main())


def test_faults_omit_acks_and_close_after_frames():
    async def main():
        faults = PlatformFaults(ack_omit=1.0, close_after_frames=2)
        server = await started(faults=faults)
        log = await LightLogger(MN).connect("127.0.0.1", server.port)
        log.send_raw(RTD)
        log.send_raw(MINUTE)
        assert await log.reply() is None  # no 9014 at all, then the link is closed
        await server.wait_for(lambda s: not s.connections)
        await server.stop()
        return server, faults

    server, faults = run(main())
    assert faults.count("ack-omit") == 2 and faults.count("close") == 1
    assert server.store.count("records") == 2  # stored even though the ack was "lost"


def test_faults_half_open_link_goes_silent_without_disturbing_others():
    async def main():
        faults = PlatformFaults(half_open_after=1)
        server = await started(faults=faults)
        stuck = await LightLogger(MN).connect("127.0.0.1", server.port)
        stuck.send_raw(RTD)  # stored, then the platform neither reads nor writes on this socket again
        await server.wait_for(lambda s: s.store.count("records") == 1)
        with pytest.raises(asyncio.TimeoutError):
            await stuck.reply(timeout=0.5)  # no ack, and no EOF either: the socket stays open
        assert server.connections  # still counted as connected: what a half-open socket looks like
        faults.half_open_after = None  # the next logger meets a healthy platform
        other = await LightLogger(MN).connect("127.0.0.1", server.port)  # e.g. the logger reconnecting
        reply = await other.upload(MINUTE)
        await stuck.close()
        await other.close()
        await server.stop()  # returns although the half-open handler never read again
        return faults, reply

    faults, reply = run(main())
    assert faults.count("half-open") == 1
    assert reply.encode() == MINUTE_ACK  # the other connection is served as usual


def test_faults_delayed_ack_arrives_whole_and_not_early():
    import time

    async def main():
        faults = PlatformFaults(ack_delay=0.3)
        server = await started(faults=faults)
        log = await LightLogger(MN).connect("127.0.0.1", server.port)
        t0 = time.monotonic()
        reply = await log.upload(RTD)
        waited = time.monotonic() - t0
        await log.close()
        await server.stop()
        return faults, reply, waited

    faults, reply, waited = run(main())
    assert faults.count("ack-delay") == 1
    assert reply.encode() == RTD_ACK
    assert waited >= 0.3  # asyncio.sleep never returns early: a lower bound, not a timing race


def test_faults_random_commands_reach_a_connected_logger_and_are_answered():
    async def main():
        faults = PlatformFaults(seed=1, random_commands=(0.05, [("1011", [])]))
        server = await started(faults=faults)
        log = await LightLogger(MN).connect("127.0.0.1", server.port)
        assert (await log.upload(RTD)).cn == "9014"  # known to the platform by MN from now on
        await server.wait_for(lambda s: s.store.count("frames", "cn = '1011'") >= 1)
        await log.close()
        await server.stop()
        return faults, log

    faults, log = run(main())
    assert faults.count("random-command") >= 1
    assert log.requests and log.requests[0].cn == "1011" and log.requests[0].mn == MN


def test_connection_limit_and_refusal():
    async def main():
        server = await started(max_connections=1)
        a = await LightLogger(MN).connect("127.0.0.1", server.port)
        await server.wait_for(lambda s: len(s.connections) == 1)
        b = await LightLogger("X" * 24).connect("127.0.0.1", server.port)
        assert await b.reply() is None  # closed at once
        assert (await a.upload(RTD)).cn == "9014"
        await a.close()
        await b.close()
        await server.stop()
        return server

    assert run(main()).stats["refused"] == 1


def test_faults_duplicate_garble_drop_and_live_table():
    from host_tools.platform import live

    async def main():
        faults = PlatformFaults(
            seed=3, ack_duplicate=1.0, ack_garble=1.0, close_after_frames=3, drop_mid_frame=True
        )
        server = await started(faults=faults)
        log = await LightLogger(MN).connect("127.0.0.1", server.port)
        first = await log.upload(RTD)
        second = await log.reply()
        assert not first.ok and first.reason == "crc" and not second.ok  # garbled, sent twice
        await log.upload(MINUTE)
        await log.reply()
        lines = live.render(server)
        assert MN in lines[2] and "45.6" in lines[2]  # latest NOx of the 2011 record (§8.1 value)
        log.send_raw(MINUTE)  # third frame: the server answers half a 9014 and drops the link
        tail = []
        while True:
            item = await log.reply()
            if item is None:
                break
            tail.append(item)
        await server.stop()
        return faults, tail

    faults, tail = run(main())
    assert (
        faults.count("ack-duplicate") == 2 and faults.count("ack-garble") == 2 and faults.count("drop") == 1
    )
    assert tail and not tail[-1].ok and tail[-1].reason in ("truncated", "no-crlf")  # half a reply, then EOF
