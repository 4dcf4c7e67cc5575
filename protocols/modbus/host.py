"""Modbus RTU frames only the host builds or checks: write requests, one-call reads, whole responses.

Kept out of rtu.py, which the device imports (every function there costs it heap): the device only
reads, through a poll plan (read_request) and rtu.ResponseFramer.
"""

from protocols.modbus.crc import crc_ok
from protocols.modbus.errors import CRCError, FrameError
from protocols.modbus.rtu import _check_body, _check_range, _check_slave, _request_count, adu, read_request

READ_COILS = 1
READ_DISCRETE_INPUTS = 2
READ_HOLDING_REGISTERS = 3
READ_INPUT_REGISTERS = 4
WRITE_SINGLE_COIL = 5
WRITE_SINGLE_REGISTER = 6
WRITE_MULTIPLE_COILS = 15
WRITE_MULTIPLE_REGISTERS = 16

MAX_WRITE_BITS = 1968
MAX_WRITE_REGISTERS = 123
BROADCAST = 0


# ---- request PDUs --------------------------------------------------------------------------------


def write_coil_pdu(address, on):
    _check_range(address, 1, 1, "coil")
    return bytes((WRITE_SINGLE_COIL, address >> 8, address & 0xFF, 0xFF if on else 0, 0))


def write_register_pdu(address, value):
    _check_range(address, 1, 1, "register")
    if not 0 <= value <= 0xFFFF:
        raise ValueError("register value %r is not 0..65535 (encode signed values with values)" % (value,))
    return bytes((WRITE_SINGLE_REGISTER, address >> 8, address & 0xFF, value >> 8, value & 0xFF))


def write_coils_pdu(address, bits):
    count = len(bits)
    _check_range(address, count, MAX_WRITE_BITS, "coils")
    nbytes = (count + 7) >> 3
    pdu = bytearray(6 + nbytes)
    pdu[0] = WRITE_MULTIPLE_COILS
    pdu[1] = address >> 8
    pdu[2] = address & 0xFF
    pdu[3] = count >> 8
    pdu[4] = count & 0xFF
    pdu[5] = nbytes
    for i in range(count):
        if bits[i]:
            pdu[6 + (i >> 3)] |= 1 << (i & 7)
    return bytes(pdu)


def write_registers_pdu(address, values):
    """`values`: 16-bit ints, or the raw register bytes (e.g. from values.encode)."""
    if isinstance(values, (bytes, bytearray, memoryview)):
        data = bytes(values)
        if len(data) % 2:
            raise ValueError("register data must be an even number of bytes, got %d" % len(data))
    else:
        data = bytearray(2 * len(values))
        for i in range(len(values)):
            v = values[i]
            if not 0 <= v <= 0xFFFF:
                raise ValueError("register value %r is not 0..65535" % (v,))
            data[2 * i] = v >> 8
            data[2 * i + 1] = v & 0xFF
    count = len(data) // 2
    _check_range(address, count, MAX_WRITE_REGISTERS, "registers")
    fc = WRITE_MULTIPLE_REGISTERS
    head = bytes((fc, address >> 8, address & 0xFF, count >> 8, count & 0xFF, 2 * count))
    return head + bytes(data)


# ---- request ADUs --------------------------------------------------------------------------------


def read_coils(slave, address, count):
    return read_request(slave, READ_COILS, address, count)


def read_discrete_inputs(slave, address, count):
    return read_request(slave, READ_DISCRETE_INPUTS, address, count)


def read_holding_registers(slave, address, count):
    return read_request(slave, READ_HOLDING_REGISTERS, address, count)


def read_input_registers(slave, address, count):
    return read_request(slave, READ_INPUT_REGISTERS, address, count)


def write_coil(slave, address, on):
    _check_slave(slave, False)
    return adu(slave, write_coil_pdu(address, on))


def write_register(slave, address, value):
    _check_slave(slave, False)
    return adu(slave, write_register_pdu(address, value))


def write_coils(slave, address, bits):
    _check_slave(slave, False)
    return adu(slave, write_coils_pdu(address, bits))


def write_registers(slave, address, values):
    _check_slave(slave, False)
    return adu(slave, write_registers_pdu(address, values))


def check_response(request, response, n=-1):
    """Validates the complete response (first n bytes of `response`) to `request`.

    Checks, in this order: length plausible, CRC, slave address, function (an exception response
    raises ModbusException), length for the function, byte count against the requested quantity,
    echo of address/value/quantity for writes. Raises a ModbusError subclass; returns nothing.
    """
    if n < 0:
        n = len(response)
    if n < 5:
        raise FrameError("response of %d bytes is shorter than any Modbus frame" % n)
    if not crc_ok(response, n):
        raise CRCError("CRC mismatch in a %d-byte response" % n)
    _check_body(request, response, n)


def parse_response(request, response):
    """Validated response data, for host tools and tests (allocates; the device decodes in place).

    Returns a list of ints (functions 3, 4), a list of bools (1, 2), the echoed value (5: bool,
    6: int) or the quantity written (15, 16).
    """
    check_response(request, response)
    fc = request[1]
    if fc == 3 or fc == 4:
        return [(response[3 + 2 * i] << 8) | response[4 + 2 * i] for i in range(_request_count(request))]
    if fc == 1 or fc == 2:
        return [bool((response[3 + (i >> 3)] >> (i & 7)) & 1) for i in range(_request_count(request))]
    value = (response[4] << 8) | response[5]
    if fc == 5:
        return value == 0xFF00
    return value
