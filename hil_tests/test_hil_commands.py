"""Every `emlog platform send` command round-trips against the real firmware (MicroPython unix port, heap
HIL_HEAP) through the real platform receiver and its control channel, as a commissioning engineer would run it.

Expected flows are the standard's (HJ 212-2017 Appendix C): 9011 QnRtn=1, responses, records, 9012
ExeRtn=1 (9013 for the 2012 notification). Time calibration: the logger's clock moves to the set time,
the minute records that follow are aligned to the new local-time minute boundaries, and the change is in
the audit log (firmware log line and the 3020 log upload the platform received).
"""

import json

from hil_helpers import fast_buses, load_scenario, reference_site

from host_tools.emulators.firmware_proc import HIL_HEAP
from host_tools.platform import cli as pcli
from host_tools.platform.admin import AdminServer
from host_tools.simulate import Simulation

SCALE = 10.0
MN = "31000000123456789ABCDEF0"  # station "boiler": its minute records (1049 bytes) go in two parts
STATION = "boiler"
OFFSET_S = 8 * 3600
HEAP = HIL_HEAP  # README "Heap": the 64-bit unix port needs more than the device's 64 KiB


def _stamp(t):
    import time

    return time.strftime("%Y%m%d%H%M%S", time.gmtime(int(t) + OFFSET_S))


def _send(capsys, port, command, *args):
    argv = ["send", MN, command] + list(args) + ["--admin", "127.0.0.1:%d" % port, "--json", "--timeout", "15"]
    rc = pcli.main(argv)
    out = capsys.readouterr()
    events = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    return rc, events, out.err


def _frames(events, cn):
    return [e["frame"] for e in events if e.get("event") == "reply" and (";CN=%s;" % cn) in e.get("frame", "")]


def test_every_platform_send_command_round_trips(tmp_path, capsys):
    scn = load_scenario("reference")
    sim = Simulation(fast_buses(reference_site()), scn, tmp_path / "cmds", time_scale=SCALE, heap=HEAP, lead_s=30)
    try:
        sim.start()
        server = sim.platform.servers["national"]
        admin = sim.platform._call(AdminServer(server, "127.0.0.1", 0).start())
        fw = sim.fw
        # Boot: one link asks for time calibration (1013), the platform answers 9013 and sets the time (1012).
        assert fw.wait_for(lambda f: any("time calibration requested" in ln for ln in f.lines), 60), fw.log_tail()
        assert fw.wait_for(lambda f: any("audit: national/" in ln and "SystemTime" in ln for ln in f.lines), 30)
        # A minute record of the station exists (history below recalls it).
        assert sim.wait_for(lambda s: s.records(kind="min", station=STATION), 200 / SCALE + 60), fw.log_tail()
        assert sim.wait_for(lambda s: MN in server.by_mn and server.by_mn[MN].session is None, 30)

        last = sim.records(kind="min", station=STATION)[-1]["datatime"]
        rc, ev, err = _send(capsys, admin.port, "history", "minute", last, last)
        assert rc == 0, (ev, err)
        recs = _frames(ev, "2051")
        # one record, recalled in parts (C.49/C.50): PNUM/PNO, DataTime in every part
        assert len(recs) >= 2 and all(("DataTime=%s;" % last) in r for r in recs), ev
        assert [r.split("PNO=")[1].split(";")[0] for r in recs] == [str(i + 1) for i in range(len(recs))]
        assert all(("PNUM=%d;" % len(recs)) in r for r in recs), recs

        rc, ev, err = _send(capsys, admin.port, "time-get")
        assert rc == 0, (ev, err)
        assert "SystemTime=" in _frames(ev, "1011")[0]

        rc, ev, err = _send(capsys, admin.port, "rtd-interval", "60")
        assert rc == 0, (ev, err)
        rc, ev, err = _send(capsys, admin.port, "rtd-interval-get")
        assert rc == 0 and "RtdInterval=60" in _frames(ev, "1061")[0], ev

        # MinInterval 5, then back to 1: the acquisition realigns its minute periods (ExeRtn=1 is true)
        rc, ev, err = _send(capsys, admin.port, "min-interval", "5")
        assert rc == 0 and ev[-1].get("result") == "ExeRtn=1", (ev, err)
        rc, ev, err = _send(capsys, admin.port, "min-interval-get")
        assert rc == 0 and "MinInterval=5" in _frames(ev, "1063")[0], ev
        assert any("audit: national/%s: MinInterval 1 -> 5" % STATION in ln for ln in fw.lines)
        rc, ev, err = _send(capsys, admin.port, "min-interval", "1")
        assert rc == 0, (ev, err)
        rc, ev, err = _send(capsys, admin.port, "min-interval-get")
        assert rc == 0 and "MinInterval=1" in _frames(ev, "1063")[0], ev

        rc, ev, err = _send(capsys, admin.port, "timeouts", "9", "2")
        assert rc == 0, (ev, err)

        rc, ev, err = _send(capsys, admin.port, "history", "hour", "20200101000000", "20200101000000")
        assert rc == 1 and ev[-1].get("result") == "ExeRtn=100", ev

        rc, ev, err = _send(capsys, admin.port, "info", "a21003", "i12001")
        assert rc == 0 and "i12001-Info=0" in _frames(ev, "3020")[0], ev
        rc, ev, err = _send(capsys, admin.port, "info", "a21003", "i11001")
        assert rc == 0 and any("RtdInterval 30 -> 60" in f for f in _frames(ev, "3020")), ev

        rc, ev, err = _send(capsys, admin.port, "rtd-stop")
        assert rc == 0 and ev[-1].get("result") == "9013", ev
        rc, ev, err = _send(capsys, admin.port, "rtd-start")
        assert rc == 0, (ev, err)
        rc, ev, err = _send(capsys, admin.port, "2021")
        assert rc == 0, (ev, err)
        rc, ev, err = _send(capsys, admin.port, "2022")
        assert rc == 0 and ev[-1].get("result") == "9013", ev

        rc, ev, err = _send(capsys, admin.port, "password", "Pw2024")
        assert rc == 0, (ev, err)
        assert server.registry.get(MN).pw == "Pw2024"
        rc, ev, err = _send(capsys, admin.port, "time-get")  # the platform now uses the new password
        assert rc == 0, (ev, err)

        # Time calibration to a time 20 min 17 s ahead of the site clock.
        target = int(sim.clock.now()) + 1217
        rc, ev, err = _send(capsys, admin.port, "time-set", _stamp(target))
        assert rc == 0, (ev, err)
        assert any("audit: national/%s: SystemTime" % STATION in ln and _stamp(target) in ln for ln in fw.lines)
        rc, ev, err = _send(capsys, admin.port, "time-get")
        got = _frames(ev, "1011")[0].split("SystemTime=")[1][:14]
        assert _stamp(target) <= got <= _stamp(target + 30), (got, _stamp(target))

        def later_minutes(s):
            return [r for r in s.records(kind="min", station=STATION) if r.get("t", 0) >= target]

        assert sim.wait_for(lambda s: len(later_minutes(s)) >= 2, 200 / SCALE + 60), fw.log_tail()
        for r in later_minutes(sim):
            assert r["datatime"].endswith("00") and (r["t"] + OFFSET_S) % 60 == 0, r["datatime"]
        logs = [r for r in sim.records() if r.get("cn") == "3020" and "SystemTime" in r.get("raw", "")]
        assert any(_stamp(target) in r["raw"] for r in logs)
    finally:
        sim.stop()
    assert not sim.fw.safe_mode()
