"""HJ 212 data segment codec (header fields + CP) and the frame builder.

The codec is lossless: parse then encode gives back the same bytes, including the header order,
the `;`/`,` separators of the CP and any whitespace the sender put around CP items (the standard's own
examples have some, e.g. `CP=&& PolId=w01018&&`). Whitespace is ignored by `get()` and `fields()`.
"""

from protocols.calendar import civil, days_from_civil, month_days

from .codes import Hj212Error
from .crc import crc16
from .versions import FLAG_A, FLAG_D, flag_version

MAX_SEGMENT = 1024  # bytes of data segment (Table 2)

# Wire order of the header fields (Table 3, examples C.49/C.50) and the attribute each one maps to.
HEADER_FIELDS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
_ATTRS = ("qn", "st", "cn", "pw", "mn", "flag", "pnum", "pno")
_PAD = " \t"  # the only padding tolerated around names and values


def frame(segment):
    """`##` + 4-digit length + segment + CRC + CRLF. `segment` is str (sent as UTF-8) or bytes."""
    if isinstance(segment, str):
        segment = segment.encode()
    n = len(segment)
    if n > MAX_SEGMENT:
        raise Hj212Error("too-long", "segment is %d bytes, at most %d" % (n, MAX_SEGMENT))
    return b"".join((b"##", ("%04d" % n).encode(), segment, ("%04X\r\n" % crc16(segment)).encode()))


class Packet:
    """One HJ 212 packet.

    Header attributes are strings exactly as on the wire (None when absent) except `flag`, an int or
    None. `cp` is a list of groups (separated by `;`), each a list of `(key, value)` string pairs
    (separated by `,`) in wire order; `value` is None for an item that had no `=`. Values that contain
    `;`, `,` or `&&` must be `//text//`. `raw` holds the frame bytes when the packet came off the wire.
    """

    ok = True  # stream results: Packet.ok is True, Hj212Error.ok is False

    def __init__(self, st=None, cn=None, pw=None, mn=None, cp=None, qn=None, flag=None, pnum=None, pno=None):
        self.qn = qn
        self.st = st
        self.cn = cn
        self.pw = pw
        self.mn = mn
        self.flag = flag
        self.pnum = pnum
        self.pno = pno
        self.cp = [] if cp is None else cp
        self.raw = None
        self._layout = None  # raw header names in wire order, when not the canonical order
        self._padded = False  # CP text had spaces/tabs: get()/fields() compare stripped

    # --- flag bits ---------------------------------------------------------------------------
    @property
    def ack_wanted(self):
        return self.flag is not None and bool(self.flag & FLAG_A)

    @property
    def is_split(self):
        return self.flag is not None and bool(self.flag & FLAG_D)

    @property
    def version(self):
        """2005, 2017, 2025 (see versions.py) or None for unknown version bits."""
        return flag_version(self.flag)

    # --- CP access -----------------------------------------------------------------------------
    def get(self, key, default=None):
        """Value of the first CP item named `key` (e.g. "DataTime", "a21002-Rtd")."""
        for group in self.cp:
            for k, v in group:
                if k == key and v is not None:
                    return v.strip(_PAD) if self._padded else v
        if self._padded:
            for group in self.cp:
                for k, v in group:
                    if v is not None and k.strip(_PAD) == key:
                        return v.strip(_PAD)
        return default

    def fields(self):
        """All CP items as a dict (the first occurrence of a key wins)."""
        out = {}
        padded = self._padded
        for group in self.cp:
            for k, v in group:
                if v is None:
                    continue
                if padded:
                    k = k.strip(_PAD)
                    v = v.strip(_PAD)
                if k not in out:
                    out[k] = v
        return out

    # --- encoding -------------------------------------------------------------------------------
    def _header_values(self):
        return (self.qn, self.st, self.cn, self.pw, self.mn,
                None if self.flag is None else str(self.flag), self.pnum, self.pno)

    def _pieces(self):
        # The segment as a short list of strings: the header, then one string per CP group.
        values = self._header_values()
        head = []
        layout = self._layout
        if layout is not None:
            present = 0
            for v in values:
                if v is not None:
                    present += 1
            if present != len(layout):
                layout = None
            else:
                picked = []
                for raw in layout:
                    v = values[HEADER_FIELDS.index(raw.strip(_PAD))]
                    if v is None:
                        layout = None
                        break
                    picked.append((raw, v))
        if layout is None:
            for i in range(8):
                v = values[i]
                if v is not None:
                    head.append(HEADER_FIELDS[i])
                    head.append("=")
                    head.append(v)
                    head.append(";")
        else:
            for raw, v in picked:
                head.append(raw)
                head.append("=")
                head.append(v)
                head.append(";")
        head.append("CP=&&")
        out = ["".join(head)]
        _cp_parts(self.cp, out)
        out.append("&&")
        return out

    def segment(self):
        """The data segment as a str."""
        return "".join(self._pieces())

    def cp_text(self):
        """The CP data area (between `CP=&&` and `&&`)."""
        out = []
        _cp_parts(self.cp, out)
        return "".join(out)

    def encode(self):
        """The complete frame (bytes). Length and CRC are taken piece by piece, so the only large
        allocation is the frame itself (friendlier to a fragmented MicroPython heap)."""
        pieces = self._pieces()
        n = 0
        crc = 0xFFFF
        for i in range(len(pieces)):
            b = pieces[i].encode()
            pieces[i] = b
            n += len(b)
            crc = crc16(b, crc)
        if n > MAX_SEGMENT:
            raise Hj212Error("too-long", "segment is %d bytes, at most %d" % (n, MAX_SEGMENT))
        pieces.insert(0, ("##%04d" % n).encode())
        pieces.append(("%04X\r\n" % crc).encode())
        return b"".join(pieces)

    def copy(self, **changes):
        """A new packet with the same header and CP (groups copied), with `changes` applied. It is
        written in the standard header order (a parsed packet's own order is not carried over)."""
        p = Packet(self.st, self.cn, self.pw, self.mn, [list(g) for g in self.cp],
                   self.qn, self.flag, self.pnum, self.pno)
        p._padded = self._padded
        for name in changes:
            if name not in _ATTRS and name != "cp":
                raise TypeError("no packet field %r" % name)
            setattr(p, name, changes[name])
        return p

    def __repr__(self):
        return "<Packet QN=%s CN=%s Flag=%s %d CP groups>" % (self.qn, self.cn, self.flag, len(self.cp))


def _cp_parts(cp, out):
    # One joined string per group keeps `out` short: no long list to grow in one contiguous block
    # on a fragmented MicroPython heap (a 1 KiB minute packet is ~270 pieces but ~10 groups).
    gsep = False
    for group in cp:
        if gsep:
            out.append(";")
        gsep = True
        parts = []
        for k, v in group:
            if parts:
                parts.append(",")
            parts.append(k)
            if v is not None:
                parts.append("=")
                parts.append(v)
        out.append("".join(parts))


def _first(text, start, chars):
    """Index of the first of `chars` in text[start:], or len(text)."""
    best = len(text)
    for c in chars:
        i = text.find(c, start, best)
        if i >= 0:
            best = i
    return best


def parse_cp(data):
    """CP data area -> list of groups of (key, value). `//...//` values are opaque (may hold ; , =)."""
    if not data:
        return []
    groups = []
    if "//" not in data:
        # Slices keys and values straight out of each group: no per-item temporary strings.
        for g in data.split(";"):
            pairs = []
            pos = 0
            n = len(g)
            while True:
                end = g.find(",", pos)
                if end < 0:
                    end = n
                eq = g.find("=", pos, end)
                if eq < 0:
                    pairs.append((g[pos:end], None))
                else:
                    pairs.append((g[pos:eq], g[eq + 1:end]))
                if end == n:
                    break
                pos = end + 1
            groups.append(pairs)
        return groups
    n = len(data)
    group = []
    groups.append(group)
    pos = 0
    while True:
        e = _first(data, pos, "=;,")
        if e == n or data[e] != "=":
            group.append((data[pos:e], None))
            end = e
        else:
            vstart = e + 1
            scan = vstart
            if data.startswith("//", vstart):
                close = data.find("//", vstart + 2)
                if close >= 0:
                    scan = close + 2
            end = _first(data, scan, ";,")
            group.append((data[pos:e], data[vstart:end]))
        if end >= n:
            return groups
        if data[end] == ";":
            group = []
            groups.append(group)
        pos = end + 1


def parse_segment(segment):
    """Data segment (str or bytes) -> Packet. Raises Hj212Error.

    Tolerates 2005-style segments without QN/Flag and any header order; requires every header item
    to be a known `Name=value`, an ASCII header, a numeric Flag 0-255 and a `CP=&&...&&` at the end.
    """
    if isinstance(segment, str):
        text = segment
        ci = text.find("CP=&&")
        if ci < 0:
            raise Hj212Error("bad-cp", "no CP=&&")
        header = text[:ci]
        if len(header.encode()) != ci:
            raise Hj212Error("non-ascii-header")
    else:
        i = segment.find(b"CP=&&")
        if i < 0:
            raise Hj212Error("bad-cp", "no CP=&&")
        try:
            text = segment.decode()
        except UnicodeError:
            try:
                ok = len(segment[:i].decode()) == i
            except UnicodeError:
                ok = False
            raise Hj212Error("utf8", "CP is not valid UTF-8") if ok else Hj212Error("non-ascii-header")
        # Character and byte positions differ exactly when the header holds multi-byte characters.
        ci = text.find("CP=&&") if i else 0
        if ci != i:
            raise Hj212Error("non-ascii-header")
        header = text[:ci]
    if len(text) - ci < 7 or not text.endswith("&&"):
        raise Hj212Error("bad-cp", "CP must end with &&")
    p = Packet()
    data = text[ci + 5:-2]
    p.cp = parse_cp(data)
    p._padded = " " in data or "\t" in data
    if header:
        if header[-1] != ";":
            raise Hj212Error("bad-field", "no ';' before CP")
        values = [None] * 8
        names = []
        canonical = True
        for item in header[:-1].split(";"):
            eq = item.find("=")
            if eq < 0:
                raise Hj212Error("bad-field", repr(item))
            raw = item[:eq]
            name = raw.strip(_PAD)
            if name not in HEADER_FIELDS:
                raise Hj212Error("bad-field", "unknown header field %r" % raw)
            k = HEADER_FIELDS.index(name)
            if values[k] is not None:
                raise Hj212Error("bad-field", "duplicate " + name)
            values[k] = item[eq + 1:]
            if raw != name or (names and HEADER_FIELDS.index(names[-1].strip(_PAD)) > k):
                canonical = False
            names.append(raw)
        if not canonical:
            p._layout = tuple(names)
        p.qn, p.st, p.cn, p.pw, p.mn, flag, p.pnum, p.pno = values
        if flag is not None:
            p.flag = _parse_flag(flag)
    return p


def _parse_flag(text):
    # Flag is kept as an int, so only its canonical spelling can be re-encoded byte-identically.
    if not text or len(text) > 3 or not text.isdigit() or (text[0] == "0" and text != "0"):
        raise Hj212Error("bad-flag", repr(text))
    v = int(text)
    if v > 255:
        raise Hj212Error("bad-flag", repr(text))
    return v


# --- times (the caller supplies the time tuple: protocols never read the clock) -----------------

def datatime(t):
    """YYYYMMDDhhmmss from a time tuple (year, month, mday, hour, minute, second, ...)."""
    return "%04d%02d%02d%02d%02d%02d" % (t[0], t[1], t[2], t[3], t[4], t[5])


def qn_from_time(t, ms=0):
    """QN (YYYYMMDDhhmmsszzz) from a time tuple in time.localtime() order and a millisecond count."""
    return datatime(t) + "%03d" % ms


def parse_time(text):
    """YYYYMMDDhhmmss (DataTime, SystemTime, BeginTime...) -> (year, month, mday, hour, minute, second)."""
    if len(text) != 14 or not text.isdigit() or len(text.encode()) != 14:
        raise Hj212Error("bad-time", repr(text))
    t = (int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14]))
    if not (1 <= t[1] <= 12 and 1 <= t[2] <= month_days(t[0], t[1])
            and t[3] < 24 and t[4] < 60 and t[5] < 60):
        raise Hj212Error("bad-time", repr(text))
    return t


def qn_add_ms(qn, ms):
    """The QN `ms` milliseconds after `qn`, with correct carries across seconds, days and months."""
    if len(qn) != 17 or not qn.isdigit():
        raise Hj212Error("bad-qn", repr(qn))
    t = parse_time(qn[:14])
    total = (days_from_civil(t[0], t[1], t[2]) * 86400 + t[3] * 3600 + t[4] * 60 + t[5]) * 1000
    total += int(qn[14:]) + ms
    secs, msec = divmod(total, 1000)
    days, sod = divmod(secs, 86400)
    y, m, d = civil(days)
    return qn_from_time((y, m, d, sod // 3600, sod // 60 % 60, sod % 60), msec)
