"""Register values as the device decodes them: spec(), decode_spec(), register_count(), bits, masks.

The device's part of values.py (which re-exports all of it next to the host's encoders). Nothing is
built at import: a spec is worked out when a poll plan is made, from the string TYPE_NAMES instead of
tables. Orders and offsets are as described in values.py.
"""

import struct

# The value types, sorted; _CODES holds the struct code of each, at the same index.
TYPE_NAMES = "f32 f64 s16 s32 s64 u16 u32 u64"
_CODES = "fdhiqHIQ"

# Reused by decode/encode for the two orders struct cannot express; no await happens while it is in use.
_scratch = bytearray(8)


def _code(kind):
    # struct code of value type `kind`, or None when it is none of TYPE_NAMES
    i = TYPE_NAMES.find(kind) if isinstance(kind, str) and len(kind) == 3 else -1
    return _CODES[i >> 2] if i >= 0 and not i & 3 else None


def _positions(order, size):
    # where byte k of the big-endian value sits on the wire, for BADC and CDAB
    words_big = order in ("ABCD", "BADC")
    bytes_big = order in ("ABCD", "CDAB")
    nwords = size // 2
    out = []
    for k in range(size):
        w = k // 2
        b = k % 2
        out.append(2 * (w if words_big else nwords - 1 - w) + (b if bytes_big else 1 - b))
    return tuple(out)


_specs = {}  # (kind, order) -> spec, filled as templates ask: points of one type share one tuple


def spec(kind, order="ABCD"):
    """Pre-resolved (struct format, positions) for decode_spec/encode_spec; raises ValueError."""
    s = _specs.get((kind, order))
    if s is None:
        s = _specs[(kind, order)] = _spec(kind, order)
    return s


def _spec(kind, order):
    code = _code(kind)
    if code is None:
        raise ValueError("unknown value type %r (use one of %s)" % (kind, TYPE_NAMES))
    if order == "ABCD":
        return (">" + code, None)
    if order == "DCBA":
        return ("<" + code, None)
    if order != "BADC" and order != "CDAB":
        raise ValueError("unknown byte order %r (use ABCD, DCBA, BADC or CDAB)" % (order,))
    size = int(kind[1:]) // 8
    src = _positions(order, size)
    return (">" + code, None if src == tuple(range(size)) else src)


def register_count(kind):
    """Registers a value of this type occupies (a bit field or single bit occupies one)."""
    if kind == "bit":
        return 1
    if _code(kind) is None:
        raise ValueError("unknown value type %r" % (kind,))
    return int(kind[1:]) // 16


def decode_spec(buf, offset, s):
    """decode() with a spec() resolved in advance: the hot path of the device's poll loop."""
    fmt, src = s
    if src is None:
        return struct.unpack_from(fmt, buf, offset)[0]
    scratch = _scratch
    for k in range(len(src)):
        scratch[k] = buf[offset + src[k]]
    return struct.unpack_from(fmt, scratch, 0)[0]


def register_bit(buf, offset, bit):
    """Bit `bit` (0 = least significant) of the big-endian register at byte `offset`."""
    if bit >= 8:
        return (buf[offset] >> (bit - 8)) & 1
    return (buf[offset + 1] >> bit) & 1


def packed_bit(buf, offset, index):
    """Bit `index` of packed coil / discrete-input data starting at byte `offset` (LSB first)."""
    return (buf[offset + (index >> 3)] >> (index & 7)) & 1


def mask_shift(mask):
    """How far (value & mask) is shifted right so the field starts at bit 0."""
    if mask <= 0:
        raise ValueError("a bit mask must be positive, got %r" % (mask,))
    shift = 0
    while not (mask >> shift) & 1:
        shift += 1
    return shift
