"""Register values: u16 s16 u32 s32 f32 u64 s64 f64 in the four byte/word orders, bits, scaling.

Orders name where the bytes of a value A B C D (most significant first) appear on the wire:

    ABCD  big-endian (the Modbus default)      DCBA  fully little-endian
    BADC  bytes swapped inside each register   CDAB  registers (words) swapped

For 64-bit values the same rule extends to four registers (CDAB -> GH EF CD AB). A 16-bit value has
two bytes: DCBA and BADC swap them, CDAB leaves them alone.

Decoding reads straight from a response buffer at a byte offset (bytes, bytearray or memoryview),
so the device never slices a response. Offsets are byte offsets into that buffer.

The device imports decode.py only (spec, decode_spec, register_count, bits, masks: re-exported here);
the rest of this module is for the host.
"""

import struct

from protocols.modbus.decode import (  # noqa: F401  (the device's part, re-exported)
    TYPE_NAMES,
    _scratch,
    decode_spec,
    mask_shift,
    packed_bit,
    register_bit,
    register_count,
    spec,
)

# kind -> (registers, struct code), for the host (decode.py works these out from TYPE_NAMES)
TYPES = {kind: (register_count(kind), spec(kind)[0][1]) for kind in TYPE_NAMES.split()}
ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")


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
