"""Register values (all types, all four orders), bits, masks, scaling, and read planning.

Byte patterns are worked out by hand from IEEE 754 and two's complement (e.g. 1.0f = 3F800000);
test_modbus_peers.py checks the same decoders against pymodbus and minimalmodbus.
"""

import binascii

from portable import approx, raises

from protocols.modbus import host, rtu, slave, values
from protocols.modbus import plan as planner

INTERPRETERS = ("cpython", "micropython")


def h(text):
    return binascii.unhexlify(text.replace(" ", ""))


# kind, value, {order: wire bytes}
VECTORS = [
    ("u16", 0xABCD, {"ABCD": "AB CD", "DCBA": "CD AB", "BADC": "CD AB", "CDAB": "AB CD"}),
    ("s16", -2, {"ABCD": "FF FE", "DCBA": "FE FF", "BADC": "FE FF", "CDAB": "FF FE"}),
    ("s16", -32768, {"ABCD": "80 00", "DCBA": "00 80"}),
    (
        "u32",
        0x12345678,
        {"ABCD": "12 34 56 78", "DCBA": "78 56 34 12", "BADC": "34 12 78 56", "CDAB": "56 78 12 34"},
    ),
    ("u32", 0xFFFFFFFF, {"ABCD": "FF FF FF FF", "CDAB": "FF FF FF FF"}),
    ("s32", -2, {"ABCD": "FF FF FF FE", "DCBA": "FE FF FF FF", "BADC": "FF FF FE FF", "CDAB": "FF FE FF FF"}),
    ("s32", -2147483648, {"ABCD": "80 00 00 00", "CDAB": "00 00 80 00"}),
    (
        "f32",
        1.0,
        {"ABCD": "3F 80 00 00", "DCBA": "00 00 80 3F", "BADC": "80 3F 00 00", "CDAB": "00 00 3F 80"},
    ),
    (
        "f32",
        -2.5,
        {"ABCD": "C0 20 00 00", "DCBA": "00 00 20 C0", "BADC": "20 C0 00 00", "CDAB": "00 00 C0 20"},
    ),
    (
        "u64",
        0x0102030405060708,
        {
            "ABCD": "01 02 03 04 05 06 07 08",
            "DCBA": "08 07 06 05 04 03 02 01",
            "BADC": "02 01 04 03 06 05 08 07",
            "CDAB": "07 08 05 06 03 04 01 02",
        },
    ),
    (
        "s64",
        -2,
        {
            "ABCD": "FF FF FF FF FF FF FF FE",
            "DCBA": "FE FF FF FF FF FF FF FF",
            "BADC": "FF FF FF FF FF FF FE FF",
            "CDAB": "FF FE FF FF FF FF FF FF",
        },
    ),
    (
        "f64",
        1.0,
        {
            "ABCD": "3F F0 00 00 00 00 00 00",
            "DCBA": "00 00 00 00 00 00 F0 3F",
            "BADC": "F0 3F 00 00 00 00 00 00",
            "CDAB": "00 00 00 00 00 00 3F F0",
        },
    ),
    ("f64", -0.5, {"ABCD": "BF E0 00 00 00 00 00 00", "CDAB": "00 00 00 00 00 00 BF E0"}),
]


def test_decode_every_type_and_order():
    for kind, value, wires in VECTORS:
        for order in wires:
            wire = h(wires[order])
            for kind_of_buf in (bytes, bytearray, memoryview):
                got = values.decode(kind_of_buf(b"\x99" + wire), 1, kind, order)
                assert got == value, (kind, order, got)


def test_encode_every_type_and_order():
    for kind, value, wires in VECTORS:
        for order in wires:
            assert values.encode(value, kind, order) == h(wires[order]), (kind, order)
            buf = bytearray(12)
            values.encode_into(buf, 3, value, kind, order)
            assert bytes(buf[3 : 3 + len(h(wires[order]))]) == h(wires[order])
            assert buf[0:3] == bytearray(3)


def test_float_values_that_are_not_exact():
    # 123.456f = 0x42F6E979, 0.1 (double) = 0x3FB999999999999A
    assert approx(values.decode(h("42 F6 E9 79"), 0, "f32"), 123.456, rel=1e-6)
    assert approx(values.decode(h("E9 79 42 F6"), 0, "f32", "CDAB"), 123.456, rel=1e-6)
    assert approx(values.decode(h("3F B9 99 99 99 99 99 9A"), 0, "f64"), 0.1, rel=1e-6)


def test_registers_helpers():
    assert values.to_registers(0x12345678, "u32", "CDAB") == [0x5678, 0x1234]
    assert values.from_registers([0x5678, 0x1234], "u32", "CDAB") == 0x12345678
    assert values.to_registers(1.0, "f32") == [0x3F80, 0]
    assert values.register_count("f64") == 4 and values.register_count("bit") == 1
    with raises(ValueError):
        values.from_registers([1], "u32")


def test_bad_types_orders_and_ranges():
    with raises(ValueError):
        values.decode(b"\x00\x00", 0, "u24")
    with raises(ValueError):
        values.decode(b"\x00\x00", 0, "u16", "ABDC")
    for kind, bad in (
        ("u16", 65536),
        ("u16", -1),
        ("s16", 32768),
        ("s32", -(1 << 31) - 1),
        ("u32", 1 << 32),
        ("u64", -1),
        ("s64", 1 << 63),
        ("u16", 1.5),
    ):
        with raises(ValueError):
            values.encode(bad, kind)


def test_bits_masks_and_scaling():
    reg = h("80 01 00 F0")
    assert values.register_bit(reg, 0, 15) == 1
    assert values.register_bit(reg, 0, 0) == 1
    assert [values.register_bit(reg, 0, b) for b in range(1, 15)] == [0] * 14
    assert [values.register_bit(reg, 2, b) for b in range(16)] == [0, 0, 0, 0, 1, 1, 1, 1] + [0] * 8
    # coils 0..10 packed LSB first: CD 01 -> 1 0 1 1 0 0 1 1 | 1 0
    packed = h("CD 01")
    assert [values.packed_bit(packed, 0, i) for i in range(10)] == [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]
    assert values.mask_shift(0xF0F0) == 4
    assert values.field(0x1234, 0xF0F0) == 0x103
    assert values.field(0x1234, 0x0001) == 0
    with raises(ValueError):
        values.mask_shift(0)
    assert values.scaled(5) == 5 and isinstance(values.scaled(5), int)
    assert approx(values.scaled(1234, 0.1, -20), 103.4)


# ---- planning -----------------------------------------------------------------------------------

CWT = {  # ComWinTop weather/dust station, protocols/templates/cwt_uwd.json
    "wind_speed": {"address": 500, "type": "u16", "scale": 0.1},
    "wind_dir": {"address": 503, "type": "u16"},
    "humidity": {"address": 504, "type": "u16", "scale": 0.1},
    "temperature": {"address": 505, "type": "s16", "scale": 0.1},
    "noise": {"address": 506, "type": "u16", "scale": 0.1},
    "pm25": {"address": 507, "type": "u16"},
    "pm10": {"address": 508, "type": "u16"},
    "pressure": {"address": 509, "type": "u16", "scale": 0.1},
    "tsp": {"address": 514, "type": "u16"},
}


def spans(plan):
    return [(r.table, r.function, r.address, r.count) for r in plan.reads]


def test_plan_gap_tolerance():
    p = planner.plan_reads(CWT)
    assert spans(p) == [("holding", 3, 500, 1), ("holding", 3, 503, 7), ("holding", 3, 514, 1)]
    assert p.names == sorted(CWT)
    assert p.where[p.names.index("pm10")] == (1, 5)
    assert spans(planner.plan_reads(CWT, max_gap=2)) == [("holding", 3, 500, 10), ("holding", 3, 514, 1)]
    assert spans(planner.plan_reads(CWT, max_gap=4)) == [("holding", 3, 500, 15)]
    assert spans(planner.plan_reads(CWT, max_gap=4, max_registers=14)) == [
        ("holding", 3, 500, 10),
        ("holding", 3, 514, 1),
    ]


def test_plan_never_splits_values_or_exceeds_the_limit():
    points = [{"address": a, "type": "f32"} for a in range(0, 128, 2)]  # 0..127
    p = planner.plan_reads(points)
    assert spans(p) == [("holding", 3, 0, 124), ("holding", 3, 124, 4)]
    assert p.where[62] == (1, 0) and p.where[61] == (0, 122)
    p = planner.plan_reads([{"address": 0, "type": "u16"}, {"address": 1, "type": "f64"}], max_registers=4)
    assert spans(p) == [("holding", 3, 0, 1), ("holding", 3, 1, 4)]
    with raises(ValueError):
        planner.plan_reads([{"address": 0, "type": "f64"}], max_registers=3)
    with raises(ValueError):
        planner.plan_reads([], max_registers=126)


def test_plan_keeps_tables_apart_and_orders_reads():
    points = [
        {"address": 0, "type": "u16", "table": "input"},
        {"address": 1, "type": "u16"},
        {"address": 0, "type": "u16"},
        {"address": 1, "type": "bit", "table": "coil"},
        {"address": 0, "table": "discrete"},
        {"address": 3, "table": "discrete"},
        {"address": 1, "type": "u16", "table": "input"},
    ]
    p = planner.plan_reads(points, max_bit_gap=2)
    assert spans(p) == [("coil", 1, 1, 1), ("discrete", 2, 0, 4), ("holding", 3, 0, 2), ("input", 4, 0, 2)]
    assert p.where == [(3, 0), (2, 1), (2, 0), (0, 0), (1, 0), (1, 3), (3, 1)]
    assert p.names is None
    assert spans(planner.plan_reads(points))[1:3] == [("discrete", 2, 0, 1), ("discrete", 2, 3, 1)]


def test_plan_overlapping_points_and_new_read():
    points = [
        {"address": 10, "type": "u32"},
        {"address": 10, "type": "bit", "bit": 3},  # a flag inside the same registers
        {"address": 11, "type": "u16", "mask": 0xFF00},
        {"address": 12, "type": "u16", "new_read": True},
    ]
    p = planner.plan_reads(points)
    assert spans(p) == [("holding", 3, 10, 2), ("holding", 3, 12, 1)]
    assert p.where == [(0, 0), (0, 0), (0, 1), (1, 0)]


def test_plan_rejects_bad_points_with_the_name():
    for bad in (
        {"address": 1, "type": "u24"},
        {"address": -1},
        {"address": 70000},
        {"address": 65535, "type": "u32"},
        {"address": 1, "type": "bit"},  # which bit of the register?
        {"address": 1, "type": "bit", "bit": 16},
        {"address": 1, "table": "coil", "type": "u16"},
        {"address": 1, "table": "eeprom"},
        {"address": 1, "type": "f32", "mask": 3},
        {"address": 1, "type": "u16", "order": "ADBC"},
    ):
        with raises(ValueError, match="point bad"):
            planner.plan_reads({"bad": bad})


def test_plan_requests():
    p = planner.plan_reads(CWT)
    assert p.requests(1) == [
        host.read_holding_registers(1, 500, 1),
        host.read_holding_registers(1, 503, 7),
        host.read_holding_registers(1, 514, 1),
    ]


def test_plan_decodes_responses_in_place():
    points = [
        {"address": 0, "type": "u16", "scale": 0.1},
        {"address": 1, "type": "s16"},
        {"address": 2, "type": "f32"},  # device default order applies to 32/64-bit values
        {"address": 4, "type": "f32", "order": "ABCD"},
        {"address": 6, "type": "u32"},
        {"address": 8, "type": "s64", "order": "DCBA"},
        {"address": 12, "type": "f64"},
        {"address": 16, "type": "bit", "bit": 15},
        {"address": 16, "type": "bit", "bit": 0},
        {"address": 16, "type": "u16", "mask": 0x0F00},
        {"address": 17, "type": "u16", "order": "BADC", "offset": -1000},
        {"address": 0, "table": "coil"},
        {"address": 2, "table": "coil"},
    ]
    regs = {}
    store = slave.RegisterStore(holding=regs, coils={0: True, 1: False, 2: True})
    store.set_value("holding", 0, 1234)
    store.set_value("holding", 1, -5, "s16")
    store.set_value("holding", 2, -2.5, "f32", "CDAB")
    store.set_value("holding", 4, 3.0, "f32")
    store.set_value("holding", 6, 4000000000, "u32", "CDAB")
    store.set_value("holding", 8, -123456789012, "s64", "DCBA")
    store.set_value("holding", 12, 0.25, "f64", "CDAB")
    regs[16] = 0x8A01
    regs[17] = 0x3412  # 0x1234 byte-swapped
    p = planner.plan_reads(points, order="CDAB", max_bit_gap=1)
    out = [None] * len(points)
    for i in range(len(p.reads)):
        request = p.reads[i].request(7)
        response = slave.handle_request(store, 7, request)
        framer = rtu.ResponseFramer()
        framer.start(request)
        assert framer.feed(response) == rtu.COMPLETE
        p.decode(i, framer.frame, out)
    assert approx(out[0], 123.4)
    assert out[1:9] == [-5, -2.5, 3.0, 4000000000, -123456789012, 0.25, 1, 1]
    assert out[9] == 0xA
    assert out[10] == 0x1234 - 1000
    assert out[11:] == [1, 1]


def test_plan_decodes_a_60_register_response():
    points = [{"address": 2 * i, "type": "f32"} for i in range(30)]
    p = planner.plan_reads(points)
    assert spans(p) == [("holding", 3, 0, 60)]
    regs = []
    for i in range(30):
        regs += values.to_registers(i * 0.5 - 3, "f32")
    response = slave.registers_response(1, 3, regs)
    host.check_response(p.reads[0].request(1), response)
    out = [0.0] * 30
    p.decode(0, response, out)
    assert out == [i * 0.5 - 3 for i in range(30)]
