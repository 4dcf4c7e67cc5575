"""Uplink of one station to one center over HJ 212 (TCP client).

Per (center, station) one `Uplink` (its `name` is the store link `center/station`). Records wait in the
flash store (app/store.py) until this center acknowledges them: the uplink sends `store.pending(name)` in
time order and `store.ack`s each record on its 9014. Records produced while the link is up are also
handed over at once (`notify`) and sent between backlog records (at most one live record between two
backlog records), so live data is not starved while an outage's backlog drains. The 2081 restart notice
and the 3020 audit notices of parameter changes wait in RAM (`urgent`) and go first.

Every upload has Flag A set (2017: Flag=5) and is re-sent with the same QN when no 9014 arrives within
OverTime, at most ReCount times; then the link counts as unusable (HJ 212 section 6.2): the connection
is closed and re-opened after a backoff, and the record is sent again. A record whose segment exceeds
1024 bytes is split (`hj212.split`, HJ 212-2017 C.49/C.50): Flag D, PNUM/PNO, DataTime repeated, each
part its own QN and its own 9014; the record is acked in the store once every part was acknowledged.
Timing: OverTime and the connect timeout are I/O timeouts in REAL time (like the Modbus response
timeout); the reconnect backoff is a schedule in SIM time (a simulated 10-minute outage sees the same
attempts as a real one). The backoff is exponential, capped, jittered by a seeded PRNG. It grows over
failed connects and over connections that end before one valid frame came from the center (a refused
non-blocking connect looks made until the first read); a connection that heard the center resets it.

Platform requests: a request whose ST/MN/PW/QN is wrong gets 9011 with the matching QnRtn, an unknown
CN gets 9011 QnRtn=8 (CN error), a frame with a bad CRC gets 9011 QnRtn=9 when its QN can be read.
Valid requests go to `self.commands` (app/commands.py) when one is attached, else they are logged only.
Command flows run one at a time per link in a worker task (`submit`), holding `self.lock` so no upload
is interleaved with a flow's packets; `send_acked` sends a packet of a flow and waits for its 9014/9013.
"""

import asyncio

from app import log
from protocols import hj212

CN_FOR_KIND = {"rtd": "2011", "min": "2051", "hour": "2061", "day": "2031", "restart": "2081", "info": "3020",
               "evt": "3020"}
FIELDS_RTD = ("Rtd", "ZsRtd")
FIELDS_PERIOD = ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")
CONNECT_TIMEOUT_S = 10  # real seconds
SYSTEM_CNS = ("9011", "9012", "9013", "9014")  # replies are never answered
BACKOFF_FIRST_S = 1  # sim seconds
BACKOFF_MAX_S = 60
READ_CHUNK = 256
MAX_PENDING_CMDS = 4
LIVE_MAX = 4  # live records held for interleaving (shared dicts); more wait in the store for the backlog pass
URGENT_MAX = 16  # RAM notices (restart, audit logs); the oldest audit notice goes first when full
SAVE_ACKS = 16  # acks between cursor writes while a backlog drains (a power cut re-sends at most these)
BACKLOG_SLOTS = 2  # links draining a backlog at once: each pass holds ~20 KB (decoded heads + batches)


class _Slots:
    """Shared by every uplink: at most `free` backlog passes at a time; waiting links are woken."""

    def __init__(self, n):
        self.free = n
        self.waiting = []

    def take(self, up):
        if self.free > 0:
            self.free -= 1
            return True
        if up not in self.waiting:
            self.waiting.append(up)
        return False

    def give(self):
        self.free += 1
        while self.waiting:
            self.waiting.pop(0)._ev.set()


SLOTS = _Slots(BACKLOG_SLOTS)


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


def groups_text(groups):
    """CP text of CP groups [[(key, value), ...], ...] (as `event_cp` returns them)."""
    out = []
    for g in groups:
        if out:
            out.append(";")
        first = True
        for k, v in g:
            if not first:
                out.append(",")
            first = False
            out.append(k if v is None else k + "=" + v)
    return "".join(out)


def event_text(data):
    """Log text of a stored event that did not come from the rules engine (e.g. the store's drop alarm)."""
    import json

    if data.get("alarm") == "store_drop":
        # The alarm's name first, the counts per kind as JSON last: readable, and parseable on the platform.
        return "store_drop: record store full, %d unsent records dropped since boot %s" % (
            data.get("total", 0), json.dumps(data.get("dropped") or {}))
    text = data.get("text")
    if text:
        return text
    return json.dumps(data)


def evt_cp(rec, offset_s):
    """CP text of the 3020 upload of a stored event record (rules event, or a logger alarm)."""
    from app.rules.wire import event_cp

    data = rec["data"]
    if not isinstance(data, dict):
        data = {"text": str(data)}
    if "rule" in data and "state" in data:
        ev = data
        if ev.get("t") is None:
            ev["t"] = rec["t"]
    else:
        ev = {"t": rec["t"], "state": "start" if data.get("alarm") else "event", "text": event_text(data)}
    return groups_text(event_cp(ev, offset_s))


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


def _ref_in(items, ref):
    for i in range(len(items)):
        if items[i][0] == ref:
            return i
    return -1


class Uplink:
    def __init__(self, center, station, clock, utc_offset_min=480, store=None, seed=0, sleep=None, connect=None):
        """`clock()` -> sim epoch seconds; `store` the app.store.Store holding this link's records (link
        name `center/station`); `sleep(s)` an awaitable sim-time sleep (default asyncio real);
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
        self.rtd_since = 0  # rtd records older than this are not sent (realtime switched on later)
        self.clock = clock
        self.offset_s = utc_offset_min * 60
        self.sleep = sleep or asyncio.sleep
        self.connect = connect or asyncio.open_connection
        self.store = store
        self.urgent = []  # [kind, t, cp] in RAM: 2081 restart notice, 3020 audit notices
        self.live = []  # [(ref, rec)] produced while connected, not yet sent
        self._backlog = None  # store.pending(name) generator while a backlog drains (holds a SLOTS slot)
        self._backlog_done = False  # the last backlog pass found nothing: wait for news
        self._took_live = False
        self._unsaved = 0  # acks not yet written to the cursor file
        self.urgent_dropped = 0
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
            "split": 0,
            "skipped": 0,
            "live": 0,
            "backlog": 0,
        }
        self._last_qn = 0
        self._ev = asyncio.Event()
        self._await_qn = None
        self._acked = False
        self._dead = False
        self._down_why = None
        self._heard = False
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

    def notify(self, ref, rec):
        """A record of this link was just stored (`ref` from store.append): sent soon when connected."""
        if not self.connected:
            return  # the backlog pass after (re)connecting finds it in the store
        if len(self.live) >= LIVE_MAX:
            self._backlog_done = False  # too many at once: the backlog pass sends the rest in order
        else:
            self.live.append((ref, rec))
        self._ev.set()

    def recheck(self):
        """Something was stored without `notify` (the store's own drop alarm): look at the store again."""
        self._backlog_done = False
        self._ev.set()

    def offer_cp(self, kind, t, cp):
        """Queues an already encoded upload in RAM (e.g. kind "info": a 3020 audit notice)."""
        if len(self.urgent) >= URGENT_MAX:
            for i in range(len(self.urgent)):
                if self.urgent[i][0] != "restart":
                    old = self.urgent.pop(i)
                    self.urgent_dropped += 1
                    log.warn("uplink", "%s: notice queue full, dropped %s %s" % (self.name, old[0], old[2][:40]))
                    break
        self.urgent.append([kind, t, cp])
        self._ev.set()

    def restart_notice(self, boot_t):
        """Queues the 2081 restart notice (sent first on the first connection)."""
        self.urgent.insert(0, ["restart", boot_t, encode_cp({"kind": "restart", "t": boot_t, "restart": boot_t},
                                                              self.offset_s)])

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
        n = len(self.urgent)
        if self.store is not None:
            n += self.store.pending_count(self.name)
        return n

    # -- what to send next ------------------------------------------------------------------------------

    def _wire(self, kind, rec):
        """(cn, cp text) of a stored record, or None when it is not sent on this link (then acked)."""
        if kind == "rtd":
            if not self.realtime or rec["t"] < self.rtd_since:
                return None
        elif kind == "evt":
            data = rec.get("data")
            if isinstance(data, dict) and data.get("wire") == 0:
                return None  # rate-limited on the wire by the rules engine (kept in the store)
            return "3020", evt_cp(rec, self.offset_s)
        cn = CN_FOR_KIND.get(kind)
        if cn is None:
            return None
        return cn, encode_cp(rec, self.offset_s)

    def _next_stored(self):
        """(ref, rec) to send next: live and backlog records alternate; None when nothing waits."""
        store = self.store
        while True:
            if not self._backlog_done and self._backlog is None and SLOTS.take(self):
                self._backlog = store.pending(self.name)
            backlog = self._backlog is not None  # False: drained, or waiting for a slot
            if self.live and (not self._took_live or not backlog):
                ref, rec = self.live.pop(0)
                if store.is_acked(self.name, ref):
                    continue  # sent from the backlog meanwhile
                self._took_live = True
                self.c["live"] += 1
                return ref, rec
            if not backlog:
                return None
            try:
                ref, rec = next(self._backlog)
            except StopIteration:
                self._end_backlog()
                self._backlog_done = True
                continue
            i = _ref_in(self.live, ref)
            if i >= 0:
                self.live.pop(i)
            self._took_live = False
            self.c["backlog"] += 1
            return ref, rec

    def _end_backlog(self):
        if self._backlog is not None:
            self._backlog = None
            SLOTS.give()

    def _ack(self, ref):
        if not self.store.ack(self.name, ref, sync=False):
            self._backlog_done = False  # acked-ahead set full: it stays pending and is sent again
            return
        self._unsaved += 1
        if self._unsaved >= SAVE_ACKS:
            self.save_cursor()

    def save_cursor(self):
        """Persists the acks so far (called when idle, every SAVE_ACKS acks, and at shutdown)."""
        if self._unsaved and self.store is not None:
            self._unsaved = 0
            try:
                self.store.save_cursor(self.name)
            except OSError as exc:
                log.error("uplink", "%s: cursor not saved (%s)" % (self.name, exc))

    # -- packets ----------------------------------------------------------------------------------------

    def new_qn(self):
        """QN from the sim clock, `YYYYMMDDhhmmsszzz`, strictly increasing so every packet's QN is unique."""
        ms = int(self.clock() * 1000)
        if ms <= self._last_qn:
            ms = self._last_qn + 1
        self._last_qn = ms
        return stamp(ms // 1000, self.offset_s) + "%03d" % (ms % 1000)

    def packet(self, qn, cn, cp, st=None, flag=None):
        """Frame bytes of one packet that fits a segment; `cp` is the CP text. Header in the standard's
        order (Table 3), one join. Use `frames` for anything that may need splitting."""
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

    def frames(self, cn, cp, flag=None):
        """[(qn, frame bytes)]: one packet, or its PNUM/PNO parts when the segment exceeds 1024 bytes
        (HJ 212-2017 C.49/C.50: each part its own QN, Flag D, DataTime repeated)."""
        flag = self.flag_ack if flag is None else flag
        qn = self.new_qn()
        try:
            return [(qn, self.packet(qn, cn, cp, flag=flag))]
        except hj212.Hj212Error as exc:
            if exc.reason != "too-long":
                raise
        parts = hj212.split(hj212.Packet(self.st, cn, self.pw, self.mn, _whole_groups(cp), qn, flag))
        out = []
        for i in range(len(parts)):
            if i:
                parts[i].qn = self.new_qn()  # unique and increasing, like every other QN of this link
            out.append((parts[i].qn, parts[i].encode()))
        self.c["split"] += 1
        return out

    # -- connection -------------------------------------------------------------------------------------

    async def run(self):
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
                    log.warn(
                        "uplink",
                        "%s: connect to %s:%d failed (%s); retry in %.1f s"
                        % (self.name, self.host, self.port, _why(exc), delay),
                    )
                await self.sleep(delay)
                continue
            self.c["connects"] += 1
            self.connected = True
            self._heard = False
            if _worth_saying(fails + 1):
                log.info("uplink", "%s: connected to %s:%d" % (self.name, self.host, self.port))
            why = "closed by the center"
            try:
                await self.session(reader, writer)
            except Exception as exc:
                why = _why(exc)
            fails = 0 if self._heard else fails + 1
            delay = backoff_s(max(1, fails), self.rng)
            if _worth_saying(max(1, fails)):
                log.warn("uplink", "%s: link down (%s); retry in %.1f s" % (self.name, why, delay))
            self.connected = False
            self.down_since = self.clock()
            self.c["link_down"] += 1
            self.save_cursor()
            try:
                writer.close()
                await writer.wait_closed()
            except Exception:
                pass
            await self.sleep(delay)

    async def session(self, reader, writer):
        """Sends RAM notices, then stored records (backlog and live interleaved) until the link fails."""
        self._dead = False
        self._down_why = None
        self._writer = writer
        self.connected = True
        self.live = []
        self._backlog = None
        self._backlog_done = self.store is None
        self._took_live = False
        rx = asyncio.create_task(self._reader(reader))
        if self.commands is not None:
            self.commands.on_connect(self, self.clock() - self.down_since)
        try:
            while not self._dead:
                if self.urgent:
                    item = self.urgent[0]
                    ok = await self._upload(CN_FOR_KIND[item[0]], item[2], item[1])
                    if ok and self.urgent and self.urgent[0] is item:
                        self.urgent.pop(0)
                    continue
                nxt = self._next_stored() if self.store is not None else None
                if nxt is None:
                    self.save_cursor()
                    self._ev.clear()  # nothing to send now: wait for a record, a notice or a slot
                    await self._ev.wait()
                    continue
                ref, rec = nxt
                wire = self._wire(rec["kind"], rec)
                if wire is None:
                    self.c["skipped"] += 1
                    self._ack(ref)
                    continue
                if await self._upload(wire[0], wire[1], rec["t"]):
                    self._ack(ref)
            raise LinkDown(self._down_why or "closed by the center")
        finally:
            self._writer = None
            self._end_backlog()  # a pass holds file positions and decoded records
            if self in SLOTS.waiting:
                SLOTS.waiting.remove(self)
            self.live = []
            rx.cancel()
            self._cmds = []
            if self._worker is not None:
                self._worker.cancel()
                self._worker = None

    async def _upload(self, cn, cp, t):
        """Sends one record (every part of it), each waiting for its 9014; raises when the link failed."""
        await self.lock.acquire()
        try:
            for qn, pkt in self.frames(cn, cp):
                if not await self._send(qn, pkt):
                    raise LinkDown("no 9014 after %d sends" % (1 + self.recount))
        finally:
            self.lock.release()
        self.c["acked"] += 1
        self.last_ack_t = t
        return True

    async def _send(self, qn, pkt):
        self._await_qn = qn
        self._acked = False
        try:
            for attempt in range(1 + self.recount):
                if attempt:
                    self.c["resent"] += 1
                await self._write(pkt)
                self.c["sent"] += 1
                if await self._wait_ack(self.overtime_s):
                    return True
                if self._dead:
                    raise LinkDown(self._down_why or "closed by the center")
                self.c["timeouts"] += 1
                log.warn(
                    "uplink",
                    "%s: no 9014 for QN=%s within %s s (send %d of %d)"
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
            raise LinkDown("not connected")
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
            self._down_why = "receive failed, " + _why(exc)  # said once, by run(), as the link goes down
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
        self._heard = True  # a center that answers: this connection counts as made (run() backoff)
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
            hj212.check_request(pkt, mn=self.mn, pw=self.pw, st=self.st, known_cns=hj212.PLATFORM_CNS)
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
        """Sends `cp` (CP text) as CN with a new QN (split into parts when too long, each part its own
        QN); with `ack` (Flag A=1) waits for `reply_cn` with each part's QN, re-sending after OverTime at
        most ReCount times. True when every part was answered (or no ack wanted)."""
        for qn, pkt in self.frames(cn, cp, flag=self.flag_ack if ack else self.flag_reply):
            if not ack:
                await self._write(pkt)
            elif not await self._send_cmd(qn, pkt, cn, reply_cn):
                return False
        return True

    async def _send_cmd(self, qn, pkt, cn, reply_cn):
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
        d["queue"] = self.pending()
        d["urgent"] = len(self.urgent)
        d["urgent_dropped"] = self.urgent_dropped
        d["dropped"] = self.store.dropped if self.store is not None else 0
        return d


class LinkDown(OSError):
    """The link is unusable for a reason this module found (its text says which)."""


def _worth_saying(fails):
    """Logs the first failures of a streak, then every tenth: an outage must not flood the console."""
    return fails <= 3 or fails % 10 == 0


def _why(exc):
    if isinstance(exc, LinkDown):
        return str(exc)
    s = str(exc)
    return type(exc).__name__ + (": " + s if s else "")
