"""Power-loss-safe record store on the device filesystem (LittleFS). Full description: firmware/STORE.md.

Layout under `root`: one directory per lane `<kind>.<station>` (station "" for site-wide events), holding
segment files `SSSSSSSSTTTTTTTT` (hex first sequence number and first record time), appended to and
rotated at `seg_bytes`; one cursor file per link `cur.<link>`. Every record is self-checking
(type, length, sequence, time, body, CRC32). Appends open, write one buffer and close, so a record is
committed (LittleFS synced) when `append` returns.
"""

import binascii
import os
import struct

try:
    from micropython import const
except ImportError:  # CPython (host tools read the record format)

    def const(x):
        return x

KINDS = ("rtd", "min", "hour", "day", "evt", "aud")
STAT_KINDS = ("rtd", "min", "hour", "day")
# Overflow: lanes of these kinds give way first (oldest segment first); hour/day/audit last.
DROP_ORDER = ("rtd", "min", "evt", "hour", "day", "aud")
FIELDS_RTD = ("Rtd", "ZsRtd")
FIELDS_PERIOD = ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")
_FLAG_BIT = const(0x80)

_HDR = const("<BHII")  # type, body length, sequence, time (epoch s)
HDR_LEN = 11
CRC_LEN = 4
_T_DATA = const(0x44)  # "D"
T_CODES = 0x43  # "C": channel codes appended to this segment's table
_MAX_BODY = const(4096)
_MAX_CODES = const(255)
_AHEAD_MAX = const(16)  # acked-ahead sequences kept per (link, lane)
_BATCH = const(8)  # records read per file open while streaming
_ENOSPC = const(28)


def _crc(hdr, body):
    return binascii.crc32(body, binascii.crc32(hdr)) & 0xFFFFFFFF


def _safe(name):
    for ch in name:
        if not (ch.isalpha() or ch.isdigit() or ch in "_-"):
            return "~" + binascii.hexlify(name.encode()).decode()
    return name


def _unsafe(name):
    if name.startswith("~"):
        return binascii.unhexlify(name[1:]).decode()
    return name


def _fields(kind):
    return FIELDS_RTD if kind == "rtd" else FIELDS_PERIOD


def encode_values(kind, values, index):
    """Body of a statistics record: per channel code index, field mask, [flag], f32 values.

    `index(code)` returns the code's table index. Floats are f32 (the ESP32 port's own float size).
    """
    fields = _fields(kind)
    parts = []
    for code, vals in values:
        mask = 0
        nums = []
        for i in range(len(fields)):
            v = vals.get(fields[i])
            if v is not None:
                mask |= 1 << i
                nums.append(v)
        flag = vals.get("Flag")
        for k in vals:
            if k != "Flag" and k not in fields:
                raise ValueError("field %s-%s cannot be stored in a %s record" % (code, k, kind))
        if flag:
            if len(flag) != 1:
                raise ValueError("flag %r of %s is not one character" % (flag, code))
            mask |= _FLAG_BIT
            parts.append(struct.pack("<BBB", index(code), mask, ord(flag)))
        else:
            parts.append(struct.pack("<BB", index(code), mask))
        if nums:
            parts.append(struct.pack("<%df" % len(nums), *nums))
    return b"".join(parts)


def decode_values(kind, body, codes):
    fields = _fields(kind)
    out = []
    off = 0
    n = len(body)
    while off < n:
        ci, mask = struct.unpack_from("<BB", body, off)
        off += 2
        vals = {}
        if mask & _FLAG_BIT:
            vals["Flag"] = chr(body[off])
            off += 1
        for i in range(len(fields)):
            if mask & (1 << i):
                vals[fields[i]] = struct.unpack_from("<f", body, off)[0]
                off += 4
        out.append([codes[ci], vals])
    return out


def _read_rec(f):
    """(type, seq, t, body) of the next record; None at a clean end; False when torn or corrupt."""
    hdr = f.read(HDR_LEN)
    if not hdr:
        return None
    if len(hdr) < HDR_LEN:
        return False
    typ, n, seq, t = struct.unpack(_HDR, hdr)
    if (typ != _T_DATA and typ != T_CODES) or n > _MAX_BODY:
        return False
    rest = f.read(n + CRC_LEN)
    if len(rest) < n + CRC_LEN:
        return False
    body = rest[:n]
    if struct.unpack("<I", rest[n:])[0] != _crc(hdr, body):
        return False
    return (typ, seq, t, body)


def _frame(typ, seq, t, body):
    hdr = struct.pack(_HDR, typ, len(body), seq, t)
    return hdr + body + struct.pack("<I", _crc(hdr, body))


def links_from_config(config):
    """The store's links for a device config: one per (center, station), named `center/station`."""
    out = []
    for c in config.get("centers", ()):
        for st in c.get("stations", {}):
            out.append({"name": c["name"] + "/" + st, "station": st, "realtime": c.get("realtime", True)})
    return out


class _Lane:
    def __init__(self, kind, station, path):
        self.kind = kind
        self.station = station
        self.path = path
        self.key = kind + "." + _safe(station)
        self.segs = []  # [first_seq, first_t, size] oldest first; the last one is appended to
        self.next_seq = 1
        self.last_t = -1
        self.codes = []  # code table of the tail segment
        self.index = {}

    def seg_path(self, seg):
        return "%s/%08x%08x" % (self.path, seg[0], seg[1])

    def last_seq(self, i):
        """Last sequence number held by segment i (first - 1 when it is empty)."""
        if i + 1 < len(self.segs):
            return self.segs[i + 1][0] - 1
        return self.next_seq - 1


class Store:
    def __init__(self, root, links=(), max_bytes=1536 * 1024, seg_bytes=8192, block=4096, on_drop=None):
        """Opens (and recovers) the store under `root`; `links`: [{"name", "station", "realtime"}].

        `max_bytes` bounds the flash footprint of all segments (each counted in whole `block`s).
        """
        self.root = root.rstrip("/")
        self.links = {}
        for ln in links:
            self.links[ln["name"]] = ln
        self.max_bytes = max_bytes
        self.seg_bytes = seg_bytes
        self.block = block
        self.lanes = {}
        self.cursors = {}  # link -> {lane key: [contig, [acked-ahead seqs]]}
        self._gen = {}
        self.drops = {}  # kind -> records dropped by the overflow policy since boot
        self.dropped = 0
        self.reclaimed = 0  # segments deleted because every link had acked them
        self.truncated = 0  # torn tail records cut at open
        self.bad = 0  # corrupt records met while reading (never served)
        self.appended = 0
        self.on_drop = on_drop  # callable(kind, n) for logging
        self._in_alarm = False
        self._open()

    # -- open / recovery ------------------------------------------------------------------------------

    def _open(self):
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        for name in os.listdir(self.root):
            p = self.root + "/" + name
            if name.startswith("cur."):
                continue  # read by _load_cursor (a cur.X.t may be the newest cursor)
            dot = name.find(".")
            if dot < 0 or name[:dot] not in KINDS:
                continue
            lane = _Lane(name[:dot], _unsafe(name[dot + 1 :]), p)
            self._load_lane(lane)
            self.lanes[lane.key] = lane
        for name in self.links:
            self.cursors[name] = self._load_cursor(name)

    def _load_lane(self, lane):
        for name in os.listdir(lane.path):
            p = lane.path + "/" + name
            if len(name) != 16:
                _remove(p)  # a truncation's temporary copy
                continue
            try:
                seg = [int(name[:8], 16), int(name[8:], 16), os.stat(p)[6]]
            except ValueError:
                continue
            lane.segs.append(seg)
        lane.segs.sort(key=lambda s: s[0])
        if lane.segs:
            self._recover_tail(lane)

    def _recover_tail(self, lane):
        """Scans the tail segment: rebuilds its code table and next sequence, truncates a torn end."""
        seg = lane.segs[-1]
        path = lane.seg_path(seg)
        lane.next_seq = seg[0]
        good = 0
        with open(path, "rb") as f:
            while True:
                r = _read_rec(f)
                if not r:
                    break
                typ, seq, t, body = r
                if seq != lane.next_seq:
                    break
                if typ == T_CODES:
                    for c in body.decode().split(","):
                        lane.index[c] = len(lane.codes)
                        lane.codes.append(c)
                else:
                    lane.next_seq += 1
                    lane.last_t = t
                good = f.tell()
        if good < seg[2]:
            self._truncate(path, good)
            self.truncated += 1
            seg[2] = good

    def _truncate(self, path, n):
        # No truncate() on MicroPython files: copy the good prefix, then rename over (atomic on LittleFS).
        tmp = path + ".t"
        buf = bytearray(256)
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            left = n
            while left > 0:
                k = src.readinto(buf)
                if not k:
                    break
                k = min(k, left)
                dst.write(memoryview(buf)[:k])
                left -= k
        os.rename(tmp, path)

    # -- cursors --------------------------------------------------------------------------------------

    def _cursor_path(self, link):
        return self.root + "/cur." + _safe(link)

    def _load_cursor(self, link):
        """The newest valid of `cur.X` and `cur.X.t` (a completed write whose rename was cut)."""
        best = None
        best_gen = -1
        for p in (self._cursor_path(link), self._cursor_path(link) + ".t"):
            try:
                with open(p) as f:
                    text = f.read()
            except OSError:
                continue
            cur = _parse_cursor(text)
            if cur is not None and cur[0] > best_gen:
                best_gen, best = cur
        self._gen[link] = best_gen + 1 if best_gen >= 0 else 1
        return best if best is not None else {}

    def save_cursor(self, link):
        """Persists a link's cursor: write `cur.X.t`, then rename it over `cur.X`."""
        cur = self.cursors[link]
        gen = self._gen[link]
        self._gen[link] = gen + 1
        parts = ["g %d\n" % gen]
        for key in cur:
            c = cur[key]
            parts.append("%s %d %s\n" % (key, c[0], ",".join([str(s) for s in c[1]]) or "-"))
        text = "".join(parts)
        text += "x %08x\n" % (binascii.crc32(text.encode()) & 0xFFFFFFFF)
        p = self._cursor_path(link)
        with open(p + ".t", "w") as f:
            f.write(text)
        os.rename(p + ".t", p)

    def _cur(self, link, lane):
        """[contig, ahead] of link on lane, moved past segments that are gone."""
        cur = self.cursors[link]
        c = cur.get(lane.key)
        if c is None:
            c = cur[lane.key] = [0, []]
        floor = (lane.segs[0][0] if lane.segs else lane.next_seq) - 1
        if c[0] < floor:
            c[0] = floor
            c[1] = [s for s in c[1] if s > floor]
        return c

    def ack(self, link, ref, sync=True):
        """Marks record `ref` (from `pending`) acknowledged by `link`; False when the acked-ahead set is full
        (the record stays pending and is sent again: never lost). `sync=False` defers `save_cursor`."""
        lane = self.lanes.get(ref[0])
        if lane is None or link not in self.cursors:
            return False
        seq = ref[1]
        c = self._cur(link, lane)
        if seq <= c[0] or seq in c[1]:
            return True
        if seq == c[0] + 1:
            c[0] = seq
            while c[0] + 1 in c[1]:
                c[1].remove(c[0] + 1)
                c[0] += 1
        elif len(c[1]) >= _AHEAD_MAX:
            return False
        else:
            c[1].append(seq)
            c[1].sort()
        if sync:
            self.save_cursor(link)
        return True

    def is_acked(self, link, ref):
        lane = self.lanes.get(ref[0])
        if lane is None:
            return True
        c = self._cur(link, lane)
        return ref[1] <= c[0] or ref[1] in c[1]

    # -- routing --------------------------------------------------------------------------------------

    def _subscribed(self, lane, link):
        ln = self.links[link]
        if lane.kind == "aud":
            return False
        if lane.station != "" and lane.station != ln["station"]:
            return False
        return lane.kind != "rtd" or ln.get("realtime", True)

    def _lanes_of(self, link, kind=None):
        out = []
        for key in self.lanes:
            lane = self.lanes[key]
            if (kind is None or lane.kind == kind) and self._subscribed(lane, link):
                out.append(lane)
        return out

    # -- append ---------------------------------------------------------------------------------------

    def append(self, rec, _retry=False):
        """Stores a record durably; returns its ref `(lane key, seq)`.

        Statistics: {"kind": rtd|min|hour|day, "station", "t", "values": [[code, {field: value, "Flag"}]]}.
        Events/audit: {"kind": evt|aud, "station" (optional, "" = site-wide), "t", "data": JSON value}.
        """
        import json

        kind = rec["kind"]
        if kind not in KINDS:
            raise ValueError("unknown record kind %r" % kind)
        station = rec.get("station") or ""
        t = int(rec["t"])
        lane = self._lane(kind, station)
        new_codes = []
        if kind in STAT_KINDS:
            values = rec["values"]
            for code, _ in values:
                if code not in lane.index and code not in new_codes:
                    new_codes.append(code)
        else:
            body = json.dumps(rec.get("data")).encode()
        tail = lane.segs[-1] if lane.segs else None
        if (
            tail is None
            or tail[2] >= self.seg_bytes
            or t < lane.last_t
            or (tail[2] == 0 and tail[1] != t)
            or len(lane.codes) + len(new_codes) > _MAX_CODES
        ):
            tail = self._roll(lane, t)
            new_codes = []
            if kind in STAT_KINDS:
                for code, _ in values:
                    if code not in new_codes:
                        new_codes.append(code)
        codes = lane.codes + new_codes
        if kind in STAT_KINDS:
            tmp = {}
            for i in range(len(codes)):
                tmp[codes[i]] = i
            body = encode_values(kind, values, tmp.__getitem__)
        if len(body) > _MAX_BODY:
            raise ValueError("record too large (%d bytes)" % len(body))
        seq = lane.next_seq
        parts = []
        if new_codes:
            parts.append(_frame(T_CODES, seq, t, ",".join(new_codes).encode()))
        parts.append(_frame(_T_DATA, seq, t, body))
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        self._make_room(self._footprint(tail[2] + len(data)) - self._footprint(tail[2]), lane)
        if lane.segs[-1] is not tail:
            return self.append(rec, _retry)  # the overflow policy replaced this lane's tail
        path = lane.seg_path(tail)
        try:
            self._write(path, data)
        except OSError as exc:
            self._restore(path, tail[2])
            if exc.args[0] != _ENOSPC or _retry:
                raise
            self._make_room(0, lane, force=2)  # the filesystem filled before our budget did
            return self.append(rec, True)
        tail[2] += len(data)
        for c in new_codes:
            lane.index[c] = len(lane.codes)
            lane.codes.append(c)
        lane.next_seq = seq + 1
        lane.last_t = t
        self.appended += 1
        self._alarm(t)
        return (lane.key, seq)

    def _write(self, path, data):
        with open(path, "ab") as f:
            f.write(data)

    def _restore(self, path, size):
        """After a failed append: cut a partly written record (possible on non-LittleFS filesystems)."""
        try:
            if os.stat(path)[6] > size:
                self._truncate(path, size)
        except OSError:
            pass

    def _lane(self, kind, station):
        key = kind + "." + _safe(station)
        lane = self.lanes.get(key)
        if lane is None:
            lane = _Lane(kind, station, self.root + "/" + key)
            try:
                os.mkdir(lane.path)
            except OSError:
                pass
            self.lanes[key] = lane
        return lane

    def _roll(self, lane, t):
        """Starts a new (empty) segment at the lane's next sequence."""
        seg = [lane.next_seq, t if t > 0 else 0, 0]
        if lane.segs and lane.segs[-1][0] == seg[0]:
            # The tail holds no record yet: rename it instead of keeping two segments with one first seq.
            old = lane.segs[-1]
            if old[1] != seg[1]:
                os.rename(lane.seg_path(old), lane.seg_path(seg))
            lane.segs[-1] = seg
        else:
            with open(lane.seg_path(seg), "wb"):
                pass
            lane.segs.append(seg)
        lane.codes = []
        lane.index = {}
        return seg

    # -- overflow -------------------------------------------------------------------------------------

    def _footprint(self, size):
        return (size + self.block - 1) // self.block * self.block

    def total_bytes(self):
        n = 0
        for key in self.lanes:
            for seg in self.lanes[key].segs:
                n += self._footprint(seg[2])
        return n

    def _fully_acked(self, lane, i):
        last = lane.last_seq(i)
        for link in self.links:
            if self._subscribed(lane, link) and self._cur(link, lane)[0] < last:
                return False
        return True

    def _unacked(self, lane, i):
        """Records of segment i some subscribed link has not acked (acked-ahead ones count as unacked)."""
        first = lane.segs[i][0]
        low = lane.last_seq(i)
        for link in self.links:
            if self._subscribed(lane, link):
                low = min(low, self._cur(link, lane)[0])
        return lane.last_seq(i) - max(first - 1, low)

    def _victim(self, drop, keep):
        """(lane, 0) whose oldest segment goes next: by DROP_ORDER, then oldest first time."""
        for kind in DROP_ORDER:
            if not drop and kind == "aud":
                continue  # audit is never reclaimed quietly
            best = None
            for key in self.lanes:
                lane = self.lanes[key]
                if lane.kind != kind or not lane.segs or lane.segs[0][2] == 0:
                    continue
                if lane is keep and len(lane.segs) == 1 and not drop:
                    continue
                if not drop and not self._fully_acked(lane, 0):
                    continue
                if best is None or lane.segs[0][1] < best.segs[0][1]:
                    best = lane
            if best is not None:
                return best
        return None

    def _make_room(self, need, keep, force=0):
        """Frees whole segments until `need` more bytes fit: first segments every link has acked
        (reclaim, silent), then the overflow policy (drop, counted and alarmed)."""
        while force > 0 or self.total_bytes() + need > self.max_bytes:
            force -= 1
            lane = self._victim(False, keep)
            drop = lane is None
            if drop:
                lane = self._victim(True, keep)
                if lane is None:
                    return
            if drop:
                n = self._unacked(lane, 0)
                if n > 0:
                    self.drops[lane.kind] = self.drops.get(lane.kind, 0) + n
                    self.dropped += n
                    self._pending_alarm = True
                    if self.on_drop is not None:
                        self.on_drop(lane.kind, n)
            else:
                self.reclaimed += 1
            self._delete_oldest(lane)

    def _delete_oldest(self, lane):
        seg = lane.segs[0]
        if len(lane.segs) == 1:
            # Keep an empty tail so the lane's sequence numbers carry on after the deletion.
            self._roll(lane, seg[1])
            seg = lane.segs[0]
        _remove(lane.seg_path(seg))
        lane.segs.pop(0)

    _pending_alarm = False

    def _alarm(self, t):
        """After a drop: one site-wide event {"alarm": "store_drop", ...} so the uplinks report it."""
        if not self._pending_alarm or self._in_alarm:
            return
        self._pending_alarm = False
        self._in_alarm = True
        try:
            self.append(
                {"kind": "evt", "station": "", "t": t,
                 "data": {"alarm": "store_drop", "dropped": dict(self.drops), "total": self.dropped}}
            )
        finally:
            self._in_alarm = False

    # -- reading --------------------------------------------------------------------------------------

    def _iter_lane(self, lane, from_seq=1, t0=None, t1=None, link=None):
        """Yields (seq, t, body, codes) of valid data records with seq >= from_seq (and t in [t0, t1]).

        Streams _BATCH records per file open (files are closed while the caller works, so appends and
        deletions in between are safe); a corrupt record ends its segment (counted, never served).
        """
        cur_seg = None
        pos = 0
        exp = 0
        codes = []
        while True:
            if link is not None:
                c = self._cur(link, lane)
                if from_seq <= c[0]:
                    from_seq = c[0] + 1
            seg = None
            for s in lane.segs:
                if s[0] <= from_seq or seg is None:
                    seg = s
                else:
                    break
            if seg is None:
                return
            if seg is not cur_seg:
                if t1 is not None and seg[1] > t1 and seg[2] > 0 and seg[0] >= from_seq:
                    # Records in a segment never precede its first time: skip it.
                    nxt = _next_seg(lane, seg)
                    if nxt is None:
                        return
                    from_seq = nxt[0]
                    continue
                cur_seg = seg
                pos = 0
                exp = seg[0]
                codes = []
            batch = []
            end = False
            try:
                f = open(lane.seg_path(seg), "rb")
            except OSError:
                f = None
                end = True
            if f is not None:
                try:
                    f.seek(pos)
                    while len(batch) < _BATCH:
                        r = _read_rec(f)
                        if not r or r[1] != exp:
                            if r is False or (r and r[1] != exp):
                                self.bad += 1
                            end = True
                            break
                        typ, seq, t, body = r
                        pos = f.tell()
                        if typ == T_CODES:
                            codes = codes + body.decode().split(",")
                            continue
                        exp += 1
                        if seq < from_seq:
                            continue
                        if t1 is not None and t > t1:
                            end = True  # times within a segment never decrease
                            break
                        if t0 is None or t >= t0:
                            batch.append((seq, t, body, codes))
                finally:
                    f.close()
            for item in batch:
                yield item
                from_seq = item[0] + 1
            if end or not batch:
                nxt = _next_seg(lane, cur_seg)
                if nxt is None:
                    return
                if from_seq < nxt[0]:
                    from_seq = nxt[0]

    def _rec(self, lane, seq, t, body, codes):
        if lane.kind in STAT_KINDS:
            return {"kind": lane.kind, "station": lane.station, "t": t,
                    "values": decode_values(lane.kind, body, codes)}
        import json

        return {"kind": lane.kind, "station": lane.station, "t": t, "data": json.loads(body)}

    def _pending_lane(self, link, lane):
        for seq, t, body, codes in self._iter_lane(lane, 1, link=link):
            c = self._cur(link, lane)
            if seq <= c[0] or seq in c[1]:
                continue
            yield (lane.key, seq), self._rec(lane, seq, t, body, codes)

    def pending(self, link, kind=None):
        """Yields (ref, record) not yet acked by `link`, each lane in time order, lanes merged by time
        (ties: DROP_ORDER reversed, so day before hour before events before min before rtd)."""
        heads = []
        for lane in self._lanes_of(link, kind):
            it = self._pending_lane(link, lane)
            try:
                heads.append([next(it), it, -DROP_ORDER.index(lane.kind)])
            except StopIteration:
                pass
        while heads:
            best = 0
            for i in range(1, len(heads)):
                a = heads[i]
                b = heads[best]
                if a[0][1]["t"] < b[0][1]["t"] or (a[0][1]["t"] == b[0][1]["t"] and a[2] < b[2]):
                    best = i
            h = heads[best]
            item = h[0]
            try:
                h[0] = next(h[1])
            except StopIteration:
                heads.pop(best)
            yield item

    def pending_count(self, link, kind=None):
        n = 0
        for lane in self._lanes_of(link, kind):
            c = self._cur(link, lane)
            n += lane.next_seq - 1 - c[0] - len(c[1])
        return n

    def query(self, kind, station, t0, t1):
        """Yields the stored records of kind/station with t0 <= t <= t1 (HJ 212 BeginTime..EndTime), in
        stored (time) order."""
        lane = self.lanes.get(kind + "." + _safe(station or ""))
        if lane is None:
            return
        for seq, t, body, codes in self._iter_lane(lane, 1, t0, t1):
            yield self._rec(lane, seq, t, body, codes)

    def snapshot(self):
        return {
            "bytes": self.total_bytes(),
            "max_bytes": self.max_bytes,
            "segments": sum([len(self.lanes[k].segs) for k in self.lanes]),
            "appended": self.appended,
            "dropped": self.dropped,
            "drops": dict(self.drops),
            "reclaimed": self.reclaimed,
            "truncated": self.truncated,
            "bad": self.bad,
        }


def _next_seg(lane, seg):
    for s in lane.segs:
        if s[0] > seg[0]:
            return s
    return None


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _parse_cursor(text):
    """(generation, {lane: [contig, ahead]}) or None when the text is incomplete or corrupt."""
    end = text.rfind("\nx ") + 1
    if end <= 0 or not text.endswith("\n"):
        return None
    try:
        crc = int(text[end + 2 : -1], 16)
    except ValueError:
        return None
    if binascii.crc32(text[:end].encode()) & 0xFFFFFFFF != crc:
        return None
    gen = -1
    cur = {}
    for line in text[:end].split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        if parts[0] == "g":
            gen = int(parts[1])
        elif len(parts) == 3:
            ahead = [] if parts[2] == "-" else [int(s) for s in parts[2].split(",")]
            cur[parts[0]] = [int(parts[1]), ahead]
    return (gen, cur) if gen >= 0 else None
