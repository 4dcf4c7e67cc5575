"""Property tests (CPython only, hypothesis): value round trips, planner invariants, framer totality."""

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocols.modbus import errors, host, rtu, slave, values
from protocols.modbus.plan import TABLES, plan_reads

SETTINGS = settings(max_examples=150, deadline=None)

RANGES = {
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "s32": (-(1 << 31), (1 << 31) - 1),
    "u64": (0, (1 << 64) - 1),
    "s64": (-(1 << 63), (1 << 63) - 1),
}


@st.composite
def typed_values(draw):
    kind = draw(st.sampled_from(sorted(values.TYPES)))
    if kind == "f32":
        value = draw(st.floats(width=32))
    elif kind == "f64":
        value = draw(st.floats())
    else:
        value = draw(st.integers(*RANGES[kind]))
    return kind, value


def same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


@SETTINGS
@given(typed_values(), st.sampled_from(values.ORDERS), st.integers(0, 7))
def test_encode_decode_round_trip(kv, order, pad):
    kind, value = kv
    raw = values.encode(value, kind, order)
    assert len(raw) == 2 * values.register_count(kind)
    buf = bytearray(b"\xee" * pad) + raw + b"\xee"
    assert same(values.decode(memoryview(buf), pad, kind, order), value)
    assert same(values.from_registers(values.to_registers(value, kind, order), kind, order), value)
    # every order is a byte permutation of the big-endian encoding
    assert sorted(raw) == sorted(values.encode(value, kind, "ABCD"))


@SETTINGS
@given(
    st.binary(min_size=8, max_size=8), st.sampled_from(sorted(values.TYPES)), st.sampled_from(values.ORDERS)
)
def test_decode_encode_round_trip_of_any_bytes(raw, kind, order):
    raw = raw[: 2 * values.register_count(kind)]
    v = values.decode(raw, 0, kind, order)
    if kind[0] == "f" and math.isnan(v):
        return  # NaN payloads (signalling NaNs) need not survive the trip through a Python float
    assert values.encode(v, kind, order) == raw


# ---- planner ----------------------------------------------------------------------------------


@st.composite
def point_sets(draw, overlapping=True, breaks=True):
    n = draw(st.integers(0, 40))
    points = []
    for _ in range(n):
        table = draw(st.sampled_from(sorted(TABLES)))
        if TABLES[table] <= 2:
            p = {"table": table, "address": draw(st.integers(0, 3000))}
        else:
            kind = draw(st.sampled_from(sorted(values.TYPES) + ["bit"]))
            p = {"table": table, "type": kind, "address": draw(st.integers(0, 600))}
            if kind == "bit":
                p["bit"] = draw(st.integers(0, 15))
        if breaks and draw(st.booleans()) and draw(st.booleans()):
            p["new_read"] = True
        points.append(p)
    if not overlapping:
        seen = set()
        kept = []
        for p in points:
            size = values.register_count(p.get("type", "bit"))
            cells = {(p["table"], a) for a in range(p["address"], p["address"] + size)}
            if not cells & seen:
                seen |= cells
                kept.append(p)
        points = kept
    return points


def _size(p):
    return values.register_count(p.get("type", "bit"))


def _check_invariants(points, plan, limits, gaps):
    covered = [0] * len(points)
    for ri, r in enumerate(plan.reads):
        bits = TABLES[r.table] <= 2
        assert r.function == TABLES[r.table]
        assert 1 <= r.count <= limits[bits]
        used = set()
        for i in r.points:
            covered[i] += 1
            p = points[i]
            assert p["table"] == r.table
            assert plan.where[i] == (ri, p["address"] - r.address)
            assert r.address <= p["address"] and p["address"] + _size(p) <= r.address + r.count
            used.update(range(p["address"], p["address"] + _size(p)))
        # the read starts and ends on wanted registers; no unused run longer than the tolerance
        assert r.address in used and r.address + r.count - 1 in used
        run = 0
        for a in range(r.address, r.address + r.count):
            run = 0 if a in used else run + 1
            assert run <= gaps[bits]
    assert covered == [1] * len(points)


@SETTINGS
@given(point_sets(), st.integers(1, 125), st.integers(0, 10), st.integers(1, 2000), st.integers(0, 40))
def test_plan_invariants(points, max_registers, max_gap, max_bits, max_bit_gap):
    assume(all(_size(p) <= max_registers for p in points))
    plan = plan_reads(
        points, max_registers=max_registers, max_gap=max_gap, max_bits=max_bits, max_bit_gap=max_bit_gap
    )
    _check_invariants(
        points, plan, {False: max_registers, True: max_bits}, {False: max_gap, True: max_bit_gap}
    )
    for p, (ri, _) in zip(points, plan.where):
        if p.get("new_read"):
            assert plan.reads[ri].address == p["address"]


def _fewest_reads(points, limits, gaps):
    """Minimum number of reads by dynamic programming over each table's points in address order."""
    total = 0
    for table in TABLES:
        items = sorted((p["address"], _size(p)) for p in points if p["table"] == table)
        bits = TABLES[table] <= 2
        best = [0] + [None] * len(items)
        for j in range(1, len(items) + 1):
            for i in range(j):  # items[i:j] in one read
                start = items[i][0]
                end = items[j - 1][0] + items[j - 1][1]
                ok = end - start <= limits[bits] and all(
                    items[k + 1][0] - (items[k][0] + items[k][1]) <= gaps[bits] for k in range(i, j - 1)
                )
                if ok and best[i] is not None and (best[j] is None or best[i] + 1 < best[j]):
                    best[j] = best[i] + 1
        total += best[len(items)]
    return total


@SETTINGS
@given(
    point_sets(overlapping=False, breaks=False),
    st.integers(4, 40),
    st.integers(0, 6),
    st.integers(1, 64),
    st.integers(0, 20),
)
def test_plan_uses_the_fewest_reads(points, max_registers, max_gap, max_bits, max_bit_gap):
    limits = {False: max_registers, True: max_bits}
    gaps = {False: max_gap, True: max_bit_gap}
    plan = plan_reads(
        points, max_registers=max_registers, max_gap=max_gap, max_bits=max_bits, max_bit_gap=max_bit_gap
    )
    assert len(plan.reads) == _fewest_reads(points, limits, gaps)


# ---- framing ----------------------------------------------------------------------------------


@st.composite
def exchanges(draw):
    """A request, the store that answers it, and the slave's response."""
    dev = draw(st.integers(1, 247))
    fc = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16]))
    limit = {1: 2000, 2: 2000, 3: 125, 4: 125, 5: 1, 6: 1, 15: 1968, 16: 123}[fc]
    count = draw(st.integers(1, min(limit, 300)))
    address = draw(st.integers(0, 65536 - count))
    bits = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    regs = draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count))
    if fc <= 4:
        request = rtu.read_request(dev, fc, address, count)
    elif fc == 5:
        request = host.write_coil(dev, address, bits[0])
    elif fc == 6:
        request = host.write_register(dev, address, regs[0])
    elif fc == 15:
        request = host.write_coils(dev, address, bits)
    else:
        request = host.write_registers(dev, address, regs)
    data = bits if fc in (1, 2, 5, 15) else regs
    table = {
        1: "coil",
        2: "discrete",
        3: "holding",
        4: "input",
        5: "coil",
        6: "holding",
        15: "coil",
        16: "holding",
    }[fc]
    store = slave.RegisterStore()
    store.tables[table].update({address + i: data[i] for i in range(count)})
    response = slave.handle_request(store, dev, request)
    return request, response, data


@SETTINGS
@given(exchanges(), st.data())
def test_framer_completes_any_valid_response_in_any_chunks(ex, data):
    request, response, stored = ex
    want = host.parse_response(request, response)
    if request[1] <= 4:
        assert want == ([bool(b) for b in stored] if request[1] <= 2 else stored)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(response) - 1), max_size=6))))
    framer = rtu.ResponseFramer()
    framer.start(request)
    pos = 0
    for cut in cuts + [len(response)]:
        state = framer.feed(response[pos:cut])
        assert state == (rtu.COMPLETE if cut == len(response) else rtu.NEED_MORE)
        pos = cut
    assert bytes(framer.frame) == response
    assert host.parse_response(request, framer.frame) == want


@SETTINGS
@given(exchanges(), st.binary(max_size=300), st.booleans())
def test_framer_is_total_and_never_accepts_what_the_validator_rejects(ex, garbage, hunt):
    request, response, _ = ex
    stream = garbage + response if hunt else garbage
    framer = rtu.ResponseFramer(hunt=hunt)
    framer.start(request)
    state = rtu.NEED_MORE
    for i in range(len(stream)):
        state = framer.feed(stream[i : i + 1])
        assert state in (rtu.NEED_MORE, rtu.COMPLETE, rtu.ERROR)
        if state != rtu.NEED_MORE:
            break
    if state == rtu.ERROR:
        assert isinstance(framer.error, errors.ModbusError)
    if state == rtu.COMPLETE:
        host.check_response(request, framer.frame)  # must not raise
        assert len(framer.frame) == rtu.expected_response_length(request, framer.frame)


@SETTINGS
@given(exchanges(), st.integers(0, 10_000), st.integers(1, 255))
def test_a_corrupted_byte_is_always_detected(ex, where, flip):
    request, response, _ = ex
    bad = bytearray(response)
    bad[where % len(bad)] ^= flip
    framer = rtu.ResponseFramer()
    framer.start(request)
    state = framer.feed(bytes(bad))
    # CRC-16 catches every single-byte error; the header checks may catch it first
    assert state == rtu.ERROR
    try:
        host.check_response(request, bytes(bad))
    except errors.ModbusError:
        pass
    else:
        raise AssertionError("corruption accepted")


@st.composite
def register_points(draw):
    kind = draw(st.sampled_from(sorted(values.TYPES)))
    p = {"address": draw(st.integers(0, 40)), "type": kind, "order": draw(st.sampled_from(values.ORDERS))}
    if kind[0] != "f" and draw(st.booleans()):
        p["mask"] = draw(st.integers(1, 0xFFFF))
    if draw(st.booleans()):
        p["scale"] = draw(st.sampled_from([0.1, 0.01, 10, -1]))
    if draw(st.booleans()):
        p["offset"] = draw(st.integers(-1000, 1000))
    return p


@SETTINGS
@given(st.lists(register_points(), min_size=1, max_size=20), st.binary(min_size=88, max_size=88))
def test_plan_decode_agrees_with_values_decode(points, data):
    plan = plan_reads(points, max_gap=125)
    out = [None] * len(points)
    for i, r in enumerate(plan.reads):
        response = slave.registers_response(1, 3, data[2 * r.address : 2 * (r.address + r.count)])
        plan.decode(i, response, out)
    for p, got in zip(points, out):
        raw = values.decode(data, 2 * p["address"], p["type"], p["order"])
        if "mask" in p:
            raw = values.field(raw, p["mask"])
        want = raw * p.get("scale", 1) + p.get("offset", 0)
        nan = isinstance(want, float) and math.isnan(want)
        assert math.isnan(got) if nan else got == want, (p, got, want)  # -0.0 + 0 is 0.0: == is enough
