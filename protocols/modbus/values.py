"""Register values: u16 s16 u32 s32 f32 u64 s64 f64 in the four byte/word orders, bits, scaling.

Orders name where the bytes of a value A B C D (most significant first) appear on the wire:

    ABCD  big-endian (the Modbus default)      DCBA  fully little-endian
    BADC  bytes swapped inside each register   CDAB  registers (words) swapped

For 64-bit values the same rule extends to four registers (CDAB -> GH EF CD AB). A 16-bit value has
two bytes: DCBA and BADC swap them, CDAB leaves them alone.

Decoding reads straight from a response buffer at a byte offset (bytes, bytearray or memoryview),
so the device never slices a response. Offsets are byte offsets into that buffer.
"""

import struct

# kind -> (registers, struct code)
TYPES = {
    "u16": (1, "H"),
    "s16": (1, "h"),
    "u32": (2, "I"),
    "s32": (2, "i"),
    "f32": (2, "f"),
    "u64": (4, "Q"),
    "s64": (4, "q"),
    "f64": (4, "d"),
}
ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")

# (order, bytes) -> where byte k of the big-endian value sits on the wire; None = plain struct format
_SRC = {}
# (kind, order) -> (struct format, source positions or None)
_SPEC = {}
# Reused by decode/encode for the two orders struct cannot express; no await happens while it is in use.
_scratch = bytearray(8)


def _positions(order, size):
    words_big = order in ("ABCD", "BADC")
    bytes_big = order in ("ABCD", "CDAB")
    nwords = size // 2
    out = []
    for k in range(size):
        w = k // 2
        b = k % 2
        out.append(2 * (w if words_big else nwords - 1 - w) + (b if bytes_big else 1 - b))
    return tuple(out)


def _build():
    for kind in TYPES:
        regs, code = TYPES[kind]
        size = 2 * regs
        for order in ORDERS:
            if order == "ABCD":
                _SPEC[(kind, order)] = (">" + code, None)
            elif order == "DCBA":
                _SPEC[(kind, order)] = ("<" + code, None)
            else:
                src = _positions(order, size)
                if src == tuple(range(size)):
                    _SPEC[(kind, order)] = (">" + code, None)
                else:
                    _SPEC[(kind, order)] = (">" + code, src)


_build()


def spec(kind, order="ABCD"):
    """Pre-resolved (struct format, positions) for decode_spec/encode_spec; raises ValueError."""
    s = _SPEC.get((kind, order))
    if s is None:
        if kind not in TYPES:
            raise ValueError("unknown value type %r (use one of %s)" % (kind, " ".join(sorted(TYPES))))
        raise ValueError("unknown byte order %r (use ABCD, DCBA, BADC or CDAB)" % (order,))
    return s


def register_count(kind):
    """Registers a value of this type occupies (a bit field or single bit occupies one)."""
    if kind == "bit":
        return 1
    t = TYPES.get(kind)
    if t is None:
        raise ValueError("unknown value type %r" % (kind,))
    return t[0]


def decode_spec(buf, offset, s):
    """decode() with a spec() resolved in advance: the hot path of the device's poll loop."""
    fmt, src = s
    if src is None:
        return struct.unpack_from(fmt, buf, offset)[0]
    scratch = _scratch
    for k in range(len(src)):
        scratch[k] = buf[offset + src[k]]
    return struct.unpack_from(fmt, scratch, 0)[0]


def decode(buf, offset, kind, order="ABCD"):
    """The value of type `kind` stored at byte `offset` of `buf` in byte order `order`."""
    return decode_spec(buf, offset, spec(kind, order))


def encode_spec(buf, offset, value, s):
    fmt, src = s
    if src is None:
        struct.pack_into(fmt, buf, offset, value)
        return
    scratch = _scratch
    struct.pack_into(fmt, scratch, 0, value)
    for k in range(len(src)):
        buf[offset + src[k]] = scratch[k]


def encode_into(buf, offset, value, kind, order="ABCD"):
    """Writes `value` as `kind` in `order` into the bytearray `buf` at byte `offset`."""
    s = spec(kind, order)
    _check_range(value, kind)
    encode_spec(buf, offset, value, s)


def encode(value, kind, order="ABCD"):
    """`value` as the register bytes of `kind` in `order` (2, 4 or 8 bytes)."""
    buf = bytearray(2 * register_count(kind))
    encode_into(buf, 0, value, kind, order)
    return bytes(buf)


def _check_range(value, kind):
    # struct wraps or raises differently on each interpreter; say clearly what is wrong instead.
    if kind[0] == "f":
        return
    if not isinstance(value, int):
        raise ValueError("%s needs an int, got %r" % (kind, value))
    bits = 16 * TYPES[kind][0]
    if kind[0] == "u":
        lo = 0
        hi = (1 << bits) - 1
    else:
        lo = -(1 << (bits - 1))
        hi = (1 << (bits - 1)) - 1
    if value < lo or value > hi:
        raise ValueError("%r does not fit in %s (%d..%d)" % (value, kind, lo, hi))


def to_registers(value, kind, order="ABCD"):
    """`value` as a list of 16-bit register values (for emulators and write requests)."""
    b = encode(value, kind, order)
    return [(b[i] << 8) | b[i + 1] for i in range(0, len(b), 2)]


def from_registers(registers, kind, order="ABCD"):
    """The value of `kind` held by a list of 16-bit register values."""
    n = register_count(kind)
    if len(registers) != n:
        raise ValueError("%s needs %d registers, got %d" % (kind, n, len(registers)))
    buf = bytearray(2 * n)
    for i in range(n):
        buf[2 * i] = (registers[i] >> 8) & 0xFF
        buf[2 * i + 1] = registers[i] & 0xFF
    return decode(buf, 0, kind, order)


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


def field(raw, mask, shift=-1):
    """The bit field `mask` of an integer register value, shifted down to bit 0."""
    if shift < 0:
        shift = mask_shift(mask)
    return (raw & mask) >> shift


def scaled(raw, scale=1, offset=0):
    """raw * scale + offset, keeping ints as ints when nothing is scaled."""
    if scale == 1 and offset == 0:
        return raw
    return raw * scale + offset
