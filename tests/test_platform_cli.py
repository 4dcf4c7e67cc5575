"""`emlog platform` CLI: errors without traceback, export contents, send through the control channel."""

import asyncio
import csv
import io
import json
import threading

import pytest
from test_platform_server import MINUTE, MN, RTD

from host_tools import cli
from host_tools.cli import main
from host_tools.errors import UserError
from host_tools.platform.admin import AdminServer
from host_tools.platform.cli import build_command, parse_time_arg
from host_tools.platform.sender import LightLogger
from host_tools.platform.server import PlatformServer
from host_tools.platform.store import Store


@pytest.fixture(autouse=True)
def only_platform_commands(monkeypatch):
    # other command modules are written in parallel; these tests need only ours
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["host_tools.platform.cli"])


def error_of(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_bad_listen_and_bad_db_dir_are_user_errors(capsys, tmp_path):
    assert "--listen" in error_of(
        capsys, ["platform", "serve", "--listen", "nonsense", "--db", str(tmp_path / "x.db")]
    )
    assert "--listen" in error_of(capsys, ["platform", "serve", "--listen", "1.2.3.4:99999"])
    err = error_of(
        capsys, ["platform", "serve", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "no" / "x.db")]
    )
    assert "does not exist" in err
    err = error_of(
        capsys,
        [
            "platform",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "0.0.0.0:0",
            "--db",
            str(tmp_path / "x.db"),
        ],
    )
    assert "loopback" in err


def test_bad_devices_file(capsys, tmp_path):
    bad = tmp_path / "devices.json"
    bad.write_text('{"devices": [{"mn": "A", "pw": "12"}]}')
    assert "6 characters" in error_of(
        capsys,
        [
            "platform",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            str(tmp_path / "x.db"),
            "--devices",
            str(bad),
        ],
    )
    assert "cannot read" in error_of(
        capsys,
        [
            "platform",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            str(tmp_path / "x.db"),
            "--devices",
            str(tmp_path / "none.json"),
        ],
    )
    toml = tmp_path / "devices.toml"
    toml.write_text('[[devices]]\nmn = "%s"\npw = "123456"\nst = "31"\nversion = "2017"\n' % MN)
    assert (
        main(
            [
                "platform",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--db",
                str(tmp_path / "x.db"),
                "--devices",
                str(toml),
                "--duration",
                "0.2",
            ]
        )
        == 0
    )
    assert "1 registered loggers" in capsys.readouterr().out


def test_serve_without_registry_says_commissioning_mode(capsys, tmp_path):
    assert (
        main(
            [
                "platform",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-admin",
                "--db",
                str(tmp_path / "x.db"),
                "--duration",
                "0.2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "COMMISSIONING MODE" in out and "stopped" in out
    assert (tmp_path / "x.db").exists()


def test_export_errors(capsys, tmp_path):
    assert "does not exist" in error_of(capsys, ["platform", "export", "--db", str(tmp_path / "none.db")])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    assert "not an emlog platform database" in error_of(capsys, ["platform", "export", "--db", str(junk)])
    Store(str(tmp_path / "ok.db")).close()
    assert "--from" in error_of(
        capsys, ["platform", "export", "--db", str(tmp_path / "ok.db"), "--from", "2024-13"]
    )


def _fill(db):
    async def go():
        server = await PlatformServer("127.0.0.1", 0, Store(db)).start()
        log = await LightLogger(MN).connect("127.0.0.1", server.port)
        assert (await log.upload(MINUTE)).cn == "9014"
        assert (await log.upload(RTD)).cn == "9014"
        other = LightLogger("A" * 24)
        await other.connect("127.0.0.1", server.port)
        await other.upload(other.record_frame("2051", "20240315102000", {"a21002": {"Avg": "1.0"}}))
        await log.close()
        await other.close()
        await server.stop()
        server.store.close()

    asyncio.run(go())


def test_export_csv_contents(capsys, tmp_path):
    db = str(tmp_path / "p.db")
    _fill(db)
    assert (
        main(
            [
                "platform",
                "export",
                "--db",
                db,
                "--mn",
                MN,
                "--cn",
                "2051",
                "--from",
                "20240315",
                "--to",
                "2024-03-16",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1
    row = rows[0]
    # values from hj212.md §8.2, as on the wire
    assert (row["mn"], row["cn"], row["datatime"]) == (MN, "2051", "20240315102000")
    assert row["a21002-Avg"] == "45.6" and row["a21002-ZsMax"] == "62.4" and row["a19001-Max"] == "9.3"
    assert row["a01012-Flag"] == "N" and row["a00000-Cou"] == "21162.0"
    # the time filter is half-open and other loggers are excluded
    assert main(["platform", "export", "--db", db, "--mn", MN, "--from", "20240315102001"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["cn"], r["datatime"]) for r in rows] == [("2011", "20240315103000")]
    out = tmp_path / "all.jsonl"
    assert main(["platform", "export", "--db", db, "--format", "jsonl", "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["mn"] for r in recs) == sorted(["A" * 24, MN, MN])


def test_build_command_validates_arguments():
    assert build_command("rtd-interval", ["30"]) == ("1062", [("RtdInterval", "30")])
    assert build_command("history", ["hour", "2024031508", "2024-03-15 09:00"]) == (
        "2061",
        [("BeginTime", "20240315080000"), ("EndTime", "20240315090000")],
    )
    assert build_command("1000", ["OverTime=5", "ReCount=3"]) == (
        "1000",
        [("OverTime", "5"), ("ReCount", "3")],
    )
    assert build_command("timeouts", ["5", "3"]) == ("1000", [("OverTime", "5"), ("ReCount", "3")])
    assert build_command("password", ["654321"]) == ("1072", [("NewPW", "654321")])
    for cmd, args in (
        ("rtd-interval", ["10"]),
        ("min-interval", ["7"]),
        ("password", ["12345"]),
        ("history", ["week", "20240101", "20240102"]),
        ("nope", []),
        ("1062", ["a;b=c"]),
    ):
        with pytest.raises(UserError):
            build_command(cmd, args)
    assert parse_time_arg("2024-03-15T10:30", "x") == "20240315103000"


class Background:
    """A platform server + admin channel + one emulated logger on an event loop in a thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def up(self):
        self.server = await PlatformServer("127.0.0.1", 0, Store(":memory:")).start()
        self.admin = await AdminServer(self.server, "127.0.0.1", 0).start()
        self.logger = await LightLogger(MN).connect("127.0.0.1", self.server.port)
        await self.logger.upload(RTD)

    async def down(self):
        await self.logger.close()
        await self.admin.stop()
        await self.server.stop()

    def close(self):
        self.call(self.down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_send_through_control_channel(capsys):
    bg = Background()
    try:
        bg.call(bg.up())
        admin = "127.0.0.1:%d" % bg.admin.port
        assert main(["platform", "send", MN, "rtd-interval", "60", "--admin", admin]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("> ##") and "CN=1062" in out[0] and "RtdInterval=60" in out[0]
        assert "CN=9011" in out[1] and "QnRtn=1" in out[1]
        assert "CN=9012" in out[2] and out[-1] == "result: ExeRtn=1"
        assert main(["platform", "send", MN, "time-get", "--admin", admin, "--json"]) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [e.get("cn") for e in events if e["event"] == "reply"] == ["9011", "1011", "9012"]
        assert events[2]["fields"] == {"SystemTime": "20240315120000"}
        err = error_of(capsys, ["platform", "send", "B" * 24, "rtd-interval-get", "--admin", admin])
        assert "not connected" in err
        assert main(["platform", "list", "--admin", admin]) == 0
        assert MN in capsys.readouterr().out
    finally:
        bg.close()
    assert "no emlog platform server" in error_of(
        capsys, ["platform", "send", MN, "rtd-interval-get", "--admin", "127.0.0.1:1"]
    )
