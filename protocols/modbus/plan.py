"""Poll planning: merge a device's points into the fewest reads, then decode each read in place.

A point is a dict as in protocols/templates (`address`, `type`, optional `table`, `order`, `bit`,
`mask`, `scale`, `offset`, `new_read`). Points of different tables are never merged; a multi-register
value is never split across reads; a read never covers more than `max_registers` registers (or
`max_bits` bits) nor a run of more than `max_gap` (`max_bit_gap`) unused registers (bits) - some
instruments answer exception 2 for any undefined register, so the default gap is 0.

Merging is greedy in address order, which is optimal for non-overlapping points: a read may take the
next point exactly when all constraints still hold, and taking it never hurts later reads.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from protocols.modbus import rtu
from protocols.modbus.decode import TYPE_NAMES, decode_spec, mask_shift, packed_bit, register_bit, register_count, spec

TABLES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}

# decode modes of a plan entry (const: not stored in the module's globals on the device)
_VALUE = const(0)
_REG_BIT = const(1)
_PACKED_BIT = const(2)
_INT16 = const(3)  # u16/s16 by arithmetic: no struct tuple allocated per value


class Read:
    """One read request of the plan: `function` over `count` registers/bits from `address`."""

    def __init__(self, table, address, count):
        self.table = table
        self.function = TABLES[table]
        self.address = address
        self.count = count
        self.points = []  # indices of the points it carries
        self.entries = []  # (point index, byte or bit position, mode, spec, bit, mask, shift, scale, offset)

    def request(self, slave):
        return rtu.read_request(slave, self.function, self.address, self.count)

    def __repr__(self):
        return "Read(%s, %d, %d)" % (self.table, self.address, self.count)


class Plan:
    """reads: list of Read; where[i] = (read index, offset in registers or bits) of point i."""

    def __init__(self, names, reads, where):
        self.names = names
        self.reads = reads
        self.where = where
        self.entries = [r.entries for r in reads]  # what decode() needs, per read

    def requests(self, slave):
        """The request ADU of every read, in order (build once, send every poll)."""
        return [r.request(slave) for r in self.reads]

    def compact(self):
        """Keeps only what decode() needs (the device, once its requests are built): RAM matters there."""
        self.names = self.reads = self.where = None
        self.entries = tuple(tuple(e) for e in self.entries)

    def decode(self, index, response, out):
        """Stores the value of every point of read `index` into out[point index].

        `response` is the validated response ADU of that read (bytes, bytearray or memoryview,
        e.g. ResponseFramer.frame). Values are raw * scale + offset; bits are 0 or 1.
        """
        for e in self.entries[index]:
            mode = e[2]
            if mode == _INT16:
                o = e[1]
                kind = e[3]  # bit 0: signed, bit 1: bytes swapped
                if kind & 2:
                    raw = (response[o + 1] << 8) | response[o]
                else:
                    raw = (response[o] << 8) | response[o + 1]
                if kind & 1 and raw & 0x8000:
                    raw -= 0x10000
                if e[5]:
                    raw = (raw & e[5]) >> e[6]
            elif mode == _VALUE:
                raw = decode_spec(response, e[1], e[3])
                if e[5]:
                    raw = (raw & e[5]) >> e[6]
            elif mode == _REG_BIT:
                raw = register_bit(response, e[1], e[4])
            else:
                raw = packed_bit(response, 3, e[1])
            if e[7] != 1:
                raw = raw * e[7]
            if e[8]:
                raw = raw + e[8]
            out[e[0]] = raw


def _normalize(p, name, table, order):
    if not isinstance(p, dict):
        raise ValueError("point %s: must be a dict with at least an address" % name)
    table = p.get("table", table)
    if table not in TABLES:
        raise ValueError("point %s: unknown table %r (use coil, discrete, holding or input)" % (name, table))
    address = p.get("address")
    if not isinstance(address, int) or not 0 <= address <= 0xFFFF:
        raise ValueError("point %s: address %r is not an int 0..65535" % (name, address))
    bits_table = TABLES[table] <= 2
    bit = p.get("bit")
    kind = p.get("type", "bit" if bits_table or bit is not None else "u16")
    mask = p.get("mask", 0)
    scale = p.get("scale", 1)
    offset = p.get("offset", 0)
    if bits_table:
        if kind != "bit" or bit is not None or mask:
            raise ValueError("point %s: %s points are single bits (type bit, no bit/mask)" % (name, table))
        return table, address, 1, _PACKED_BIT, None, 0, 0, 0, scale, offset
    if kind == "bit":
        if not isinstance(bit, int) or not 0 <= bit <= 15:
            raise ValueError('point %s: a bit of a %s register needs "bit": 0..15' % (name, table))
        return table, address, 1, _REG_BIT, None, bit, 0, 0, scale, offset
    try:
        size = register_count(kind)
    except ValueError:
        raise ValueError("point %s: unknown type %r (use %s or bit)" % (name, kind, TYPE_NAMES))
    if bit is not None:
        raise ValueError('point %s: "bit" needs type bit' % name)
    # A device's default order describes its 32/64-bit values; 16-bit registers stay big-endian
    # unless the point itself says otherwise.
    o = p.get("order", order if size > 1 else "ABCD")
    try:
        s = spec(kind, o)
    except ValueError as err:
        raise ValueError("point %s: %s" % (name, err))
    shift = 0
    if mask:
        if kind[0] == "f" or not isinstance(mask, int) or mask < 0:
            raise ValueError("point %s: mask needs an integer type and a positive int" % name)
        shift = mask_shift(mask)
    if address + size > 0x10000:
        raise ValueError("point %s: registers %d..%d run past 65535" % (name, address, address + size - 1))
    if size == 1:
        code = (1 if kind == "s16" else 0) | (2 if s[1] is not None or s[0][0] == "<" else 0)
        return table, address, 1, _INT16, code, 0, mask, shift, scale, offset
    return table, address, size, _VALUE, s, 0, mask, shift, scale, offset


def plan_reads(
    points,
    table="holding",
    order="ABCD",
    max_registers=rtu.MAX_READ_REGISTERS,
    max_gap=0,
    max_bits=rtu.MAX_READ_BITS,
    max_bit_gap=0,
):
    """Plans the reads of one device's points (a list of dicts, or a dict name -> dict).

    `table` and `order` are the device's defaults. Returns a Plan; plan.names is the list of point
    names (sorted) when `points` is a dict, else None.
    """
    if not 1 <= max_registers <= rtu.MAX_READ_REGISTERS:
        raise ValueError("max_registers %r is not 1..%d" % (max_registers, rtu.MAX_READ_REGISTERS))
    if not 1 <= max_bits <= rtu.MAX_READ_BITS:
        raise ValueError("max_bits %r is not 1..%d" % (max_bits, rtu.MAX_READ_BITS))
    if max_gap < 0 or max_bit_gap < 0:
        raise ValueError("gap tolerances must be >= 0")
    names = None
    if isinstance(points, dict):
        names = sorted(points)
        points = [points[k] for k in names]
    norm = []
    groups = {}
    for i in range(len(points)):
        n = _normalize(points[i], names[i] if names else str(i), table, order)
        norm.append(n)
        groups.setdefault(n[0], []).append((n[1], -n[2], i, bool(points[i].get("new_read"))))

    reads = []
    where = [None] * len(points)
    for t in ("coil", "discrete", "holding", "input"):
        items = groups.get(t)
        if not items:
            continue
        items.sort()
        bits = TABLES[t] <= 2
        limit = max_bits if bits else max_registers
        gap = max_bit_gap if bits else max_gap
        cur = None
        end = 0
        for address, negsize, i, new_read in items:
            size = -negsize
            if size > limit:
                label = names[i] if names else str(i)
                raise ValueError("point %s: %d registers exceed a read of at most %d" % (label, size, limit))
            stop = address + size
            fits = cur is not None and address - end <= gap and max(end, stop) - cur.address <= limit
            if fits and not new_read:
                if stop > end:
                    end = stop
            else:
                if cur is not None:
                    cur.count = end - cur.address
                cur = Read(t, address, size)
                reads.append(cur)
                end = stop
            cur.points.append(i)
            where[i] = (len(reads) - 1, address - cur.address)
        cur.count = end - cur.address

    for i in range(len(norm)):
        n = norm[i]
        ri, off = where[i]
        mode = n[3]
        pos = off if mode == _PACKED_BIT else 3 + 2 * off
        reads[ri].entries.append((i, pos, mode, n[4], n[5], n[6], n[7], n[8], n[9]))
    return Plan(names, reads, where)
