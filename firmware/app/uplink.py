"""Uplink of one station to one center over HJ 212 (TCP client): composes the parts and runs a session.

Per (center, station) one `Uplink` (its `name` is the store link `center/station`); it holds the link's
settings (MN, ST, PW, OverTime, ReCount, realtime; platform commands change them here) and its counters
`c`, and composes
  app/link.py      the connection: connect, reconnect with backoff, write, the frame reader
  app/sender.py    packets (`frames`) and the one ack-wait path: Flag A, OverTime, ReCount
  app/backlog.py   the stored records to send next (backlog pass and live records), their acks
  app/dispatch.py  frames from the center: replies, refusals, requests to app/commands.py, command flows
  app/cp.py        records as CP text

A session sends the RAM notices first (`urgent`: the 2081 restart notice, 3020 notices of parameter
changes), then stored records. Every upload waits for its 9014; a record whose every part was answered
is acked in the store. No answer after ReCount re-sends: the link counts as unusable (HJ 212 6.2), the
connection is closed and re-opened after a backoff, and the record is sent again.
"""

import asyncio

from micropython import const

from app import log
from app.backlog import Backlog
from app.cp import CN, encode_cp, evt_cp
from app.dispatch import Dispatch
from app.link import Link, LinkDown
from app.sender import Sender
from protocols import hj212

URGENT_MAX = const(16)  # RAM notices (restart, audit logs); the oldest audit notice goes first when full


class Uplink:
    def __init__(self, center, station, clock, utc_offset_min=480, store=None, commands=None, seed=0, sleep=None,
                 connect=None):
        """`clock()` -> sim epoch seconds; `store` the app.store.Store holding this link's records (link
        name `center/station`); `commands` the app.commands.Commands serving the platform's requests (it
        applies the persisted settings of this center+station here); `sleep(s)` an awaitable sim-time
        sleep, `connect(host, port)` -> (reader, writer): see app/link.py."""
        self.center = center["name"]
        self.station = station["name"]
        self.name = self.center + "/" + self.station
        self.mn = station["mn"]
        self.st = station["st"]
        self.pw = center["stations"][self.station]["pw"]
        self.version = center.get("version", 2017)
        self.overtime_s = center.get("overtime_s", 10)
        self.recount = center.get("recount", 3)
        self.realtime = center.get("realtime", True)
        self.status = False  # 2021/2022: facility status uploads on/off
        self.rtd_since = 0  # rtd records older than this are not sent (realtime switched on later)
        self.clock = clock
        self.offset_s = utc_offset_min * 60
        self.store = store
        self.urgent = []  # (kind, cp) in RAM: 2081 restart notice, 3020 audit notices
        self.urgent_dropped = 0
        self.down_since = clock()  # sim time the link was last seen down (boot counts as down)
        self.c = {"sent": 0, "acked": 0, "resent": 0, "timeouts": 0, "connects": 0, "connect_fails": 0,
                  "link_down": 0, "rx_frames": 0, "rx_bad": 0, "rx_unexpected": 0, "replies_9011": 0,
                  "requests": 0, "split": 0, "skipped": 0, "live": 0, "backlog": 0}
        self.lock = asyncio.Lock()  # held by an upload in flight or a command flow
        self.ev = asyncio.Event()  # wakes an idle session: a record, a notice, a backlog slot, link loss
        self.link = Link(self.name, center["host"], center["port"], self.c, self._wake, seed, sleep, connect)
        self.tx = Sender(self, self.link)
        self.backlog = Backlog(store, self.name, self.c, self.ev, self._held)
        self.commands = commands
        self.dispatch = Dispatch(self)
        if commands is not None:
            commands.attach(self)

    def _wake(self):
        self.ev.set()
        self.tx.ev.set()

    # -- records in -------------------------------------------------------------------------------------

    def notify(self, ref, rec, cp=None):
        """A record of this link was just stored (`ref` from store.append): sent soon when connected. The
        link keeps its CP text, not the record: `cp` when another link of the station encoded it already
        (the same for every link: pass on what this returns, so a record is encoded once)."""
        if not self.link.connected:
            return cp  # the backlog pass after (re)connecting finds it in the store
        item = self._held(ref, rec, cp)
        self.backlog.notify(item)
        return item[3]

    def recheck(self):
        """Something was stored without `notify` (the store's own drop alarm): look at the store again."""
        self.backlog.recheck()

    def offer_cp(self, kind, cp):
        """Queues an already encoded upload in RAM (e.g. kind "info": a 3020 audit notice)."""
        if len(self.urgent) >= URGENT_MAX:
            for i in range(len(self.urgent)):
                if self.urgent[i][0] != "restart":
                    old = self.urgent.pop(i)
                    self.urgent_dropped += 1
                    log.warn("uplink", "%s: notice queue full, dropped %s %s" % (self.name, old[0], old[1][:40]))
                    break
        self.urgent.append((kind, cp))
        self.ev.set()

    def restart_notice(self, boot_t):
        """Queues the 2081 restart notice (sent first on the first connection)."""
        cp = encode_cp({"kind": "restart", "t": boot_t, "restart": boot_t}, self.offset_s)
        self.urgent.insert(0, ("restart", cp))

    def set_realtime(self, on):
        """2011/2012: realtime records are sent from now on / no longer (stored ones are skipped)."""
        if on and not self.realtime:
            self.rtd_since = int(self.clock())
        self.realtime = on
        link = self.store.links.get(self.name) if self.store is not None else None
        if on and link is not None:
            link["realtime"] = True  # route rtd to this link from now on (switching off only skips them)

    def pending(self):
        """Records waiting for this center (store) plus RAM notices."""
        return len(self.urgent) + self.backlog.count()

    def save_cursor(self):
        self.backlog.save_cursor()

    def _held(self, ref, rec, cp=None):
        """What the link keeps of a stored record until it is sent: (ref, kind, t, CP text as bytes). The
        CP text is None when the record is not for the wire (a rate-limited event, a kind without CN) or,
        for now, not for this link (`_sends`); such a record is acked unsent."""
        kind = rec["kind"]
        t = rec["t"]
        if cp is None and self._sends(kind, t) and kind in CN:
            if kind == "evt":
                data = rec.get("data")
                if not (isinstance(data, dict) and data.get("wire") == 0):  # rate-limited by the rules engine
                    cp = evt_cp(rec, self.offset_s).encode()
            else:
                cp = encode_cp(rec, self.offset_s).encode()
        return ref, kind, t, cp

    def _sends(self, kind, t):
        """False for realtime records this link does not send now: realtime off, or older than the switch-on."""
        return kind != "rtd" or (self.realtime and t >= self.rtd_since)

    # -- connection and session -------------------------------------------------------------------------

    async def run(self):
        await self.link.run(self.session, self._ended)

    def _ended(self):
        self.down_since = self.clock()
        self.save_cursor()

    async def session(self, reader, writer):
        """Sends RAM notices, then stored records (backlog and live interleaved) until the link fails."""
        link = self.link
        backlog = self.backlog
        link.up(writer)
        backlog.start()
        rx = asyncio.create_task(link.read(reader, self.dispatch.handle))
        if self.commands is not None:
            self.commands.on_connect(self, self.clock() - self.down_since)
        try:
            while not link.dead:
                if self.urgent:
                    item = self.urgent[0]
                    await self._upload(CN[item[0]], item[1])
                    if self.urgent and self.urgent[0] is item:
                        self.urgent.pop(0)
                    continue
                nxt = backlog.next_record()
                if nxt is None:
                    backlog.save_cursor()
                    self.ev.clear()  # nothing to send now: wait for a record, a notice or a slot
                    await self.ev.wait()
                    continue
                ref, kind, t, cp = nxt
                if cp is None or not self._sends(kind, t):  # checked again: realtime may be off by now
                    self.c["skipped"] += 1
                else:
                    await self._upload(CN[kind], cp)
                backlog.ack(ref)
            link.check()
        finally:
            link.down()
            backlog.stop()
            rx.cancel()
            self.dispatch.stop()

    async def _upload(self, cn, cp):
        """Sends one record (every part of it), each waiting for its 9014; raises when the link failed."""
        await self.lock.acquire()
        try:
            frames, qns = self.tx.frames(cn, cp)
            for i in range(frames.n):
                if not await self.tx.send(frames, i, qns[i]):
                    self.link.check()
                    raise LinkDown("no 9014 after %d sends" % (1 + self.recount))
        finally:
            self.lock.release()
        self.c["acked"] += 1

    # -- used by app/commands.py ------------------------------------------------------------------------

    def submit(self, flow):
        """Queues a command flow (async callable, no arguments); False when too many wait."""
        return self.dispatch.submit(flow)

    async def send(self, packet):
        """Writes one Packet (a reply or response of a flow)."""
        await self.link.write(packet.encode())

    async def send_acked(self, cn, cp, reply_cn=hj212.CN_DATA_ACK, ack=True):
        """Sends `cp` (CP text) as CN with a new QN (in parts when too long, each part its own QN); with
        `ack` (Flag A=1) waits for `reply_cn` with each part's QN, re-sending after OverTime at most ReCount
        times. True when every part was answered (or no ack wanted)."""
        tx = self.tx
        frames, qns = tx.frames(cn, cp, None if ack else tx.flag_reply)
        for i in range(frames.n):
            if not ack:
                await self.link.write(frames.frame(i, qns[i]))
            elif not await tx.send(frames, i, qns[i], reply_cn):
                return False
        return True

    def snapshot(self):
        d = dict(self.c)
        d["connected"] = self.link.connected
        d["queue"] = self.pending()
        d["urgent"] = len(self.urgent)
        d["urgent_dropped"] = self.urgent_dropped
        d["dropped"] = self.store.dropped if self.store is not None else 0
        return d
