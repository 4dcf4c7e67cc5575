"""Uplink of one station to one center over HJ 212 (TCP client).

Per (center, station) one `Uplink`: records are encoded to CP text when they arrive (`offer`) and wait in a
bounded `RecordQueue` until the center acknowledges them. Every upload has Flag A set (2017: Flag=5) and
is re-sent with the same QN when no 9014 arrives within OverTime, at most ReCount times; then the link
counts as unusable (HJ 212 section 6.2): the connection is closed and re-opened after a backoff, and the
record is sent again. Timing: OverTime and the connect timeout are I/O timeouts in REAL time (like the
Modbus response timeout); the reconnect backoff is a schedule in SIM time (a simulated 10-minute outage
sees the same attempts as a real one). The backoff is exponential, capped, jittered by a seeded PRNG.

Platform requests: a request whose ST/MN/PW/QN is wrong gets 9011 with the matching QnRtn, an unknown
CN gets 9011 QnRtn=8 (CN error), a frame with a bad CRC gets 9011 QnRtn=9 when its QN can be read.
Valid requests go to `self.commands` (app/commands.py) when one is attached, else they are logged only.
Command flows run one at a time per link in a worker task (`submit`), holding `self.lock` so no upload
is interleaved with a flow's packets; `send_acked` sends a packet of a flow and waits for its 9014/9013.
"""

import asyncio

from app import log
from app.queue import RecordQueue
from protocols import hj212

CN_FOR_KIND = {"rtd": "2011", "min": "2051", "hour": "2061", "day": "2031", "restart": "2081", "info": "3020"}
FIELDS_RTD = ("Rtd", "ZsRtd")
FIELDS_PERIOD = ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")
CONNECT_TIMEOUT_S = 10  # real seconds
# HJ 212-2017 Table 9: every CN a center may send; others get 9011 QnRtn=8 (CN error).
KNOWN_CNS = (
    "1000",
    "1011",
    "1012",
    "1013",
    "1061",
    "1062",
    "1063",
    "1064",
    "1072",
    "2011",
    "2012",
    "2021",
    "2022",
    "2031",
    "2041",
    "2051",
    "2061",
    "2081",
    "3011",
    "3012",
    "3013",
    "3014",
    "3015",
    "3016",
    "3017",
    "3018",
    "3019",
    "3020",
    "3021",
    "9011",
    "9012",
    "9013",
    "9014",
)
SYSTEM_CNS = ("9011", "9012", "9013", "9014")  # replies are never answered
BACKOFF_FIRST_S = 1  # sim seconds
BACKOFF_MAX_S = 60
READ_CHUNK = 256
MAX_PENDING_CMDS = 4


def fmt_num(v):
    """The one wire format for numbers: up to 6 significant digits, no exponent, no trailing zeros.

    6 digits keep the relative error below 1e-5 (HJ 212 `N14.2` fields allow far more than 2 decimals in
    practice); tiny Cou values (kg per minute) keep their significant digits instead of becoming 0.
    """
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        return "0"
    a = -v if v < 0 else v
    if a == 0:
        return "0"
    e = 0  # decimal exponent of a, found without math.log10 rounding surprises
    p = 1.0
    if a >= 1:
        while a >= p * 10:
            p *= 10
            e += 1
    else:
        while a < p and e > -12:
            p /= 10
            e -= 1
    decimals = 5 - e
    if decimals < 0:
        decimals = 0
    elif decimals > 17:
        decimals = 17
    s = "%.*f" % (decimals, v)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s


def _civil(days):
    """(year, month, day) of a day count since 1970-01-01 (proleptic Gregorian; no time module epoch)."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y, m, d)


def stamp(t, offset_s, ms=False):
    """`YYYYMMDDhhmmss` (plus `zzz` when ms) local time of sim epoch seconds t (UTC)."""
    lt = t + offset_s
    secs = int(lt // 1)
    days = secs // 86400
    rem = secs - days * 86400
    y, mo, d = _civil(days)
    s = "%04d%02d%02d%02d%02d%02d" % (y, mo, d, rem // 3600, rem // 60 % 60, rem % 60)
    if ms:
        s += "%03d" % int((lt - secs) * 1000)
    return s


def encode_cp(rec, offset_s):
    """CP data area of a record (see the record contract in firmware/README.md); parts joined once."""
    kind = rec["kind"]
    parts = ["DataTime=", stamp(rec["t"], offset_s)]
    if kind == "restart":
        parts.append(";RestartTime=")
        parts.append(stamp(rec["restart"], offset_s))
        return "".join(parts)
    fields = FIELDS_RTD if kind == "rtd" else FIELDS_PERIOD
    for code, vals in rec["values"]:
        parts.append(";")
        first = True
        for f in fields:
            v = vals.get(f)
            if v is None:
                continue
            if not first:
                parts.append(",")
            first = False
            parts.append("%s-%s=%s" % (code, f, fmt_num(v)))
        flag = vals.get("Flag")
        if flag:
            parts.append("%s%s-Flag=%s" % ("" if first else ",", code, flag))
    return "".join(parts)


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


class Uplink:
    def __init__(
        self, center, station, clock, utc_offset_min=480, queue_bytes=None, seed=0, sleep=None, connect=None
    ):
        """`clock()` -> sim epoch seconds; `sleep(s)` an awaitable sim-time sleep (default asyncio real);
        `connect(host, port)` -> (reader, writer) (default asyncio.open_connection)."""
        self.center = center["name"]
        self.station = station["name"]
        self.name = self.center + "/" + self.station
        self.host = center["host"]
        self.port = center["port"]
        self.mn = station["mn"]
        self.st = station["st"]
        self.pw = center["stations"][self.station]["pw"]
        self.version = center.get("version", 2017)
        self.overtime_s = center.get("overtime_s", 10)
        self.recount = center.get("recount", 3)
        self.realtime = center.get("realtime", True)
        self.clock = clock
        self.offset_s = utc_offset_min * 60
        self.sleep = sleep or asyncio.sleep
        self.connect = connect or asyncio.open_connection
        self.queue = RecordQueue(queue_bytes or center.get("queue_bytes", 16384), name=self.name)
        self.queue.on_drop = self._dropped
        self.rng = Rng(seed ^ _name_seed(self.name))
        self.flag_ack = hj212.make_flag(self.version, ack=True)
        self.flag_reply = hj212.make_flag(self.version, ack=False)
        self.connected = False
        self.c = {
            "sent": 0,
            "acked": 0,
            "resent": 0,
            "timeouts": 0,
            "connects": 0,
            "connect_fails": 0,
            "link_down": 0,
            "rx_frames": 0,
            "rx_bad": 0,
            "rx_unexpected": 0,
            "replies_9011": 0,
            "requests": 0,
        }
        self._last_qn = 0
        self._ev = asyncio.Event()
        self._await_qn = None
        self._acked = False
        self._dead = False
        self._writer = None
        self.last_ack_t = None
        self.commands = None  # app.commands.Commands, attached by the app
        self.lock = asyncio.Lock()  # held by an upload in flight or a command flow
        self.down_since = clock()  # sim time the link was last seen down (boot counts as down)
        self._cmd_ev = asyncio.Event()
        self._cmd_qn = None
        self._cmd_reply = None
        self._cmd_acked = False
        self._cmds = []  # pending command flows (async callables), run by _worker in order
        self._worker = None

    # -- records in -------------------------------------------------------------------------------------

    def offer(self, rec):
        """Queues a record of this station; rtd only when the center wants realtime data."""
        kind = rec["kind"]
        if kind == "rtd" and not self.realtime:
            return False
        cn = CN_FOR_KIND.get(kind)
        if cn is None:
            log.warn("uplink", "%s: record kind %r has no CN; ignored" % (self.name, kind))
            return False
        self.queue.put(kind, rec["t"], encode_cp(rec, self.offset_s))
        self._ev.set()
        return True

    def offer_cp(self, kind, t, cp):
        """Queues an already encoded upload (e.g. kind "info": a 3020 log line for the platform)."""
        self.queue.put(kind, t, cp)
        self._ev.set()

    def restart_notice(self, boot_t):
        """Queues the 2081 restart notice (sent first on the first connection)."""
        self.offer({"kind": "restart", "t": boot_t, "restart": boot_t})

    def _dropped(self, item):
        log.warn(
            "uplink",
            "%s: queue full, dropped %s record %s" % (self.name, item[0], stamp(item[1], self.offset_s)),
        )

    # -- packets ----------------------------------------------------------------------------------------

    def new_qn(self):
        """QN from the sim clock, `YYYYMMDDhhmmsszzz`, strictly increasing so every packet's QN is unique."""
        ms = int(self.clock() * 1000)
        if ms <= self._last_qn:
            ms = self._last_qn + 1
        self._last_qn = ms
        return stamp(ms // 1000, self.offset_s) + "%03d" % (ms % 1000)

    def packet(self, qn, cn, cp, st=None, flag=None):
        """Frame bytes; `cp` is the CP text. Header in the standard's order (Table 3), one join."""
        seg = "QN=%s;ST=%s;CN=%s;PW=%s;MN=%s;Flag=%d;CP=&&%s&&" % (
            qn,
            st or self.st,
            cn,
            self.pw,
            self.mn,
            self.flag_ack if flag is None else flag,
            cp,
        )
        return hj212.frame(seg)

    # -- connection -------------------------------------------------------------------------------------

    async def run(self):
        fails = 0
        while True:
            try:
                reader, writer = await asyncio.wait_for(self.connect(self.host, self.port), CONNECT_TIMEOUT_S)
            except Exception as exc:
                fails += 1
                self.c["connect_fails"] += 1
                delay = backoff_s(fails, self.rng)
                if fails <= 3 or fails % 10 == 0:
                    log.warn(
                        "uplink",
                        "%s: connect to %s:%d failed (%s); retry in %.1f s"
                        % (self.name, self.host, self.port, _why(exc), delay),
                    )
                await self.sleep(delay)
                continue
            fails = 0
            self.c["connects"] += 1
            self.connected = True
            log.info("uplink", "%s: connected to %s:%d" % (self.name, self.host, self.port))
            try:
                await self.session(reader, writer)
            except Exception as exc:
                log.warn("uplink", "%s: link down (%s)" % (self.name, _why(exc)))
            self.connected = False
            self.down_since = self.clock()
            self.c["link_down"] += 1
            try:
                writer.close()
                await writer.wait_closed()
            except Exception:
                pass
            await self.sleep(backoff_s(1, self.rng))

    async def session(self, reader, writer):
        """Sends the queue head by head until the link fails; returns/raises when it does."""
        self._dead = False
        self._writer = writer
        rx = asyncio.create_task(self._reader(reader))
        if self.commands is not None:
            self.commands.on_connect(self, self.clock() - self.down_since)
        try:
            while not self._dead:
                item = self.queue.head()
                if item is None:
                    self._ev.clear()
                    await self._ev.wait()
                    continue
                await self.lock.acquire()
                try:
                    ok = await self._send(item)
                finally:
                    self.lock.release()
                if not ok:
                    raise OSError("no 9014 after %d sends" % (1 + self.recount))
                self.queue.done(item)
            raise OSError("closed by the center")
        finally:
            self._writer = None
            rx.cancel()
            self._cmds = []
            if self._worker is not None:
                self._worker.cancel()
                self._worker = None

    async def _send(self, item):
        kind, t, body = item
        qn = self.new_qn()
        pkt = self.packet(qn, CN_FOR_KIND[kind], body)
        self._await_qn = qn
        self._acked = False
        try:
            for attempt in range(1 + self.recount):
                if attempt:
                    self.c["resent"] += 1
                await self._write(pkt)
                self.c["sent"] += 1
                if await self._wait_ack(self.overtime_s):
                    self.c["acked"] += 1
                    self.last_ack_t = t
                    return True
                if self._dead:
                    raise OSError("closed by the center")
                self.c["timeouts"] += 1
                log.warn(
                    "uplink",
                    "%s: no 9014 for QN=%s within %d s (send %d of %d)"
                    % (self.name, qn, self.overtime_s, attempt + 1, 1 + self.recount),
                )
            return False
        finally:
            self._await_qn = None

    async def _wait_ack(self, timeout_s):
        # OverTime is real time: the Event is set by the reader on a matching 9014 or on link loss.
        import time

        start = time.ticks_ms()
        total = int(timeout_s * 1000)
        while not self._acked and not self._dead:
            left = total - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                return False
            self._ev.clear()
            try:
                await asyncio.wait_for(self._ev.wait(), left / 1000)
            except asyncio.TimeoutError:
                return self._acked
        return self._acked

    async def _write(self, data):
        w = self._writer
        if w is None:
            raise OSError("not connected")
        w.write(data)
        await w.drain()

    async def _reader(self, reader):
        dec = hj212.StreamDecoder()
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                for item in dec.feed(data):
                    await self._handle(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warn("uplink", "%s: receive failed (%s)" % (self.name, _why(exc)))
        self._dead = True
        self._ev.set()
        self._cmd_ev.set()

    async def _handle(self, item):
        if not item.ok:
            self.c["rx_bad"] += 1
            log.warn("uplink", "%s: bad frame from center (%s)" % (self.name, item))
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
        self.c["rx_frames"] += 1
        if pkt.qn is not None and pkt.qn == self._cmd_qn and pkt.cn == self._cmd_reply and pkt.mn == self.mn:
            self._cmd_acked = True  # the 9014/9013 a command flow waits for
            self._cmd_ev.set()
            return
        if pkt.cn == hj212.CN_DATA_ACK:
            if pkt.qn == self._await_qn and pkt.mn == self.mn:
                self._acked = True
                self._ev.set()
            else:
                self.c["rx_unexpected"] += 1
                log.warn(
                    "uplink", "%s: 9014 for QN=%s MN=%s not awaited; ignored" % (self.name, pkt.qn, pkt.mn)
                )
            return
        if pkt.cn in SYSTEM_CNS:
            self.c["rx_unexpected"] += 1
            log.warn("uplink", "%s: unexpected %s QN=%s; ignored" % (self.name, pkt.cn, pkt.qn))
            return
        try:
            hj212.check_request(pkt, mn=self.mn, pw=self.pw, st=self.st, known_cns=KNOWN_CNS)
        except hj212.Hj212Error as exc:
            log.warn(
                "uplink",
                "%s: refused CN=%s QN=%s: %s (QnRtn=%d)" % (self.name, pkt.cn, pkt.qn, exc, exc.qn_rtn),
            )
            if pkt.qn:
                await self._reply_9011(pkt, exc.qn_rtn)
            return
        if self.commands is not None:
            self.c["requests"] += 1
            await self.commands.on_request(self, pkt)
            return
        self.c["rx_unexpected"] += 1
        log.info("uplink", "%s: CN=%s QN=%s not supported yet; ignored" % (self.name, pkt.cn, pkt.qn))

    # -- command flows (used by app/commands.py) ---------------------------------------------------------

    def submit(self, flow):
        """Queues `flow` (async callable, no arguments) to run after the flows before it; False if full."""
        if len(self._cmds) >= MAX_PENDING_CMDS:
            return False
        self._cmds.append(flow)
        if self._worker is None:
            self._worker = asyncio.create_task(self._run_cmds())
        return True

    async def _run_cmds(self):
        try:
            while self._cmds:
                flow = self._cmds.pop(0)
                await self.lock.acquire()
                try:
                    await flow()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warn("uplink", "%s: command flow failed (%s)" % (self.name, _why(exc)))
                finally:
                    self.lock.release()
        finally:
            self._worker = None

    async def send(self, packet):
        """Writes one Packet (a reply or response of a flow)."""
        await self._write(packet.encode())

    async def send_acked(self, cn, cp, reply_cn=hj212.CN_DATA_ACK, ack=True):
        """Sends `cp` (CP text) as CN with a new QN; with `ack` (Flag A=1) waits for `reply_cn` with that
        QN, re-sending after OverTime at most ReCount times. True when answered (or no ack wanted)."""
        qn = self.new_qn()
        pkt = self.packet(qn, cn, cp, flag=self.flag_ack if ack else self.flag_reply)
        if not ack:
            await self._write(pkt)
            return True
        self._cmd_qn = qn
        self._cmd_reply = reply_cn
        self._cmd_acked = False
        try:
            for attempt in range(1 + self.recount):
                await self._write(pkt)
                if await self._wait_cmd(self.overtime_s):
                    return True
                if self._dead:
                    return False
                log.warn("uplink", "%s: no %s for CN=%s QN=%s (send %d of %d)"
                         % (self.name, reply_cn, cn, qn, attempt + 1, 1 + self.recount))
            return False
        finally:
            self._cmd_qn = None

    async def _wait_cmd(self, timeout_s):
        import time

        start = time.ticks_ms()
        total = int(timeout_s * 1000)
        while not self._cmd_acked and not self._dead:
            left = total - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                return False
            self._cmd_ev.clear()
            try:
                await asyncio.wait_for(self._cmd_ev.wait(), left / 1000)
            except asyncio.TimeoutError:
                return self._cmd_acked
        return self._cmd_acked

    async def _reply_9011(self, req, qn_rtn):
        self.c["replies_9011"] += 1
        try:
            await self._write(hj212.reply_9011(req, qn_rtn).encode())
        except Exception as exc:
            log.warn("uplink", "%s: cannot send 9011 (%s)" % (self.name, _why(exc)))

    def snapshot(self):
        d = dict(self.c)
        d["connected"] = self.connected
        d["queue"] = len(self.queue)
        d["queue_bytes"] = self.queue.nbytes
        d["queue_high"] = self.queue.high_water
        d["dropped"] = self.queue.dropped
        return d


def _why(exc):
    s = str(exc)
    return type(exc).__name__ + (": " + s if s else "")
