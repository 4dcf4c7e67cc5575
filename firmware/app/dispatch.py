"""Frames from the center to one uplink: replies to the sender, refusals, requests to app/commands.py.

A reply the sender waits for goes to it (`Sender.on_reply`); any other 9011-9014 is counted and ignored.
A request whose ST/MN/PW/QN is wrong gets 9011 with the matching QnRtn, an unknown CN gets 9011 QnRtn=8
(CN error), a frame with a bad CRC gets 9011 QnRtn=9 when its QN can be read. Valid requests go to the
commands (`commands.on_request(up, req)`), else they are logged only. Command flows run one at a time
per link in a worker task (`submit`), holding the uplink's lock so no upload is interleaved with a flow's
packets.
"""

import asyncio

from micropython import const

from app import log
from app.link import why
from protocols import hj212

SYSTEM_CNS = ("9011", "9012", "9013", "9014")  # replies are never answered
MAX_PENDING_CMDS = const(4)


class Dispatch:
    def __init__(self, up):
        """`up` the Uplink: settings `mn`, `pw`, `st`, `name`, counters `c`, parts `tx` and `link`, its
        `lock` and `commands` (the app.commands.Commands handling valid requests, or None)."""
        self.up = up
        self._flows = []  # pending command flows (async callables), run by the worker in order
        self._worker = None

    async def handle(self, item):
        """One item decoded from the connection (a packet, or a bad frame)."""
        up = self.up
        c = up.c
        if not item.ok:
            c["rx_bad"] += 1
            log.warn("uplink", "%s: bad frame from center (%s)" % (up.name, item))
            if item.reason == "crc" and item.raw is not None:
                # The header is still readable: answer QnRtn=9 to the QN the center used.
                try:
                    req = hj212.parse_segment(bytes(item.raw[6:-6]))
                except Exception:
                    req = None
                if req is not None and req.qn and req.cn not in SYSTEM_CNS:
                    await self._reply_9011(req, item.qn_rtn)
            return
        pkt = item
        c["rx_frames"] += 1
        up.link.heard = True  # a center that answers: this connection counts as made (backoff)
        if up.tx.on_reply(pkt):
            return
        if pkt.cn in SYSTEM_CNS:
            c["rx_unexpected"] += 1
            log.warn("uplink", "%s: %s for QN=%s MN=%s not awaited; ignored" % (up.name, pkt.cn, pkt.qn, pkt.mn))
            return
        try:
            hj212.check_request(pkt, mn=up.mn, pw=up.pw, st=up.st, known_cns=hj212.PLATFORM_CNS)
        except hj212.Hj212Error as exc:
            log.warn("uplink", "%s: refused CN=%s QN=%s: %s (QnRtn=%d)" % (up.name, pkt.cn, pkt.qn, exc, exc.qn_rtn))
            if pkt.qn:
                await self._reply_9011(pkt, exc.qn_rtn)
            return
        if up.commands is not None:
            c["requests"] += 1
            await up.commands.on_request(up, pkt)
            return
        c["rx_unexpected"] += 1
        log.info("uplink", "%s: CN=%s QN=%s not supported yet; ignored" % (up.name, pkt.cn, pkt.qn))

    async def _reply_9011(self, req, qn_rtn):
        self.up.c["replies_9011"] += 1
        try:
            await self.up.link.write(hj212.reply_9011(req, qn_rtn).encode())
        except Exception as exc:
            log.warn("uplink", "%s: cannot send 9011 (%s)" % (self.up.name, why(exc)))

    # -- command flows ----------------------------------------------------------------------------------

    def submit(self, flow):
        """Queues `flow` (async callable, no arguments) to run after the flows before it; False if full."""
        if len(self._flows) >= MAX_PENDING_CMDS:
            return False
        self._flows.append(flow)
        if self._worker is None:
            self._worker = asyncio.create_task(self._run())
        return True

    def pending(self):
        return len(self._flows)

    def stop(self):
        """The connection ended: queued flows are dropped, the running one is cancelled."""
        self._flows = []
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    async def _run(self):
        lock = self.up.lock
        try:
            while self._flows:
                flow = self._flows.pop(0)
                await lock.acquire()
                try:
                    await flow()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warn("uplink", "%s: command flow failed (%s)" % (self.up.name, why(exc)))
                finally:
                    lock.release()
        finally:
            self._worker = None
