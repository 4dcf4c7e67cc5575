"""HJ 212 frames written straight into one reusable buffer: no Packet, no CP groups, no per-field strings.

    f = Frames(st, cn, pw, mn, flag, cp)   # CP text as bytes (a str is encoded once, here)
    f.n                                    # packets: 1, or the number of PNUM/PNO parts
    mv = f.frame(i, qn)                    # packet i (0-based) with QN `qn`: a memoryview of the frame

`frame` writes `##` + length + `QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&..&&` + CRC +
CRLF into a buffer shared by every caller and returns a view of it, valid until the next `frame` call:
write it at once (MicroPython's asyncio StreamWriter.write sends or copies before it returns). Writing
a packet again (a re-send) gives the same bytes.

The frames are byte-identical to `hj212.frame` of the same segment and, for a CP over MAX_SEGMENT, to
`hj212.split` of it taken as whole `;` groups (what app/sender.py did before): parts break only between
groups, a leading `DataTime=...` group is repeated in every part, Flag D is set, the parts are filled
greedily against the size of a template with PNUM/PNO of as many digits as the part count needs. Header
fields must be ASCII (the standard's header is) and every QN of one record as long as the first (17).
"""

from .codes import Hj212Error
from .crc import crc16
from .packet import MAX_SEGMENT
from .versions import FLAG_D

FRAME_MAX = MAX_SEGMENT + 12  # "##" + 4-digit length + segment + 4-digit CRC + CRLF
QN_LEN = 17  # YYYYMMDDhhmmsszzz
_HEX = b"0123456789ABCDEF"
_buf = None  # the shared frame buffer, allocated on first use


def _buffer():
    global _buf
    if _buf is None:
        _buf = bytearray(FRAME_MAX)
    return _buf


def _digits(v):
    n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


def _put(buf, i, s):
    """Writes str `s` (ASCII) at buf[i:]: one character at a time, so no bytes copy of it is made."""
    for ch in s:
        c = ord(ch)
        if c > 127:
            raise Hj212Error("non-ascii-header", s)
        buf[i] = c
        i += 1
    return i


def _put_int(buf, i, v, width=0):
    """Writes v >= 0 in decimal at buf[i:], zero-padded to `width`."""
    n = _digits(v)
    if n < width:
        n = width
    end = i + n
    while n:
        n -= 1
        buf[i + n] = 48 + v % 10
        v //= 10
    return end


class Frames:
    def __init__(self, st, cn, pw, mn, flag, cp, max_segment=MAX_SEGMENT):
        if isinstance(cp, str):
            cp = cp.encode()
        self.cp = cp
        self.st = st
        self.cn = cn
        self.pw = pw
        self.mn = mn
        # Header up to "Flag=", and "CP=&&" "&&": what every packet of this record has.
        fixed = 4 + QN_LEN + 4 + len(st) + 4 + len(cn) + 4 + len(pw) + 4 + len(mn) + 5 + 5 + 2
        if fixed + _digits(flag) + 1 + len(cp) <= max_segment:
            self.flag = flag
            self.n = 1
            self.ends = None
            return
        flag |= FLAG_D
        self.flag = flag
        self.cpv = memoryview(cp)  # parts are copied from slices of it, not of `cp` (a slice of bytes copies)
        # A leading DataTime group (its length `head`) is repeated in every part; the body follows its `;`.
        head = 0
        if cp.startswith(b"DataTime="):
            head = cp.find(b";")
            if head < 0:
                raise Hj212Error("too-long", "no CP group to split")
        self.head = head
        self.start = head + 1 if head else 0
        digits = 1
        while True:
            # template: PNUM and PNO of `digits` nines, the head group alone as CP
            overhead = fixed + _digits(flag) + 1 + 6 + digits + 5 + digits + head
            n = self._fill(overhead, max_segment, None)
            if _digits(n) <= digits:
                break
            digits += 1
        self.n = n
        self.ends = []
        self._fill(overhead, max_segment, self.ends)

    def _fill(self, overhead, max_segment, ends):
        """Part count of the greedy fill (as parts.split); the end offset of each part into `ends`."""
        cp = self.cp
        size = len(cp)
        head = self.head
        pos = self.start
        n = 0
        used = overhead
        cur = False  # the current part holds a group
        while True:
            end = cp.find(b";", pos)
            if end < 0:
                end = size
            add = end - pos + (1 if (cur or head) else 0)
            if cur and used + add > max_segment:
                n += 1
                if ends is not None:
                    ends.append(pos - 1)
                cur = False
                used = overhead
                add = end - pos + (1 if head else 0)
            if used + add > max_segment:
                raise Hj212Error("too-long", "one CP group is %d bytes" % (end - pos))
            cur = True
            used += add
            if end == size:
                break
            pos = end + 1
        if ends is not None:
            ends.append(size)
        return n + 1

    def frame(self, i, qn, buf=None):
        """Packet i (0-based) of this record with QN `qn`, written into `buf` (default: the shared buffer);
        returns a memoryview of the frame."""
        if buf is None:
            buf = _buffer()
        k = _put(buf, 6, "QN=")
        k = _put(buf, k, qn)
        k = _put(buf, k, ";ST=")
        k = _put(buf, k, self.st)
        k = _put(buf, k, ";CN=")
        k = _put(buf, k, self.cn)
        k = _put(buf, k, ";PW=")
        k = _put(buf, k, self.pw)
        k = _put(buf, k, ";MN=")
        k = _put(buf, k, self.mn)
        k = _put(buf, k, ";Flag=")
        k = _put_int(buf, k, self.flag)
        if self.ends is None:
            k = _put(buf, k, ";CP=&&")
            n = len(self.cp)
            buf[k:k + n] = self.cp
            k += n
        else:
            k = _put(buf, k, ";PNUM=")
            k = _put_int(buf, k, self.n)
            k = _put(buf, k, ";PNO=")
            k = _put_int(buf, k, i + 1)
            k = _put(buf, k, ";CP=&&")
            head = self.head
            if head:
                buf[k:k + head] = self.cpv[:head]
                buf[k + head] = 59  # ";"
                k += head + 1
            a = self.ends[i - 1] + 1 if i else self.start
            b = self.ends[i]
            buf[k:k + b - a] = self.cpv[a:b]
            k += b - a
        buf[k] = 38  # "&&"
        buf[k + 1] = 38
        k += 2
        n = k - 6
        if n > MAX_SEGMENT:
            raise Hj212Error("too-long", "segment is %d bytes, at most %d" % (n, MAX_SEGMENT))
        buf[0] = 35  # "##"
        buf[1] = 35
        _put_int(buf, 2, n, 4)
        mv = memoryview(buf)
        crc = crc16(mv[6:k])
        for s in (12, 8, 4, 0):
            buf[k] = _HEX[(crc >> s) & 15]
            k += 1
        buf[k] = 13
        buf[k + 1] = 10
        return mv[:k + 2]
