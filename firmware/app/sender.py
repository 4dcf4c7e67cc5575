"""Packets of one uplink and the one ack-wait path (HJ 212 6.2: Flag A, OverTime, ReCount).

`frames(cn, cp, flag)` is the one place packets are made: one packet, or its PNUM/PNO parts when the
data segment exceeds 1024 bytes (HJ 212-2017 C.49/C.50: each part its own QN, Flag D, DataTime repeated),
written by protocols/hj212/segment.py into one frame buffer shared by every link right before each write
(no Packet objects, no frame kept per link). `send(frames, i, qn, reply_cn)` writes a packet and waits for
the reply with its QN (9014 for uploads and history records, 9013 for the 1013 request), re-sending the
same packet after OverTime (REAL seconds, an I/O timeout like the Modbus response timeout), at most
ReCount times. Uploads and command flows share it: they hold the uplink's lock, so one packet at a time
waits.
"""

import asyncio
import time

from app import log
from app.clock import stamp
from protocols import hj212
from protocols.hj212.segment import Frames


class Sender:
    def __init__(self, up, link):
        """`up` holds the link's settings, read at each use (a platform command may change them): `st`,
        `mn`, `pw`, `overtime_s`, `recount`, `name`, `clock()`, `offset_s` and the counters `c`;
        `link` the connection (app/link.py)."""
        self.up = up
        self.link = link
        self.flag_ack = hj212.make_flag(up.version, ack=True)
        self.flag_reply = hj212.make_flag(up.version, ack=False)
        self.ev = asyncio.Event()  # set on the awaited reply, or when the link fails
        self._last_qn = 0
        self._qn = None  # QN of the packet waiting for its reply
        self._reply = None
        self._got = False

    def new_qn(self):
        """QN from the sim clock, `YYYYMMDDhhmmsszzz`, strictly increasing so every packet's QN is unique."""
        ms = int(self.up.clock() * 1000)
        if ms <= self._last_qn:
            ms = self._last_qn + 1
        self._last_qn = ms
        return stamp(ms // 1000, self.up.offset_s) + "%03d" % (ms % 1000)

    def frames(self, cn, cp, flag=None):
        """The packets of CP text `cp` (bytes or str) sent as `cn`, Flag A set unless `flag` says otherwise:
        (frames, qns), a protocols.hj212.segment.Frames of `n` packets (one, or its PNUM/PNO parts) and the
        QN of each, all taken now. A packet is written into the shared frame buffer when it is sent."""
        up = self.up
        f = Frames(up.st, cn, up.pw, up.mn, self.flag_ack if flag is None else flag, cp)
        if f.n > 1:
            up.c["split"] += 1
        return f, [self.new_qn() for _ in range(f.n)]

    async def send(self, frames, i, qn, reply_cn=hj212.CN_DATA_ACK):
        """Writes packet `i` of `frames` with `qn` and waits for `reply_cn` with `qn`; re-sends after OverTime,
        at most ReCount times. True when answered; False when never answered or the link failed meanwhile
        (`link.dead`)."""
        up = self.up
        c = up.c
        self._qn = qn
        self._reply = reply_cn
        self._got = False
        try:
            for attempt in range(1 + up.recount):
                if attempt:
                    c["resent"] += 1
                await self.link.write(frames.frame(i, qn))  # written at once: the buffer is shared
                c["sent"] += 1
                if await self._wait(up.overtime_s):
                    return True
                if self.link.dead:
                    return False
                c["timeouts"] += 1
                log.warn("uplink", "%s: no %s for CN=%s QN=%s within %s s (send %d of %d)"
                         % (up.name, reply_cn, frames.cn, qn, up.overtime_s, attempt + 1, 1 + up.recount))
            return False
        finally:
            self._qn = None

    def on_reply(self, pkt):
        """A frame from the center: True when it is the reply being waited for."""
        if pkt.qn is None or pkt.qn != self._qn or pkt.cn != self._reply or pkt.mn != self.up.mn:
            return False
        self._got = True
        self.ev.set()
        return True

    async def _wait(self, timeout_s):
        # OverTime is real time: the Event is set on the awaited reply or on link loss.
        start = time.ticks_ms()
        total = int(timeout_s * 1000)
        while not self._got and not self.link.dead:
            left = total - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                return False
            self.ev.clear()
            try:
                await asyncio.wait_for(self.ev.wait(), left / 1000)
            except asyncio.TimeoutError:
                return self._got
        return self._got
