"""Bus owner: the only code that talks on one RS-485 line (one UART).

- Exactly one transaction in flight: callers queue on an asyncio.Lock (FIFO); at most `queue_max`
  may wait, more are refused with BusBusy (a stuck bus never grows memory).
- Before every request the line must have been quiet for 3.5 characters (1.75 ms above 19200 baud)
  plus `turnaround_ms` (time for the last slave to release the line); bytes that arrived meanwhile
  (late replies, noise) are discarded and counted as `stray_bytes`.
- Response: collected by protocols.modbus.rtu.ResponseFramer until complete or `timeout_ms` (real
  time) after the request; chunked replies are fine. A bad reply (CRC, wrong address/function, byte
  count, garbage) is counted by kind, the rest of it is drained until the line is silent, and the
  request is retried up to `retries` times. An exception reply is not retried (the slave is alive).
- Offline/backoff per device: a poll whose last attempt got no byte at all takes the device offline;
  it is then probed once (no retries) after backoff_s[0] sim seconds, doubling up to backoff_s[1]. So
  a dead instrument costs its bus one timeout per backoff period; the first answer brings it back.

Counters per device (Link.c): requests, ok, timeouts, crc, exceptions, wrong_address, garbage (other
framing errors, incomplete or trailing bytes), retries, tx_bytes, rx_bytes, offline (transitions),
skipped (polls not sent while offline). Per bus (Bus.c): transactions, queue_full, stray_bytes.
"""

import asyncio
import time
from array import array

from micropython import const

from protocols.modbus import rtu
from protocols.modbus.errors import ModbusError, ModbusException

# Link counters: one array per device (wrapping at 2**32), named only when reported (state()).
_COUNTERS = ("requests", "ok", "timeouts", "crc", "exceptions", "wrong_address", "garbage", "retries",
             "tx_bytes", "rx_bytes", "offline", "skipped")
_REQUESTS = const(0)
_OK = const(1)
_TIMEOUTS = const(2)
_CRC = const(3)
_EXCEPTIONS = const(4)
_WRONG_ADDRESS = const(5)
_GARBAGE = const(6)
_RETRIES = const(7)
_TX_BYTES = const(8)
_RX_BYTES = const(9)
_OFFLINE = const(10)
_SKIPPED = const(11)


class BusTimeout(ModbusError):
    """No byte at all arrived within the response timeout."""

    reason = "timeout"


class Incomplete(ModbusError):
    """A reply started but did not complete within the response timeout."""

    reason = "incomplete"


class BusBusy(Exception):
    reason = "busy"


class Link:
    """One device's place on a bus: its address, counters and online/backoff state."""

    def __init__(self, name, address):
        self.name = name
        self.address = address
        self.c = array("I", bytes(4 * len(_COUNTERS)))
        self.online = True
        self.backoff = 0
        self.retry_at = 0  # sim time of the next probe while offline

    def state(self):
        c = self.c
        d = {"online": self.online}
        for i in range(len(_COUNTERS)):
            d[_COUNTERS[i]] = c[i]
        return d


class Bus:
    def __init__(self, name, port, timeout_ms=300, retries=1, turnaround_ms=2, backoff_s=(2, 60), queue_max=8,
                 log=None):
        self.name = name
        self.port = port
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.quiet_us = port.gap_us + turnaround_ms * 1000
        self.backoff_s = backoff_s
        self.queue_max = queue_max
        self.log = log
        self.links = []
        self.c = {"transactions": 0, "queue_full": 0, "stray_bytes": 0}
        self.rx = bytearray(64)
        self.framer = rtu.ResponseFramer()
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._last = time.ticks_us()

    def link(self, name, address):
        lk = Link(name, address)
        self.links.append(lk)
        return lk

    # -- offline state ------------------------------------------------------------------------------

    def begin(self, link, now):
        """False when the device is offline and its next probe is not due: skip this poll."""
        if link.online or now >= link.retry_at:
            return True
        link.c[_SKIPPED] += 1
        return False

    def end(self, link, ok, silent, now):
        """Result of a poll: ok, or failed with `silent` = the device sent nothing at all."""
        if ok:
            if not link.online:
                link.online = True
                link.backoff = 0
                self._say("INFO", "%s back online" % link.name)
            return
        if not silent:
            return
        if link.online:
            link.online = False
            link.c[_OFFLINE] += 1
            link.backoff = self.backoff_s[0]
            self._say("WARN", "%s not answering; offline, probing with backoff" % link.name)
        else:
            link.backoff = min(2 * link.backoff, self.backoff_s[1])
        link.retry_at = now + link.backoff

    def _say(self, level, text):
        if self.log is not None:
            self.log(level, "%s: %s" % (self.name, text))

    # -- transactions -------------------------------------------------------------------------------

    async def transact(self, link, request):
        """Sends `request` (an ADU) and returns the validated response as a memoryview.

        The view lives in the framer's buffer: decode it before the next await. Raises BusTimeout,
        Incomplete, a ModbusError (CRC, wrong address, exception reply ...) or BusBusy.
        """
        if self._waiting >= self.queue_max:
            self.c["queue_full"] += 1
            raise BusBusy("bus %s: %d transactions already waiting" % (self.name, self._waiting))
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            self.c["transactions"] += 1
            return await self._exchange(link, request)
        finally:
            self._lock.release()

    async def _exchange(self, link, request):
        c = link.c
        tries = 1 + self.retries if link.online else 1
        err = BusTimeout("%s: not sent" % link.name)
        for attempt in range(tries):
            if attempt:
                c[_RETRIES] += 1
            await self._quiet()
            stray = self.port.drain(self.rx)
            if stray:
                self.c["stray_bytes"] += stray
            self.port.write(request)
            self._last = time.ticks_us()
            c[_REQUESTS] += 1
            c[_TX_BYTES] += len(request)
            r = await self._receive(link, request)
            if not isinstance(r, Exception):
                return r
            err = r
            if isinstance(err, ModbusException):
                break
        raise err

    async def _quiet(self):
        wait = self.quiet_us - time.ticks_diff(time.ticks_us(), self._last)
        if wait > 0:
            await asyncio.sleep_ms((wait + 999) // 1000)

    async def _receive(self, link, request):
        port = self.port
        fr = self.framer
        rx = self.rx
        c = link.c
        fr.start(request)
        deadline = time.ticks_add(time.ticks_ms(), self.timeout_ms)
        got = 0
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                self._last = time.ticks_us()
                if got:
                    c[_GARBAGE] += 1
                    return Incomplete("%s: %d of a reply's bytes, then silence" % (link.name, got))
                c[_TIMEOUTS] += 1
                return BusTimeout("%s: no reply within %d ms" % (link.name, self.timeout_ms))
            n = await port.read(rx, left)
            if not n:
                continue
            got += n
            c[_RX_BYTES] += n
            st = fr.feed(rx, n)
            if st == rtu.COMPLETE:
                self._last = time.ticks_us()
                if fr.trailing:
                    c[_GARBAGE] += 1
                c[_OK] += 1
                return fr.frame
            if st == rtu.ERROR:
                err = fr.error
                r = err.reason
                c[_CRC if r == "crc" else _EXCEPTIONS if r == "exception" else
                  _WRONG_ADDRESS if r == "wrong-address" else _GARBAGE] += 1
                await self._silence(c, deadline)
                return err

    async def _silence(self, c, deadline):
        # Resynchronise: swallow the rest of a bad reply until the line is quiet (or the timeout ends).
        quiet_ms = max((self.port.gap_us + 999) // 1000, self.port.min_silence_ms)
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            n = await self.port.read(self.rx, min(quiet_ms, left) if left > 0 else 0)
            if not n:
                break
            c[_RX_BYTES] += n
        self._last = time.ticks_us()

    def state(self):
        d = dict(self.c)
        devs = {}
        for lk in self.links:
            devs[lk.name] = lk.state()
        d["devices"] = devs
        return d
