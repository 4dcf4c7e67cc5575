"""Slave side: answer a request ADU from a register/coil store (emulators and tests).

handle_request() follows the order of checks in the Modbus application protocol: function
supported (else exception 1), quantity in range (3), address range present (2), value valid (3).
A frame with a bad CRC or length, or addressed to another slave, gets no answer, like a real slave.
A store may raise ModbusException(function, code) from read/write to inject an exception (e.g. 6, busy).
Also the slave's framing: expected_request_length(), parse_request() and the response ADU builders.
"""

from protocols.modbus.crc import crc_ok, put_crc
from protocols.modbus.errors import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    CRCError,
    FrameError,
    ModbusError,
    ModbusException,
)
from protocols.modbus.host import BROADCAST, MAX_WRITE_BITS, MAX_WRITE_REGISTERS
from protocols.modbus.rtu import MAX_READ_BITS, MAX_READ_REGISTERS, adu
from protocols.modbus.values import to_registers

_TABLE_OF = {
    1: "coil",
    2: "discrete",
    3: "holding",
    4: "input",
    5: "coil",
    6: "holding",
    15: "coil",
    16: "holding",
}


class RegisterStore:
    """Four sparse tables (dicts address -> int, or -> bool for coils/discrete inputs).

    An address missing from its table is an illegal data address. Subclass and override read() /
    write() for values that change on every poll.
    """

    def __init__(self, holding=None, inputs=None, coils=None, discrete=None):
        self.tables = {
            "holding": {} if holding is None else holding,
            "input": {} if inputs is None else inputs,
            "coil": {} if coils is None else coils,
            "discrete": {} if discrete is None else discrete,
        }

    def read(self, table, address, count):
        """List of `count` values from `address`, or None if any address is not defined."""
        t = self.tables[table]
        out = []
        for a in range(address, address + count):
            v = t.get(a)
            if v is None:
                return None
            out.append(v)
        return out

    def write(self, table, address, values):
        """Stores `values` from `address`; False (nothing written) if any address is not defined."""
        t = self.tables[table]
        for a in range(address, address + len(values)):
            if a not in t:
                return False
        for i in range(len(values)):
            t[address + i] = values[i]
        return True

    def set_value(self, table, address, value, kind="u16", order="ABCD"):
        """Defines the registers holding `value` encoded as `kind` in `order`."""
        regs = to_registers(value, kind, order)
        t = self.tables[table]
        for i in range(len(regs)):
            t[address + i] = regs[i]


def handle_request(store, slave, request, n=-1):
    """The response ADU to `request` (first n bytes) for slave `slave`, or None when none is due."""
    if n < 0:
        n = len(request)
    if n < 4 or not crc_ok(request, n):
        return None
    to = request[0]
    if to != slave and to != BROADCAST:
        return None
    fc = request[1]
    table = _TABLE_OF.get(fc)
    if table is None:
        return None if to == BROADCAST else exception_response(slave, fc, ILLEGAL_FUNCTION)
    try:
        parse_request(request, n)
    except ModbusError:
        return None
    try:
        response = _serve(store, slave, request, n, fc, table)
    except ModbusException as err:
        response = exception_response(slave, fc, err.code)
    if to == BROADCAST:
        return None  # writes were applied; a broadcast is never answered
    return response


def _serve(store, slave, request, n, fc, table):
    address = (request[2] << 8) | request[3]
    qty = (request[4] << 8) | request[5]
    if fc <= 4:
        if not 1 <= qty <= (MAX_READ_BITS if fc <= 2 else MAX_READ_REGISTERS):
            raise ModbusException(fc, ILLEGAL_DATA_VALUE)
        if address + qty > 0x10000:
            raise ModbusException(fc, ILLEGAL_DATA_ADDRESS)
        values = store.read(table, address, qty)
        if values is None:
            raise ModbusException(fc, ILLEGAL_DATA_ADDRESS)
        if fc <= 2:
            return bits_response(slave, fc, values)
        return registers_response(slave, fc, values)
    if fc == 5:
        if qty not in (0, 0xFF00):
            raise ModbusException(fc, ILLEGAL_DATA_VALUE)
        values = [qty == 0xFF00]
    elif fc == 6:
        values = [qty]
    else:
        limit = MAX_WRITE_BITS if fc == 15 else MAX_WRITE_REGISTERS
        nbytes = request[6]
        want = (qty + 7) >> 3 if fc == 15 else 2 * qty
        if not 1 <= qty <= limit or nbytes != want:
            raise ModbusException(fc, ILLEGAL_DATA_VALUE)
        if address + qty > 0x10000:
            raise ModbusException(fc, ILLEGAL_DATA_ADDRESS)
        if fc == 15:
            values = [bool((request[7 + (i >> 3)] >> (i & 7)) & 1) for i in range(qty)]
        else:
            values = [(request[7 + 2 * i] << 8) | request[8 + 2 * i] for i in range(qty)]
    if not store.write(table, address, values):
        raise ModbusException(fc, ILLEGAL_DATA_ADDRESS)
    return echo_response(request)


# ---- request framing and responses ----------------------------------------------------------------


def expected_request_length(head, n=-1):
    """Total length of the request starting with `head`, or 0 while more bytes are needed.

    Raises FrameError for a function code this module does not serve (a slave answers those with
    exception 1 once the line is silent; the length cannot be known from the bytes).
    """
    if n < 0:
        n = len(head)
    if n < 2:
        return 0
    fc = head[1]
    if 1 <= fc <= 6:
        return 8
    if fc == 15 or fc == 16:
        if n < 7:
            return 0
        return 9 + head[6]
    raise FrameError("function %d: request length unknown" % fc)


def parse_request(request, n=-1):
    """(slave, function, address, quantity_or_value) of a complete request; CRC and length checked.

    Data of write-multiple requests starts at byte 7 of the request.
    """
    if n < 0:
        n = len(request)
    if n < 4:
        raise FrameError("request of %d bytes is too short" % n)
    if not crc_ok(request, n):
        raise CRCError("CRC mismatch in a %d-byte request" % n)
    want = expected_request_length(request, n)
    if n != want:
        raise FrameError("request of %d bytes, expected %d" % (n, want))
    return (request[0], request[1], (request[2] << 8) | request[3], (request[4] << 8) | request[5])


def exception_response(slave, function, code):
    return adu(slave, bytes((function | 0x80, code)))


def registers_response(slave, function, registers):
    """Response to a read of registers (function 3 or 4): `registers` as ints or raw bytes."""
    if isinstance(registers, (bytes, bytearray, memoryview)):
        data = bytes(registers)
    else:
        data = bytearray(2 * len(registers))
        for i in range(len(registers)):
            data[2 * i] = (registers[i] >> 8) & 0xFF
            data[2 * i + 1] = registers[i] & 0xFF
    buf = bytearray(len(data) + 5)
    buf[0] = slave
    buf[1] = function
    buf[2] = len(data)
    buf[3 : 3 + len(data)] = data
    put_crc(buf, 3 + len(data))
    return bytes(buf)


def bits_response(slave, function, bits):
    """Response to a read of coils or discrete inputs (function 1 or 2)."""
    nbytes = (len(bits) + 7) >> 3
    buf = bytearray(nbytes + 5)
    buf[0] = slave
    buf[1] = function
    buf[2] = nbytes
    for i in range(len(bits)):
        if bits[i]:
            buf[3 + (i >> 3)] |= 1 << (i & 7)
    put_crc(buf, 3 + nbytes)
    return bytes(buf)


def echo_response(request):
    """Response to a write (5, 6, 15, 16): the request's first 6 bytes with a new CRC."""
    buf = bytearray(8)
    buf[0:6] = request[0:6]
    put_crc(buf, 6)
    return bytes(buf)
