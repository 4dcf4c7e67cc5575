"""Cross-checks against two independent Modbus implementations (CPython only).

pymodbus 3.16.1 (its RTU framer and PDU classes) and minimalmodbus 2.1.1 build requests and
responses and decode values; our codec must agree byte for byte and value for value, in both
directions: our requests equal theirs, our parser accepts their responses, they accept ours.
"""

import random
import struct

import minimalmodbus
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from protocols.modbus import crc, errors, host, rtu, slave, values

CLIENT = FramerRTU(DecodePDU(False))  # decodes responses
SERVER = FramerRTU(DecodePDU(True))  # decodes requests
DT = ModbusClientMixin.DATATYPE
SETTINGS = settings(max_examples=60, deadline=None)


# ---- CRC --------------------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=300))
def test_crc_agrees_with_pymodbus_and_minimalmodbus(data):
    ours = crc.crc16(data)
    wire = bytes((ours & 0xFF, ours >> 8))
    assert FramerRTU.compute_CRC(data).to_bytes(2, "big") == wire
    assert minimalmodbus._calculate_crc(data) == wire


def test_crc_vectors_of_frames_test_agree_with_pymodbus():
    from tests.protocols.test_modbus_frames import CRC_VECTORS, h

    for body, wire in CRC_VECTORS:
        assert FramerRTU.compute_CRC(h(body)).to_bytes(2, "big") == h(wire)


# ---- requests and responses against pymodbus ----------------------------------------------------


def _bits(rng, n):
    return [bool(rng.getrandbits(1)) for _ in range(n)]


def _cases(rng):
    """(our request, pymodbus request PDU, pymodbus response PDU, value our parser must return)."""
    dev = rng.randint(1, 247)
    addr = rng.randint(0, 60000)
    nbits = rng.randint(1, 2000)
    nregs = rng.randint(1, 125)
    bits = _bits(rng, nbits)
    regs = [rng.randint(0, 0xFFFF) for _ in range(nregs)]
    wbits = _bits(rng, rng.randint(1, 1968))
    wregs = [rng.randint(0, 0xFFFF) for _ in range(rng.randint(1, 123))]
    value = rng.randint(0, 0xFFFF)
    on = bool(rng.getrandbits(1))
    return [
        (
            host.read_coils(dev, addr, nbits),
            ReadCoilsRequest(address=addr, count=nbits, dev_id=dev),
            ReadCoilsResponse(bits=bits, dev_id=dev),
            bits,
        ),
        (
            host.read_discrete_inputs(dev, addr, nbits),
            ReadDiscreteInputsRequest(address=addr, count=nbits, dev_id=dev),
            ReadDiscreteInputsResponse(bits=bits, dev_id=dev),
            bits,
        ),
        (
            host.read_holding_registers(dev, addr, nregs),
            ReadHoldingRegistersRequest(address=addr, count=nregs, dev_id=dev),
            ReadHoldingRegistersResponse(registers=regs, dev_id=dev),
            regs,
        ),
        (
            host.read_input_registers(dev, addr, nregs),
            ReadInputRegistersRequest(address=addr, count=nregs, dev_id=dev),
            ReadInputRegistersResponse(registers=regs, dev_id=dev),
            regs,
        ),
        (
            host.write_coil(dev, addr, on),
            WriteSingleCoilRequest(address=addr, bits=[on], dev_id=dev),
            WriteSingleCoilResponse(address=addr, bits=[on], dev_id=dev),
            on,
        ),
        (
            host.write_register(dev, addr, value),
            WriteSingleRegisterRequest(address=addr, registers=[value], dev_id=dev),
            WriteSingleRegisterResponse(address=addr, registers=[value], dev_id=dev),
            value,
        ),
        (
            host.write_coils(dev, 65536 - len(wbits), wbits),
            WriteMultipleCoilsRequest(address=65536 - len(wbits), bits=wbits, dev_id=dev),
            WriteMultipleCoilsResponse(address=65536 - len(wbits), count=len(wbits), dev_id=dev),
            len(wbits),
        ),
        (
            host.write_registers(dev, addr, wregs),
            WriteMultipleRegistersRequest(address=addr, registers=wregs, dev_id=dev),
            WriteMultipleRegistersResponse(address=addr, count=len(wregs), dev_id=dev),
            len(wregs),
        ),
    ]


@pytest.mark.parametrize("seed", range(25))
def test_every_function_against_pymodbus(seed):
    rng = random.Random(seed)
    for ours, their_req, their_resp, want in _cases(rng):
        fc = ours[1]
        # the request bytes are identical
        assert ours == CLIENT.buildFrame(their_req), fc
        # pymodbus, as a server, decodes our request to the same fields
        used, decoded = SERVER.handleFrame(ours, 0, 0)
        assert used == len(ours) and decoded.function_code == fc and decoded.dev_id == ours[0]
        # our parser accepts pymodbus's response, in one piece and in chunks
        response = CLIENT.buildFrame(their_resp)
        assert host.parse_response(ours, response) == want
        framer = rtu.ResponseFramer()
        framer.start(ours)
        cut = rng.randint(1, len(response) - 1)
        assert framer.feed(response[:cut]) == rtu.NEED_MORE
        assert framer.feed(response[cut:]) == rtu.COMPLETE
        # pymodbus accepts the response our slave helper builds for the same data
        store = slave.RegisterStore()
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
        address = (ours[2] << 8) | ours[3]
        if fc <= 4:
            store.tables[table].update({address + i: want[i] for i in range(len(want))})
        else:
            n = 1 if fc in (5, 6) else want
            store.tables[table].update({address + i: 0 for i in range(n)})
        mine = slave.handle_request(store, ours[0], ours)
        assert mine == response, fc
        used, pdu = CLIENT.handleFrame(mine, ours[0], 0)
        assert used == len(mine) and pdu is not None and pdu.function_code == fc


def test_exception_responses_from_pymodbus():
    for fc, code in ((1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (6, 6), (15, 11), (16, 10)):
        request = {
            1: host.read_coils(9, 0, 1),
            2: host.read_discrete_inputs(9, 0, 1),
            3: host.read_holding_registers(9, 0, 1),
            4: host.read_input_registers(9, 0, 1),
            5: host.write_coil(9, 0, True),
            6: host.write_register(9, 0, 1),
            15: host.write_coils(9, 0, [True]),
            16: host.write_registers(9, 0, [1]),
        }[fc]
        theirs = CLIENT.buildFrame(ExceptionResponse(fc, code, device_id=9))
        assert theirs == slave.exception_response(9, fc, code)
        with pytest.raises(errors.ModbusException) as info:
            host.check_response(request, theirs)
        assert (info.value.function, info.value.code) == (fc, code)
        framer = rtu.ResponseFramer()
        framer.start(request)
        assert framer.feed(theirs[:3]) == rtu.NEED_MORE
        assert framer.feed(theirs[3:]) == rtu.ERROR
        assert framer.error.code == code


def test_slave_exceptions_are_decoded_by_pymodbus():
    store = slave.RegisterStore(holding={0: 1})
    resp = slave.handle_request(store, 5, host.read_holding_registers(5, 1, 1))
    used, pdu = CLIENT.handleFrame(resp, 5, 0)
    assert pdu.isError() and pdu.exception_code == 2


# ---- values against pymodbus (ABCD, CDAB) and minimalmodbus (all four orders) -------------------

KINDS = {
    "u16": (DT.UINT16, st.integers(0, 0xFFFF)),
    "s16": (DT.INT16, st.integers(-0x8000, 0x7FFF)),
    "u32": (DT.UINT32, st.integers(0, 0xFFFFFFFF)),
    "s32": (DT.INT32, st.integers(-(1 << 31), (1 << 31) - 1)),
    "u64": (DT.UINT64, st.integers(0, (1 << 64) - 1)),
    "s64": (DT.INT64, st.integers(-(1 << 63), (1 << 63) - 1)),
    "f32": (DT.FLOAT32, st.floats(width=32, allow_nan=False)),
    "f64": (DT.FLOAT64, st.floats(allow_nan=False)),
}
MM_ORDER = {
    "ABCD": minimalmodbus.BYTEORDER_BIG,
    "DCBA": minimalmodbus.BYTEORDER_LITTLE,
    "BADC": minimalmodbus.BYTEORDER_BIG_SWAP,
    "CDAB": minimalmodbus.BYTEORDER_LITTLE_SWAP,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@SETTINGS
@given(data=st.data())
def test_values_agree_with_pymodbus(kind, data):
    dtype, strategy = KINDS[kind]
    value = data.draw(strategy)
    for order, word_order in (("ABCD", "big"), ("CDAB", "little")):
        regs = ModbusClientMixin.convert_to_registers(value, dtype, word_order=word_order)
        assert values.to_registers(value, kind, order) == regs
        raw = b"".join(struct.pack(">H", r) for r in regs)
        assert values.decode(raw, 0, kind, order) == ModbusClientMixin.convert_from_registers(
            regs, dtype, word_order=word_order
        )


@pytest.mark.parametrize("kind", ["u32", "s32", "u64", "s64", "f32", "f64"])
@SETTINGS
@given(data=st.data())
def test_values_agree_with_minimalmodbus_in_all_orders(kind, data):
    value = data.draw(KINDS[kind][1])
    nregs = values.register_count(kind)
    for order, mm in MM_ORDER.items():
        if kind[0] == "f":
            theirs = minimalmodbus._float_to_bytes(value, nregs, mm)
        else:
            theirs = minimalmodbus._long_to_bytes(value, kind[0] == "s", nregs, mm)
        assert values.encode(value, kind, order) == theirs, order
        if kind[0] == "f":
            back = minimalmodbus._bytes_to_float(values.encode(value, kind, order), nregs, mm)
        else:
            back = minimalmodbus._bytes_to_long(values.encode(value, kind, order), kind[0] == "s", nregs, mm)
        assert values.decode(theirs, 0, kind, order) == back == value


# ---- minimalmodbus as the master, our slave helper as the instrument ----------------------------


class FakeSerial:
    """Serial-port stand-in: each write is answered at once by our slave helper."""

    port = "emlog-fake"
    baudrate = 115200
    timeout = 0.05
    is_open = True

    def __init__(self, store, slave_id):
        self.store = store
        self.slave_id = slave_id
        self.requests = []
        self.pending = b""

    def open(self):
        pass

    def close(self):
        pass

    def reset_input_buffer(self):
        self.pending = b""

    def reset_output_buffer(self):
        pass

    def flush(self):
        pass

    def write(self, data):
        self.requests.append(bytes(data))
        self.pending = slave.handle_request(self.store, self.slave_id, data) or b""
        return len(data)

    def read(self, n):
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


def test_minimalmodbus_master_against_our_slave():
    store = slave.RegisterStore(
        holding={a: 0 for a in range(100, 120)},
        inputs={a: 0 for a in range(8)},
        coils={a: False for a in range(16)},
        discrete={a: a % 3 == 0 for a in range(16)},
    )
    store.set_value("input", 0, -1234, "s16")
    store.set_value("input", 2, 3.5, "f32", "CDAB")
    store.set_value("input", 4, 0x12345678, "u32", "BADC")
    port = FakeSerial(store, 17)
    inst = minimalmodbus.Instrument(port, 17)
    calls = [
        (
            lambda: inst.read_register(0, functioncode=4, signed=True),
            -1234,
            host.read_input_registers(17, 0, 1),
        ),
        (
            lambda: inst.read_float(2, functioncode=4, byteorder=minimalmodbus.BYTEORDER_LITTLE_SWAP),
            3.5,
            host.read_input_registers(17, 2, 2),
        ),
        (
            lambda: inst.read_long(4, functioncode=4, byteorder=minimalmodbus.BYTEORDER_BIG_SWAP),
            0x12345678,
            host.read_input_registers(17, 4, 2),
        ),
        (lambda: inst.write_register(100, 555, functioncode=6), None, host.write_register(17, 100, 555)),
        (lambda: inst.write_registers(101, [1, 2, 3]), None, host.write_registers(17, 101, [1, 2, 3])),
        (lambda: inst.read_registers(100, 4), [555, 1, 2, 3], host.read_holding_registers(17, 100, 4)),
        (
            lambda: inst.write_float(110, -0.75),
            None,
            host.write_registers(17, 110, values.encode(-0.75, "f32")),
        ),
        (lambda: inst.read_float(110), -0.75, host.read_holding_registers(17, 110, 2)),
        (lambda: inst.write_bit(3, 1, functioncode=5), None, host.write_coil(17, 3, True)),
        (lambda: inst.write_bits(5, [1, 0, 1]), None, host.write_coils(17, 5, [1, 0, 1])),
        (
            lambda: inst.read_bits(0, 10, functioncode=1),
            [0, 0, 0, 1, 0, 1, 0, 1, 0, 0],
            host.read_coils(17, 0, 10),
        ),
        (
            lambda: inst.read_bits(0, 7, functioncode=2),
            [1, 0, 0, 1, 0, 0, 1],
            host.read_discrete_inputs(17, 0, 7),
        ),
    ]
    for call, want, request in calls:
        got = call()
        if want is not None:
            assert got == want
        assert port.requests[-1] == request
    # an undefined register: minimalmodbus sees our exception response as "illegal data address"
    with pytest.raises(minimalmodbus.IllegalRequestError):
        inst.read_register(50)
    assert port.requests[-1] == host.read_holding_registers(17, 50, 1)
