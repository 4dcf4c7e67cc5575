"""Asyncio HJ 212 receiver: many loggers at once, every frame logged, records stored before they are
acknowledged, bad frames answered with the right QnRtn without disturbing anybody else.

In-process use (simulator, HIL tests)::

    server = PlatformServer("127.0.0.1", 0, Store(":memory:"), Registry(), center="center-a")
    await server.start()             # server.port is the bound port
    q = server.subscribe()           # every frame from now on, after its commit (ReceivedFrame)
    await server.wait_for(lambda s: s.stats["records"] >= 10, timeout=30)
    async for rx in server.request(mn, "1062", [("RtdInterval", "30")]): ...
    await server.stop()
"""

import asyncio
import time

from host_tools.platform import wire
from host_tools.platform.store import Store
from protocols import hj212

# Data uploads from a logger (Table 9); with a DataTime they become stored records.
UPLOAD_CNS = frozenset(("2011", "2021", "2031", "2041", "2051", "2061", "2081", "3015", "3019", "3020"))
# Requests the platform may send; their replies are routed back to the caller of request().
REQUEST_CNS = frozenset(hj212.PLATFORM_CNS)
NOTIFICATIONS = frozenset(("2012", "2022"))  # answered by 9013, no 9011/9012

QNRTN_CN = 8
QNRTN_CRC = 9


class ReceivedFrame:
    """One frame as received: what the store logged and what the server answered."""

    __slots__ = (
        "center",
        "peer",
        "raw",
        "received_at",
        "crc_ok",
        "packet",
        "error",
        "qn_rtn",
        "reply",
        "frame_id",
        "record_id",
        "duplicate",
        "mn",
        "cn",
        "qn",
    )

    def __init__(self, center, peer, raw, received_at):
        self.center = center
        self.peer = peer
        self.raw = raw
        self.received_at = received_at
        self.crc_ok = None
        self.packet = None  # protocols.hj212 Packet when the frame parsed
        self.error = None  # reason string when it was rejected (decoder, parser or registry)
        self.qn_rtn = None  # QnRtn sent back in a 9011, if any
        self.reply = None  # CN of the reply sent ("9014", "9011", "9013") or None
        self.frame_id = None
        self.record_id = None
        self.duplicate = False
        self.mn = self.cn = self.qn = None

    def __repr__(self):
        return "<ReceivedFrame %s cn=%s mn=%s err=%s reply=%s dup=%s>" % (
            self.center,
            self.cn,
            self.mn,
            self.error,
            self.reply,
            self.duplicate,
        )


class Connection:
    __slots__ = (
        "id",
        "peer",
        "reader",
        "writer",
        "decoder",
        "mn",
        "st",
        "pw",
        "frames",
        "bad_frames",
        "opened_at",
        "last_at",
        "latest",
        "latest_time",
        "session",
        "closing",
    )

    def __init__(self, cid, peer, reader, writer, decoder):
        self.id = cid
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self.decoder = decoder
        self.mn = self.st = self.pw = None
        self.frames = 0
        self.bad_frames = 0
        self.opened_at = self.last_at = time.time()
        self.latest = {}  # latest record's fields (bounded by one frame)
        self.latest_time = None  # its DataTime
        self.session = None  # the request() in progress on this logger, if any
        self.closing = False


class Session:
    """A platform request in flight; async-iterate it for the logger's replies (Packets)."""

    def __init__(self, server, conn, cn, qn, cp=()):
        self.server = server
        self.conn = conn
        self.mn = conn.mn
        self.cn = cn
        self.qn = qn
        self.cp = list(cp)
        self.sent = None  # the request frame as sent
        self.timeout = 10.0
        self.accepted = False  # 9011 QnRtn=1 seen
        self.queue = asyncio.Queue()
        self.result = None  # "ExeRtn=1", "QnRtn=3", "9013", "timeout", "disconnected"
        self.done = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.done:
            raise StopAsyncIteration
        try:
            packet = await asyncio.wait_for(self.queue.get(), self.timeout)
        except TimeoutError:
            self.server._end(self, "timeout")
            packet = None
        if packet is None:
            self._finish()
            raise StopAsyncIteration
        return packet

    def _finish(self):
        self.done = True
        if self.conn.session is self:
            self.conn.session = None


class Committer:
    """Group commit: frames arriving together share one SQLite commit; acks wait for it.

    After the first pending frame it lets the event loop run other ready connections (sleep(0)) while
    that still adds frames, up to `max_batch` frames or `max_delay` seconds, then commits once.
    """

    def __init__(self, store, max_batch=256, max_delay=0.05):
        self.store = store
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.commits = 0
        self._waiters = []
        self._wake = asyncio.Event()
        self._task = None

    def start(self):
        self._task = asyncio.ensure_future(self._run())

    async def stop(self):
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._commit()

    def flushed(self):
        """A future done once everything written so far is committed."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake.set()
        return fut

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            deadline = loop.time() + self.max_delay
            store = self.store
            seen = -1
            while store.pending != seen and store.pending < self.max_batch and loop.time() < deadline:
                seen = store.pending
                await asyncio.sleep(0)
            self._commit()

    def _commit(self):
        waiters, self._waiters = self._waiters, []
        try:
            self.store.commit()
            self.commits += 1
        except Exception as exc:  # disk full...: nobody gets an ack, connections report it
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


class PlatformServer:
    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        store=None,
        registry=None,
        faults=None,
        on_frame=None,
        center="platform",
        max_connections=256,
        idle_timeout=900.0,
        max_buffer=4096,
        clock=time.time,
        utc_offset_hours=8,
        auto_time_sync=True,
        log=None,
    ):
        from host_tools.platform.registry import Registry

        self.host = host
        self.port = port
        self.store = store if store is not None else Store(":memory:")
        self.registry = registry if registry is not None else Registry()
        self.faults = faults
        self.on_frame = on_frame
        self.center = center
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_buffer = max_buffer
        self.clock = clock  # epoch seconds; the simulator may pass a scaled clock
        self.utc_offset_hours = utc_offset_hours  # HJ 212 times are Beijing local time
        self.auto_time_sync = auto_time_sync  # answer 1013 with 9013 then a 1012 SystemTime
        self.log = log or (lambda msg: None)
        self.connections = {}  # id -> Connection
        self.by_mn = {}  # MN -> Connection (latest one)
        self.stats = {
            "connections": 0,
            "refused": 0,
            "frames": 0,
            "bad": 0,
            "rejected": 0,
            "records": 0,
            "duplicates": 0,
            "acks": 0,
            "errors_sent": 0,
        }
        self.committer = None
        self._server = None
        self._subscribers = []
        self._changed = None
        self._stopping = None
        self._tasks = set()
        self._handlers = set()
        self._next_id = 0
        self._qn_seq = 0

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self):
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self.committer = Committer(self.store)
        self.committer.start()
        # A small StreamReader limit bounds what one connection can make us buffer.
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=2 * self.max_buffer
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.faults is not None and self.faults.random_commands:
            self._spawn(self._random_commands())
        return self

    async def stop(self):
        """Close the listener and every connection; commits what was received."""
        if self._server is not None:
            self._server.close()
        self._stopping.set()
        for conn in list(self.connections.values()):
            conn.closing = True
            conn.writer.close()
        # Connection handlers end by themselves once their sockets are closed (cancelling them upsets
        # asyncio's stream callbacks); helper tasks are cancelled.
        handlers = [t for t in self._tasks if t in self._handlers]
        if handlers:
            await asyncio.wait(handlers, timeout=5)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self.committer is not None:
            await self.committer.stop()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- observation helpers for tests and the simulator ----------------------------------------------

    def subscribe(self, maxsize=0):
        """A queue receiving every ReceivedFrame from now on (after its commit). Unsubscribe when done."""
        q = asyncio.Queue(maxsize)
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q):
        if q in self._subscribers:
            self._subscribers.remove(q)

    async def wait_for(self, predicate, timeout=10.0):
        """Wait until predicate(server) is true; re-checked after every frame and connection change."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)

    async def _notify(self):
        async with self._changed:
            self._changed.notify_all()

    def _publish(self, rx):
        for q in self._subscribers:
            if not q.full():
                q.put_nowait(rx)
        if self.on_frame is not None:
            try:
                self.on_frame(rx)
            except Exception as exc:  # a broken observer must not take the receiver down
                self.log("on_frame callback failed: %r" % (exc,))

    # -- connections --------------------------------------------------------------------------------

    async def _accept(self, reader, writer):
        self._next_id += 1
        peername = writer.get_extra_info("peername")
        peer = "%s:%s" % (peername[0], peername[1]) if peername else "?"
        conn = Connection(self._next_id, peer, reader, writer, wire.decoder(self.max_buffer))
        if len(self.connections) >= self.max_connections or (
            self.faults is not None and not self.faults.accept(conn)
        ):
            self.stats["refused"] += 1
            self.log("refused connection from %s" % peer)
            writer.close()
            return
        task = asyncio.current_task()
        self._tasks.add(task)
        self._handlers.add(task)
        self.connections[conn.id] = conn
        self.stats["connections"] += 1
        self.log("connect %s" % peer)
        await self._notify()
        try:
            await self._serve(conn)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError) as exc:
            self.log("connection %s ended: %r" % (peer, exc))
        finally:
            self._tasks.discard(task)
            self._handlers.discard(task)
            self.connections.pop(conn.id, None)
            if conn.mn is not None and self.by_mn.get(conn.mn) is conn:
                del self.by_mn[conn.mn]
            if conn.session is not None:
                self._end(conn.session, "disconnected")
            writer.close()
            self.log("disconnect %s (%s)" % (peer, conn.mn or "no MN"))
            if self._changed is not None:
                await self._notify()

    async def _serve(self, conn):
        reader = conn.reader
        while not conn.closing:
            try:
                data = await asyncio.wait_for(reader.read(self.max_buffer), self.idle_timeout)
            except TimeoutError:
                self.log("idle timeout %s" % conn.peer)
                return
            if not data:
                leftover = [self._handle(conn, item)[0] for item in wire.flush(conn.decoder)]
                if leftover:
                    await self.committer.flushed()
                    for rx in leftover:
                        self._publish(rx)
                return
            outgoing = []
            need_commit = False
            handled = []
            for item in wire.feed(conn.decoder, data):
                rx, reply = self._handle(conn, item)
                handled.append(rx)
                need_commit = True
                if reply is not None:
                    outgoing.append(reply)
                action = self.faults.after_frame(conn) if self.faults is not None else None
                if action:
                    break
            else:
                action = None
            if need_commit:
                # No acknowledgement leaves before the frames (and records) it covers are committed.
                await self.committer.flushed()
            for rx in handled:
                self._publish(rx)
            if action == "half-open":
                await self._notify()  # what was stored is visible; then silence on this socket
                await self._stopping.wait()  # never reads or writes again until the server stops
                return
            for kind, data_out in outgoing:
                if action == "drop":
                    conn.writer.write(data_out[: len(data_out) // 2])
                    break
                await self._write(conn, data_out, kind)
            await conn.writer.drain()
            if handled:
                await self._notify()
            if action in ("close", "drop"):
                return

    async def _write(self, conn, data, kind):
        plan = self.faults.outgoing(conn, data, kind) if self.faults is not None else ((0.0, data),)
        for delay, chunk in plan:
            if delay:
                await asyncio.sleep(delay)
            conn.writer.write(chunk)

    # -- one frame ----------------------------------------------------------------------------------

    def _handle(self, conn, item):
        """Log one decoded item; returns (ReceivedFrame, (reply_cn, bytes) or None). Synchronous."""
        now = time.time()
        conn.frames += 1
        conn.last_at = now
        self.stats["frames"] += 1
        kind, raw, packet, reason, qn_rtn, header = item
        rx = ReceivedFrame(self.center, conn.peer, raw, now)
        reply = None
        if kind == "error":
            rx.crc_ok = False if reason == "crc" else None  # None: framing broke before the CRC
            rx.error = reason
            conn.bad_frames += 1
            self.stats["bad"] += 1
            if header is not None:
                rx.mn, rx.cn, rx.qn = header.mn, header.cn, header.qn
                rx.qn_rtn = qn_rtn or 100
                reply = ("9011", wire.reply(header, "9011", rx.qn_rtn))
        else:
            rx.packet = packet
            rx.crc_ok = True
            rx.mn, rx.cn, rx.qn = packet.mn, packet.cn, packet.qn
            reply = self._accept_packet(conn, rx, packet)
        if reply is not None:
            rx.reply = reply[0]
            if reply[0] == "9014":
                self.stats["acks"] += 1
            elif reply[0] == "9011":
                self.stats["errors_sent"] += 1
        rx.frame_id = self.store.add_frame(
            raw, self.center, conn.peer, rx.mn, rx.cn, rx.qn, rx.crc_ok, rx.error, rx.reply, received_at=now
        )
        if rx.error is None and rx.cn in UPLOAD_CNS:
            self._store_record(conn, rx, packet)
        return rx, reply

    def _accept_packet(self, conn, rx, packet):
        qn_rtn = self.registry.check(packet)
        if qn_rtn is not None:
            rx.error = "registry"
            rx.qn_rtn = qn_rtn
            self.stats["rejected"] += 1
            return ("9011", wire.reply(packet, "9011", qn_rtn))
        if packet.mn:
            if conn.mn != packet.mn:
                conn.mn = packet.mn
            self.by_mn[packet.mn] = conn
            if packet.st != "91":
                conn.st = packet.st
            conn.pw = packet.pw
        session = conn.session
        if session is not None and self._route(session, packet):
            # Data uploads inside a session (history recall) are still stored and acknowledged below.
            if packet.cn not in UPLOAD_CNS or not packet.get("DataTime"):
                return None
        cn = packet.cn
        if cn in UPLOAD_CNS:
            if packet.get("DataTime") is None and cn != "3019":
                rx.error = "no-datatime"
            return ("9014", wire.reply(packet, "9014")) if packet.ack_wanted else None
        if cn == "1013":
            if self.auto_time_sync and conn.session is None:
                self._spawn(self._time_sync(conn, packet))
            return ("9013", wire.reply(packet, "9013"))
        if cn.startswith("9") or cn in REQUEST_CNS:
            return None  # a late reply to a finished request: logged only
        if packet.ack_wanted:
            rx.error = "unknown-cn"
            rx.qn_rtn = QNRTN_CN
            return ("9011", wire.reply(packet, "9011", QNRTN_CN))
        return None

    def _store_record(self, conn, rx, packet):
        datatime = packet.get("DataTime")
        if datatime is None:
            return
        items = [(k, v) for k, v in wire.items(packet) if k != "DataTime"]
        rx.record_id, rx.duplicate = self.store.add_record(packet.mn, packet.cn, datatime, rx.frame_id, items)
        if rx.duplicate:
            self.stats["duplicates"] += 1
        else:
            self.stats["records"] += 1
        if conn.latest_time is None or datatime >= conn.latest_time:
            conn.latest = dict(items)
            conn.latest_time = datatime

    # -- platform requests --------------------------------------------------------------------------

    def _route(self, session, packet):
        """True when `packet` belongs to `session` (and was queued for its caller)."""
        if session.result is not None:
            return False
        cn = packet.cn
        if not (packet.qn == session.qn or (session.accepted and cn == session.cn)):
            return False
        session.queue.put_nowait(packet)
        if cn == "9011":
            rtn = packet.get("QnRtn")
            if rtn == "1":
                session.accepted = True
            else:
                self._end(session, "QnRtn=%s" % rtn)
        elif cn == "9012":
            self._end(session, "ExeRtn=%s" % packet.get("ExeRtn"))
        elif cn == "9013":
            self._end(session, "9013")
        return True

    def _end(self, session, result):
        session.result = result
        session.queue.put_nowait(None)
        if session.conn.session is session:
            session.conn.session = None  # the logger may take the next request at once
        if session.cn == "1072" and result == "ExeRtn=1":
            self.registry.set_password(session.mn, dict(session.cp).get("NewPW"))
            self.log("password of %s changed" % session.mn)

    def now_hj212(self):
        """The platform clock as HJ 212 local time 'YYYYMMDDhhmmss'."""
        t = time.gmtime(self.clock() + self.utc_offset_hours * 3600)
        return "%04d%02d%02d%02d%02d%02d" % t[:6]

    def _new_qn(self):
        t = self.clock() + self.utc_offset_hours * 3600
        tm = time.gmtime(t)
        self._qn_seq = (self._qn_seq + 1) % 1000
        # Milliseconds replaced by a sequence number so QNs of quick successive requests never collide.
        return "%04d%02d%02d%02d%02d%02d%03d" % (tm[:6] + (self._qn_seq,))

    async def send_request(self, mn, cn, cp=(), flag=5, pw=None, st=None):
        """Send a request to a connected logger; returns its Session. ValueError if not possible."""
        conn = self.by_mn.get(mn)
        if conn is None:
            raise LookupError("logger %s is not connected" % mn)
        if conn.session is not None:
            raise RuntimeError("logger %s is busy with request %s" % (mn, conn.session.cn))
        dev = self.registry.get(mn)
        pw = pw or (dev.pw if dev is not None else None) or conn.pw or "123456"
        st = st or (dev.st if dev is not None else None) or conn.st or "31"
        qn = self._new_qn()
        data = wire.request(st, cn, pw, mn, list(cp), qn, flag)
        session = Session(self, conn, cn, qn, cp)
        conn.session = session
        self.store.add_frame(data, self.center, conn.peer, mn, cn, qn, True, None, None, direction="out")
        await self.committer.flushed()
        conn.writer.write(data)
        await conn.writer.drain()
        session.sent = data
        return session

    async def request(self, mn, cn, cp=(), flag=5, timeout=10.0, pw=None, st=None):
        """Send a request; returns its Session, an async iterator over the logger's replies (9011,
        responses, data uploads, 9012). It ends after 9012, 9013, a 9011 refusal, `timeout` seconds
        without a reply (the HJ 212 OverTime) or a disconnect; `session.result` says which.
        LookupError when the logger is not connected, RuntimeError when it is busy with a request."""
        session = await self.send_request(mn, cn, cp, flag, pw, st)
        session.timeout = timeout
        return session

    async def request_all(self, mn, cn, cp=(), flag=5, timeout=10.0):
        """(result, [packets]) of one request; result as in Session.result."""
        session = await self.request(mn, cn, cp, flag, timeout)
        packets = [p async for p in session]
        return session.result, packets

    async def _time_sync(self, conn, packet):
        cp = []
        pol = packet.get("PolId")
        if pol:
            cp.append(("PolId", pol))
        cp.append(("SystemTime", self.now_hj212()))
        try:
            await self.request_all(conn.mn, "1012", cp)
        except (LookupError, RuntimeError, ConnectionError) as exc:
            self.log("time sync of %s failed: %s" % (conn.mn, exc))

    async def _random_commands(self):
        interval = self.faults.random_commands[0]
        while True:
            await asyncio.sleep(interval)
            if not self.by_mn:
                continue
            mn = self.faults.rng.choice(sorted(self.by_mn))
            picked = self.faults.pick_command()
            if picked is None:
                continue
            cn, cp = picked
            try:
                await self.request_all(mn, cn, cp)
            except (LookupError, RuntimeError, ConnectionError):
                pass

    # -- live view ----------------------------------------------------------------------------------

    def snapshot(self):
        """One dict per connection, for the live table and the admin `list` command."""
        rows = []
        for conn in sorted(self.connections.values(), key=lambda c: (c.mn or "", c.id)):
            rows.append(
                {
                    "mn": conn.mn,
                    "peer": conn.peer,
                    "frames": conn.frames,
                    "bad": conn.bad_frames,
                    "last_at": conn.last_at,
                    "opened_at": conn.opened_at,
                    "datatime": conn.latest_time,
                    "latest": dict(conn.latest),
                }
            )
        return rows
