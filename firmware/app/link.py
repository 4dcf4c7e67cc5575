"""The TCP connection of one uplink to its center: connect, reconnect, the socket's two directions.

`Link.run(session, ended)` connects (CONNECT_TIMEOUT_S, REAL time), runs `session(reader, writer)` until it
ends or raises, then waits a backoff in SIM time (a simulated 10-minute outage sees the same attempts as a
real one) and connects again, forever. The backoff is exponential, capped, jittered by a seeded PRNG. It
grows over failed connects and over connections that end before one valid frame came from the center (a
refused non-blocking connect looks made until the first read); a connection that heard the center resets
it. Failures are logged sparingly (the first three of a streak, then every tenth).

While connected: `write(data)` sends, `read(reader, handle)` feeds each frame from the center to
`handle(item)` and, when the connection ends, marks the link `dead` and calls `wake()` so every waiter
(an ack wait, an idle session) sees it.
"""

import asyncio

from micropython import const

from app import log
from protocols import hj212

CONNECT_TIMEOUT_S = const(10)  # real seconds
BACKOFF_FIRST_S = const(1)  # sim seconds
BACKOFF_MAX_S = const(60)
READ_CHUNK = const(256)


class LinkDown(OSError):
    """The link is unusable for a reason this module found (its text says which)."""


def why(exc):
    if isinstance(exc, LinkDown):
        return str(exc)
    s = str(exc)
    return type(exc).__name__ + (": " + s if s else "")


class Rng:
    """xorshift32: deterministic jitter from a seed (no `random` on every port, and tests need repeats)."""

    def __init__(self, seed):
        self.s = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def uniform(self):
        return self.next() / 4294967296.0


def backoff_s(attempt, rng, first=BACKOFF_FIRST_S, cap=BACKOFF_MAX_S):
    """Delay before reconnect attempt n (1-based): first x 2^(n-1), capped, then scaled by 0.5..1."""
    d = first
    for _ in range(attempt - 1):
        d *= 2
        if d >= cap:
            d = cap
            break
    return d * (0.5 + 0.5 * rng.uniform())


def _name_seed(name):
    h = 2166136261
    for ch in name:
        h = ((h ^ ord(ch)) * 16777619) & 0xFFFFFFFF
    return h


def _worth_saying(fails):
    """Logs the first failures of a streak, then every tenth: an outage must not flood the console."""
    return fails <= 3 or fails % 10 == 0


class Link:
    def __init__(self, name, host, port, c, wake, seed=0, sleep=None, connect=None):
        """`c` the uplink's counters; `wake()` wakes the uplink's waiters; `sleep(s)` an awaitable sim-time
        sleep (default asyncio real); `connect(host, port)` -> (reader, writer) (default asyncio's)."""
        self.name = name
        self.host = host
        self.port = port
        self.c = c
        self.wake = wake
        self.sleep = sleep or asyncio.sleep
        self.connect = connect or asyncio.open_connection
        self.rng = Rng(seed ^ _name_seed(name))
        self.connected = False
        self.dead = False  # this connection failed: every waiter gives up
        self.down_why = None  # why, when this module found out (else "closed by the center")
        self.heard = False  # a valid frame came from the center on this connection
        self._writer = None

    async def run(self, session, ended):
        # Attempts in a row that did not reach a center that answers. A non-blocking connect "succeeds"
        # before the peer refuses, so a session that never received a valid frame counts as failed too:
        # the backoff grows through an outage instead of retrying every second.
        fails = 0
        while True:
            try:
                reader, writer = await asyncio.wait_for(self.connect(self.host, self.port), CONNECT_TIMEOUT_S)
            except Exception as exc:
                fails += 1
                self.c["connect_fails"] += 1
                delay = backoff_s(fails, self.rng)
                if _worth_saying(fails):
                    log.warn("uplink", "%s: connect to %s:%d failed (%s); retry in %.1f s"
                             % (self.name, self.host, self.port, why(exc), delay))
                await self.sleep(delay)
                continue
            self.c["connects"] += 1
            if _worth_saying(fails + 1):
                log.info("uplink", "%s: connected to %s:%d" % (self.name, self.host, self.port))
            reason = "closed by the center"
            try:
                await session(reader, writer)
            except Exception as exc:
                reason = why(exc)
            fails = 0 if self.heard else fails + 1
            delay = backoff_s(max(1, fails), self.rng)
            if _worth_saying(max(1, fails)):
                log.warn("uplink", "%s: link down (%s); retry in %.1f s" % (self.name, reason, delay))
            self.c["link_down"] += 1
            ended()
            try:
                writer.close()
                await writer.wait_closed()
            except Exception:
                pass
            await self.sleep(delay)

    def up(self, writer):
        """A connection is made: `writer` is where `write` goes."""
        self._writer = writer
        self.connected = True
        self.dead = False
        self.down_why = None
        self.heard = False

    def down(self):
        self._writer = None
        self.connected = False

    def check(self):
        """Raises LinkDown when this connection failed."""
        if self.dead:
            raise LinkDown(self.down_why or "closed by the center")

    async def write(self, data):
        """Writes `data` before the first await: it may be a view of the shared frame buffer (app/sender.py),
        which MicroPython's StreamWriter.write sends or copies before it returns."""
        w = self._writer
        if w is None:
            raise LinkDown("not connected")
        w.write(data)
        await w.drain()

    async def read(self, reader, handle):
        """Feeds every item decoded from `reader` to `await handle(item)` until the connection ends."""
        dec = hj212.StreamDecoder()
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                for item in dec.feed(data):
                    await handle(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.down_why = "receive failed, " + why(exc)  # said once, by run(), as the link goes down
        self.dead = True
        self.wake()
