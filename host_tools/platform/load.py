"""Load generation against a platform: many lightweight HJ 212 senders and hostile connections.

Used by hil_tests/test_platform_load.py and bench/bench_platform.py. Also `ServeProcess`, which runs
`emlog platform serve` as a child process so its memory (RSS) and CPU are measured on their own.
"""

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time

from host_tools import REPO_ROOT
from protocols.hj212.host import build
from protocols.hj212.wire import StreamDecoder

FLUE_CODES = ("a21002", "a21026", "a34013", "a19001", "a00000")


def make_mn(i):
    return "3100000000000000%08X" % i


def minute_frames(mn, n, start=0, pw="123456", day="20240315", ack=True):
    """n distinct minute (2051) frames for `mn`: DataTime = day + minute number start..start+n-1."""
    out = []
    for k in range(start, start + n):
        m = k % 1440
        d = int(day) + k // 1440  # good enough for < 28 days of minutes
        dt = "%08d%02d%02d00" % (d, m // 60, m % 60)
        qn = "%08d%02d%02d%02d%03d" % (d, m // 60, m % 60, k % 60, k % 1000)
        cp = [[("DataTime", dt)]]
        for j, code in enumerate(FLUE_CODES):
            cp.append(
                [
                    (code + "-Min", "%.1f" % (j + k % 7)),
                    (code + "-Avg", "%.2f" % (j + 1 + k % 11)),
                    (code + "-Max", "%.1f" % (j + 2 + k % 13)),
                    (code + "-Flag", "N"),
                ]
            )
        out.append((qn, build("31", "2051", pw, mn, cp, qn=qn, ack=ack).encode()))
    return out


class SenderResult:
    def __init__(self, mn):
        self.mn = mn
        self.sent = 0
        self.acked = 0
        self.bad_acks = 0
        self.error = None


async def run_sender(host, port, mn, frames, window=1, timeout=30.0):
    """Send `frames` [(qn, bytes)] keeping up to `window` unacknowledged; check every 9014's QN."""
    res = SenderResult(mn)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        res.error = repr(exc)
        return res
    dec = StreamDecoder()
    pending = []
    i = 0
    try:
        while res.acked + res.bad_acks < len(frames):
            while i < len(frames) and len(pending) < window:
                qn, data = frames[i]
                writer.write(data)
                pending.append(qn)
                i += 1
                res.sent += 1
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                res.error = "closed by the platform"
                break
            for item in dec.feed(data):
                if item.ok and item.cn == "9014" and pending and item.qn == pending[0]:
                    pending.pop(0)
                    res.acked += 1
                else:
                    res.bad_acks += 1
                    if pending:
                        pending.pop(0)
    except (OSError, TimeoutError) as exc:
        res.error = repr(exc)
    finally:
        writer.close()
    return res


async def run_hostile(host, port, seed, rounds=50, valid_qn_header=True):
    """Fuzzed frames and garbage; returns the number of error replies (9011) received."""
    rng = random.Random(seed)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return 0
    replies = 0
    dec = StreamDecoder()
    base = build(
        "31",
        "2051",
        "123456",
        make_mn(0xFFFF0000 + seed),
        [[("DataTime", "20240315000000")], [("a21002-Avg", "1.0")]],
        qn="20240315000000000",
        ack=True,
    ).encode()
    try:
        for r in range(rounds):
            kind = r % 5
            if kind == 0:  # wrong CRC, header intact: must get 9011 QnRtn=9
                chunk = base[:-6] + b"%04X\r\n" % ((int(base[-6:-2], 16) + 1) % 65536)
            elif kind == 1:  # random bytes
                chunk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
            elif kind == 2:  # lying length field
                chunk = (
                    b"##%04d" % rng.randrange(10000)
                    + bytes(rng.randrange(32, 127) for _ in range(200))
                    + b"\r\n"
                )
            elif kind == 3:  # flipped byte inside a frame
                b = bytearray(base)
                b[rng.randrange(6, len(b) - 6)] ^= 1 << rng.randrange(8)
                chunk = bytes(b)
            else:  # long run without any frame end
                chunk = b"##" + b"9" * rng.randrange(100, 3000)
            writer.write(chunk)
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.05 if kind != 0 else 10)
            except TimeoutError:
                continue
            if not data:
                break
            for item in dec.feed(data):
                if item.ok and item.cn == "9011":
                    replies += 1
    except OSError:
        pass
    finally:
        writer.close()
    return replies


class FrameTap:
    """A TCP relay that sees what a logger sends to a platform: listen on 127.0.0.1 (ephemeral port),
    forward each connection to (host, port), decode both directions on the side.

    Counts, over all connections: `frames` (valid frames from the logger), `bad` (broken ones),
    `acks_wanted` (valid frames with Flag A carrying a DataTime: the uploads a platform acknowledges with
    9014), `acks` (9014 replies from the platform), and `records`: the distinct (MN, CN, DataTime) the
    logger uploaded (a re-sent record, or the parts of a split one, count once).

        tap = await FrameTap.open(host, port)      # point the logger at 127.0.0.1:tap.port
        ...; await tap.close()                     # after the logger stopped: drains, then stops
    """

    def __init__(self, host, port):
        self.host = host
        self.port = None
        self.upstream = (host, port)
        self.frames = 0
        self.bad = 0
        self.acks_wanted = 0
        self.acks = 0
        self.records = set()
        self.cns = {}
        self.connections = 0
        self._server = None
        self._tasks = set()

    @classmethod
    async def open(cls, host, port):
        tap = cls(host, port)
        tap._server = await asyncio.start_server(tap._accept, "127.0.0.1", 0)
        tap.port = tap._server.sockets[0].getsockname()[1]
        return tap

    def _accept(self, reader, writer):
        task = asyncio.ensure_future(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, c_reader, c_writer):
        self.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            c_writer.close()
            return
        up = asyncio.ensure_future(self._pipe(c_reader, s_writer, self._from_logger))
        down = asyncio.ensure_future(self._pipe(s_reader, c_writer, self._from_platform))
        try:
            await up  # the logger closed: everything it sent is forwarded, the platform sees EOF
            await asyncio.wait_for(down, 10)  # ... and answers the last frames, then closes
        except (OSError, TimeoutError):
            pass
        finally:
            for t in (up, down):
                t.cancel()
            s_writer.close()
            c_writer.close()

    async def _pipe(self, reader, writer, on_item):
        dec = StreamDecoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for item in dec.feed(data):
                    on_item(item)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass

    def _from_logger(self, item):
        if not item.ok:
            self.bad += 1
            return
        self.frames += 1
        self.cns[item.cn] = self.cns.get(item.cn, 0) + 1
        dt = item.get("DataTime")
        if dt is not None and item.ack_wanted:
            self.acks_wanted += 1
            self.records.add((item.mn, item.cn, dt))

    def _from_platform(self, item):
        if item.ok and item.cn == "9014":
            self.acks += 1

    def idle(self):
        """Every upload so far was acknowledged."""
        return self.acks >= self.acks_wanted

    async def close(self):
        if self._server is not None:
            self._server.close()  # no new connections; the open ones drain first
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=15)
        if self._server is not None:
            await self._server.wait_closed()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


class ServeProcess:
    """`emlog platform serve` in a child process on 127.0.0.1 with an ephemeral port."""

    def __init__(self, db, extra=(), cpu=None):
        self.db = str(db)
        cmd = [
            sys.executable,
            "-m",
            "host_tools.platform.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--db",
            self.db,
        ] + list(extra)
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            cmd = ["taskset", "-c", str(cpu)] + cmd
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Output to a file, not a pipe: an unread pipe would eventually block the server's prints.
        self.log_path = self.db + ".log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT)
        )
        self.port = self.admin_port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.port is None:
            with open(self.log_path) as f:
                m = re.search(r"listening on [\d.]+:(\d+).*control channel [\d.]+:(\d+)", f.read())
            if m:
                self.port, self.admin_port = int(m.group(1)), int(m.group(2))
            elif self.proc.poll() is not None:
                raise RuntimeError("serve exited: %s" % self.output())
            else:
                time.sleep(0.05)  # polling a child's startup output, not synchronising test logic
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("serve did not report its port: %s" % self.output())

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    @property
    def pid(self):
        return self.proc.pid

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def cpu_seconds(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        """SIGTERM (clean shutdown, final commit); returns the server's whole output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self._log.close()
        return self.output()
