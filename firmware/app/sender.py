"""Packets of one uplink and the one ack-wait path (HJ 212 6.2: Flag A, OverTime, ReCount).

`frames(cn, cp, flag)` is the one place packets are built: one packet, or its PNUM/PNO parts when the
data segment exceeds 1024 bytes (HJ 212-2017 C.49/C.50: each part its own QN, Flag D, DataTime repeated).
`send(qn, pkt, cn, reply_cn)` writes a packet and waits for the reply with its QN (9014 for uploads and
history records, 9013 for the 1013 request), re-sending the same packet after OverTime (REAL seconds, an
I/O timeout like the Modbus response timeout), at most ReCount times. Uploads and command flows share it:
they hold the uplink's lock, so one packet at a time waits.
"""

import asyncio
import time

from app import log
from app.clock import stamp
from protocols import hj212


def _whole_groups(cp):
    """CP groups for hj212.split without parsing the items: split only breaks between `;` groups, so
    each group is kept as one opaque item (encoded unchanged); DataTime stays a real item because every
    part repeats it. Far less heap than parse_cp (one string per group, not two per field)."""
    out = []
    for g in cp.split(";"):
        if not out and g.startswith("DataTime="):
            out.append([("DataTime", g[9:])])
        else:
            out.append([(g, None)])
    return out


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
        """[(qn, frame bytes)] of CP text `cp` sent as `cn` (Flag A set unless `flag` says otherwise):
        one packet, or its parts. Header in the standard's order (Table 3)."""
        up = self.up
        flag = self.flag_ack if flag is None else flag
        qn = self.new_qn()
        try:
            return [(qn, hj212.frame("QN=%s;ST=%s;CN=%s;PW=%s;MN=%s;Flag=%d;CP=&&%s&&"
                                     % (qn, up.st, cn, up.pw, up.mn, flag, cp)))]
        except hj212.Hj212Error as exc:
            if exc.reason != "too-long":
                raise
        parts = hj212.split(hj212.Packet(up.st, cn, up.pw, up.mn, _whole_groups(cp), qn, flag))
        out = []
        for i in range(len(parts)):
            if i:
                parts[i].qn = self.new_qn()  # unique and increasing, like every other QN of this link
            out.append((parts[i].qn, parts[i].encode()))
        up.c["split"] += 1
        return out

    async def send(self, qn, pkt, cn, reply_cn=hj212.CN_DATA_ACK):
        """Writes `pkt` and waits for `reply_cn` with `qn`; re-sends after OverTime, at most ReCount times.
        True when answered; False when never answered or the link failed meanwhile (`link.dead`)."""
        up = self.up
        c = up.c
        self._qn = qn
        self._reply = reply_cn
        self._got = False
        try:
            for attempt in range(1 + up.recount):
                if attempt:
                    c["resent"] += 1
                await self.link.write(pkt)
                c["sent"] += 1
                if await self._wait(up.overtime_s):
                    return True
                if self.link.dead:
                    return False
                c["timeouts"] += 1
                log.warn("uplink", "%s: no %s for CN=%s QN=%s within %s s (send %d of %d)"
                         % (up.name, reply_cn, cn, qn, up.overtime_s, attempt + 1, 1 + up.recount))
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
