"""Frames on the wire: checking one frame, parsing it, and a streaming decoder for TCP chunks."""

from .codes import Hj212Error
from .crc import crc16
from .packet import MAX_SEGMENT, parse_segment

_HEX = b"0123456789ABCDEFabcdef"
MAX_FRAME = MAX_SEGMENT + 12
_PIECE = 1024  # largest slice of input taken at once, and most skipped bytes held before reporting


def unframe(data):
    """Checks framing, length and CRC of one complete frame; returns the data segment (bytes).

    Reasons, checked in this order: "header" (no leading ##), "truncated" (shorter than its length
    field says), "length" (length field not 4 digits, or not matching the frame), "too-long" (length
    > 1024), "no-crlf" (the two bytes after the CRC are missing or not CRLF), "crc" (CRC not 4 hex
    digits or wrong; upper and lower case are both accepted).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    n = len(data)
    if (n >= 1 and data[0] != 0x23) or (n >= 2 and data[1] != 0x23):
        raise Hj212Error("header", "frame must start with ##")
    if n < 6:
        raise Hj212Error("truncated", "%d bytes" % n)
    field = data[2:6]
    if not field.isdigit():
        raise Hj212Error("length", "length field %r is not 4 digits" % field)
    size = int(field)
    if size > MAX_SEGMENT:
        raise Hj212Error("too-long", "segment length %d > %d" % (size, MAX_SEGMENT))
    want = size + 12
    crlf = data.endswith(b"\r\n")
    if n == want:
        if not crlf:
            raise Hj212Error("no-crlf")
    elif crlf:
        raise Hj212Error("length", "length field says %d, segment has %d bytes" % (size, n - 12))
    elif n == want - 2:
        raise Hj212Error("no-crlf")
    elif n < want:
        raise Hj212Error("truncated", "%d of %d bytes" % (n, want))
    else:
        raise Hj212Error("length", "length field says %d, frame has %d bytes" % (size, n))
    segment = data[6:6 + size]
    field = data[6 + size:10 + size]
    for c in field:
        if c not in _HEX:
            raise Hj212Error("crc", "CRC field %r is not 4 hex digits" % field, packet=_best_effort(segment))
    expected = crc16(segment)
    if int(field, 16) != expected:
        raise Hj212Error("crc", "frame says %s, computed %04X" % (field.decode(), expected),
                         packet=_best_effort(segment))
    return segment


def _best_effort(segment):
    try:
        return parse_segment(segment)
    except Hj212Error:
        return None


def parse(data):
    """One frame (bytes, with or without the trailing CRLF checked as described in unframe) -> Packet.

    Raises Hj212Error (framing reasons above, then the segment reasons of parse_segment).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    p = parse_segment(unframe(data))
    p.raw = data
    return p


class StreamDecoder:
    """Turns arbitrary TCP chunks into frames.

    `feed(chunk)` returns a list whose items are either a Packet (`item.ok` is True, `item.raw` = its
    frame bytes) or an Hj212Error that was not raised (`item.ok` is False; `.reason`, `.qn_rtn`,
    `.raw` = the bytes it covers). It never raises for bad input. Split frames are reassembled. Bytes
    before a `##` are held until a frame starts (or until there are more than 1024 of them) and
    then reported as one "garbage" item, unless they are only whitespace. A frame whose
    length field is wrong is cut at the next CRLF or `##` and reported with the reason `parse` gives it
    ("length", "truncated", "no-crlf", "too-long"...). The buffer never holds more than `max_buffer`
    bytes: past that, the unframeable bytes are dropped and reported as "overflow".
    """

    def __init__(self, max_buffer=4096):
        if max_buffer < MAX_FRAME:
            raise ValueError("max_buffer must be at least %d" % MAX_FRAME)
        self.max_buffer = max_buffer
        self._buf = b""
        self._pend = bytearray()  # bytes received since the last scan (cheap to grow by tiny chunks)
        self._need = 2  # no point scanning before this many bytes are buffered
        self._skip = 0  # leading bytes of the buffer already known to hold no "##"

    @property
    def buffered(self):
        return len(self._buf) + len(self._pend)

    def feed(self, chunk):
        out = []
        n = len(chunk)
        if n <= _PIECE:
            self._feed(bytes(chunk), out)
        else:
            # Big chunks go in pieces so the buffer stays near one frame: no large contiguous
            # allocation on a fragmented MicroPython heap.
            view = memoryview(chunk)
            for i in range(0, n, _PIECE):
                self._feed(bytes(view[i:i + _PIECE]), out)
        return out

    def _feed(self, chunk, out):
        if chunk:
            self._pend.extend(chunk)
            # A CR/LF may end a frame with a wrong length: look at once even if `_need` is not reached.
            if len(self._buf) + len(self._pend) < self._need and b"\n" not in chunk:
                return
        if self._pend:
            self._buf = self._buf + bytes(self._pend) if self._buf else bytes(self._pend)
            self._pend = bytearray()
        self._scan(out)

    def flush(self):
        """At connection close: reports whatever partial frame is left (e.g. "truncated") and clears."""
        out = self.feed(b"")
        rest = self._buf
        self._buf = b""
        self._need = 2
        self._skip = 0
        if rest.strip():
            out.append(_result(rest) if rest.startswith(b"##") else _error("garbage", rest))
        return out

    def _scan(self, out):
        buf = self._buf
        pos = 0
        need = 0
        skip = self._skip
        self._skip = 0
        while True:
            start = buf.find(b"##", skip if skip > pos else pos)
            if start < 0:
                # Keep the bytes skipped so far (reported as one piece when a frame starts), unless
                # there are more than _PIECE of them. A trailing '#' may start the next "##".
                keep = len(buf) - 1 if buf.endswith(b"#") else len(buf)
                if keep < pos:
                    keep = pos
                if keep - pos > _PIECE:
                    _garbage(buf[pos:keep], out)
                    pos = keep
                self._skip = keep - pos
                need = len(buf) - pos + 1
                break
            if start > pos:
                _garbage(buf[pos:start], out)
                pos = start
            avail = len(buf) - start
            field = buf[start + 2:start + 6]
            size = int(field) if len(field) == 4 and field.isdigit() else -1
            if 0 <= size <= MAX_SEGMENT:
                end = start + size + 12
                if buf.find(b"\r\n", start + 6, min(end - 2, len(buf))) < 0:
                    if len(buf) < end:
                        need = end - pos
                        break
                    if buf[end - 2:end] == b"\r\n":
                        out.append(_result(buf[start:end]))
                        pos = end
                        continue
            elif avail < 6 and (avail == 2 or field.isdigit()):
                need = 6
                break
            # Bad or inconsistent header: this frame ends at the next CRLF or the next `##`.
            cut = _cut(buf, start + 2)
            if cut < 0:
                if avail > self.max_buffer:
                    out.append(_error("overflow", buf[start:]))
                    pos = len(buf)
                    continue
                need = avail + 1
                break
            out.append(_result(buf[start:cut]))
            pos = cut
        self._buf = buf[pos:] if pos else buf
        self._need = need


def _cut(buf, start):
    nl = buf.find(b"\r\n", start)
    hh = buf.find(b"##", start)
    if nl >= 0:
        nl += 2
        if hh < 0 or nl <= hh:
            return nl
    return hh


def _error(reason, raw):
    e = Hj212Error(reason)
    e.raw = raw
    return e


def _garbage(raw, out):
    if raw.strip():
        out.append(_error("garbage", raw))


def _result(raw):
    try:
        return parse(raw)
    except Hj212Error as e:
        e.raw = raw
        return e
