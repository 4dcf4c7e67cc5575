"""`emlog monitor` against a pty on which the test plays the logger's console (firmware/app/console.py):
log lines `LEVEL module: text t=<s>`, a `STATS {json}` line, and replies to console commands."""

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty

import pytest

from host_tools import REPO_ROOT
from host_tools.monitor import Formatter, summarize_stats

RUN = (
    "import sys; from host_tools import cli; cli.COMMAND_MODULES[:] = ['host_tools.monitor']; "
    "sys.exit(cli.main(sys.argv[1:]))"
)

LOG = [
    "DEBUG acq: cems poll 10..21 t=1714492900",
    "INFO acq: cems answered t=1714492900",
    "WARN uplink: national: connect refused; retry in 2 s t=1714492901",
    "ERROR acq: flue: no answer (timeout 300 ms) t=1714492902",
]
STATS = {
    "t": 1714492920,
    "up_s": 120,
    "mode": "run",
    "records": {"rtd": 4, "min": 2},
    "mem_alloc": 20480,
    "mem_free": 45056,
    "heap_peak": 30720,
    "heap_peak_raw": 40000,
    "links": {"national": {"queue": 2, "dropped": 0, "connected": True, "acked": 5}},
    "centers": {"national": {"queue": 2, "dropped": 0, "connected": 1, "acked": 5}},
}
# The firmware's `status` reply: "key: value" per key, sorted (console.py).
STATUS_REPLY = ["boots: 3", "failed_boots: 0", "healthy: True", "mode: run", "uptime_s: 120"]
HELP_REPLY = ["status   mode, uptime, boot count, links, heap", "help     this list"]


class FakeLogger:
    """The logger's side of the serial console: answers commands with scripted lines."""

    def __init__(self, replies, preamble=()):
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.replies = replies  # command -> lines (None: stay silent)
        self.preamble = list(preamble)  # written right after the first command arrives
        self.received = bytearray()
        self.commands = []
        self.done = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)

    def _write(self, lines):
        os.write(self.master, "".join(ln + "\r\n" for ln in lines).encode())

    def _run(self):
        buf = b""
        while not self._stop:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self.master, 256)
            except OSError:
                continue
            self.received += data
            buf += data
            while b"\n" in buf or b"\r" in buf:
                cut = min(i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0)
                cmd = buf[:cut].decode().strip()
                buf = buf[cut + 1 :]
                if not cmd:
                    continue
                self.commands.append(cmd)
                if self.preamble:
                    self._write(self.preamble)
                    self.preamble = []
                reply = self.replies.get(cmd)
                if reply is not None:
                    self._write(reply)
                self.done.set()


def start_monitor(*argv):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", RUN, "monitor"] + list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=str(REPO_ROOT),
    )


def run_monitor(*argv):
    p = start_monitor(*argv)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def test_command_reply_log_and_stats(tmp_path):
    with FakeLogger({"status": STATUS_REPLY}, LOG + ["STATS " + json.dumps(STATS)]) as lg:
        code, out, err = run_monitor(
            "--port", lg.path, "--command", "status", "--color", "always", "--quiet", "0.3"
        )
        received = bytes(lg.received)
    assert code == 0, err
    assert received == b"status\r\n"
    lines = out.splitlines()
    for ln in STATUS_REPLY:
        assert ln in lines
    assert "\x1b[31m" + LOG[3] + "\x1b[0m" in lines  # ERROR red
    assert "\x1b[33m" + LOG[2] + "\x1b[0m" in lines  # WARN yellow
    assert LOG[1] in lines  # INFO plain
    stats = [ln for ln in lines if "STATS" in ln]
    assert len(stats) == 1 and "{" not in stats[0]
    # By hand: 120 s = 2m00s; 20480 B = 20.0 KiB of (20480 + 45056) B = 64.0 KiB; peak 30720 B = 30.0 KiB.
    for part in (
        "up 2m00s",
        "mode run",
        "records min=2 rtd=4",
        "heap 20.0/64.0 KiB (peak 30.0)",
        "national up q=2 acked=5 dropped=0",
    ):
        assert part in stats[0], stats[0]
    assert "Traceback" not in err


def test_level_filter_and_no_colour_on_a_pipe():
    with FakeLogger({"status": STATUS_REPLY}, LOG + ["STATS " + json.dumps(STATS)]) as lg:
        code, out, err = run_monitor(
            "--port", lg.path, "--command", "status", "--level", "warn", "--quiet", "0.3"
        )
    assert code == 0, err
    assert "\x1b[" not in out  # auto colour: stdout is a pipe
    lines = out.splitlines()
    assert LOG[2] in lines and LOG[3] in lines
    assert LOG[0] not in lines and LOG[1] not in lines
    assert "mode: run" in lines and any(ln.startswith("STATS ") for ln in lines)


def test_several_commands_in_order():
    with FakeLogger({"status": STATUS_REPLY, "help": HELP_REPLY}) as lg:
        code, out, err = run_monitor(
            "--port", lg.path, "--command", "status", "--command", "help", "--quiet", "0.3"
        )
        commands = list(lg.commands)
    assert code == 0, err
    assert commands == ["status", "help"]
    lines = out.splitlines()
    assert (
        lines.index("> status")
        < lines.index("mode: run")
        < lines.index("> help")
        < lines.index(HELP_REPLY[0])
    )


def test_no_reply_is_a_clear_error():
    with FakeLogger({}) as lg:
        code, out, err = run_monitor("--port", lg.path, "--command", "status", "--reply-timeout", "0.5")
        assert lg.done.wait(10)
        commands = list(lg.commands)
    assert commands == ["status"]
    assert code == 2
    assert "no reply to `status`" in err and "115200" in err and "Traceback" not in err


def test_ctrl_c_exits_cleanly():
    with FakeLogger({"status": STATUS_REPLY}) as lg:
        p = start_monitor("--port", lg.path, "--command", "status", "--seconds", "60")
        try:
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                seen.append(line.rstrip("\n"))
                if line.startswith("uptime_s:"):
                    break
            assert "uptime_s: 120" in seen
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
    assert p.returncode == 0
    assert "monitor closed" in err and "Traceback" not in err


def test_missing_port():
    code, out, err = run_monitor("--port", "/dev/ttyEMLOG-NOPE", "--seconds", "1")
    assert code == 2 and "does not exist" in err and "Traceback" not in err


# ---- formatting without a port -----------------------------------------------------------------
def test_formatter_levels():
    f = Formatter(min_level=20, color=False)
    assert f.format(LOG[0]) is None
    assert f.format(LOG[1]) == LOG[1]
    assert f.format("mode: run") == "mode: run"  # replies are never filtered
    assert f.format("WARNING is not a level: x") == "WARNING is not a level: x"
    c = Formatter(color=True)
    assert c.format("SAFE MODE: config.json missing").startswith("\x1b[31m")


@pytest.mark.parametrize("line", ["STATS {not json", "STATS [1, 2]", "STATS {}"])
def test_formatter_odd_stats_lines_do_not_crash(line):
    out = Formatter().format(line)
    assert out.startswith("STATS")


def test_final_stats_and_safe_reason():
    text = Formatter().format(
        "STATS " + json.dumps({"final": True, "mode": "safe", "safe_reason": "bad config", "up_s": 3725})
    )
    assert text.startswith("STATS (final)") and "SAFE: bad config" in text and "up 1h02m" in text
    assert summarize_stats({"links": {"a": {}}}) == "links: a down q=? acked=? dropped=?"


def test_interactive_lines_on_a_terminal_are_sent():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    term_master, term_slave = os.openpty()  # the technician's terminal, as the monitor's stdin
    with FakeLogger({"status": STATUS_REPLY}) as lg:
        p = subprocess.Popen(
            [sys.executable, "-c", RUN, "monitor", "--port", lg.path],
            stdin=term_slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(REPO_ROOT),
        )
        try:
            os.write(term_master, b"status\n")
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                seen.append(line.rstrip("\n"))
                if line.startswith("uptime_s:"):
                    break
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
            os.close(term_master)
            os.close(term_slave)
        commands = list(lg.commands)
    assert commands == ["status"]
    assert "> status" in seen and "uptime_s: 120" in seen
    assert "type a command" in err and p.returncode == 0
