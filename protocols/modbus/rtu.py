"""Modbus RTU frames: requests, response validation and an incremental response framer.

An ADU is  slave | function | data | CRC(lo, hi).  Requests are built once (a poll plan caches them);
responses are validated in place and values are decoded straight from the receive buffer.

Function codes: 1 read coils, 2 read discrete inputs, 3 read holding registers, 4 read input
registers, 5 write single coil, 6 write single register, 15 write multiple coils, 16 write multiple
registers.
"""

from protocols.modbus.crc import crc_ok, put_crc
from protocols.modbus.errors import (
    ByteCountError,
    CRCError,
    FrameError,
    ModbusError,
    ModbusException,
    WrongAddressError,
    WrongEchoError,
    WrongFunctionError,
)

READ_COILS = 1
READ_DISCRETE_INPUTS = 2
READ_HOLDING_REGISTERS = 3
READ_INPUT_REGISTERS = 4
WRITE_SINGLE_COIL = 5
WRITE_SINGLE_REGISTER = 6
WRITE_MULTIPLE_COILS = 15
WRITE_MULTIPLE_REGISTERS = 16

MAX_READ_BITS = 2000
MAX_READ_REGISTERS = 125
MAX_WRITE_BITS = 1968
MAX_WRITE_REGISTERS = 123
MAX_ADU = 256
BROADCAST = 0

# ResponseFramer.feed() results
NEED_MORE = 0
COMPLETE = 1
ERROR = 2

_READ_LIMIT = {1: MAX_READ_BITS, 2: MAX_READ_BITS, 3: MAX_READ_REGISTERS, 4: MAX_READ_REGISTERS}


def _check_slave(slave, reading):
    if not 0 <= slave <= 255:
        raise ValueError("slave address %r is not 0..255" % (slave,))
    if reading and slave == BROADCAST:
        raise ValueError("a read cannot be broadcast (slave 0 never answers)")


def _check_range(address, count, limit, what):
    if not 1 <= count <= limit:
        raise ValueError("%s quantity %r is not 1..%d" % (what, count, limit))
    if not 0 <= address <= 0xFFFF or address + count > 0x10000:
        raise ValueError("%s address range %r+%r is outside 0..65535" % (what, address, count))


def adu(slave, pdu):
    """The RTU frame for `pdu` (function code + data) sent to `slave`: address, pdu, CRC."""
    n = len(pdu)
    buf = bytearray(n + 3)
    buf[0] = slave
    buf[1 : n + 1] = pdu
    put_crc(buf, n + 1)
    return bytes(buf)


# ---- request PDUs --------------------------------------------------------------------------------


def read_pdu(function, address, count):
    """PDU of a read (function 1, 2, 3 or 4) of `count` bits or registers from `address`."""
    limit = _READ_LIMIT.get(function)
    if limit is None:
        raise ValueError("function %r is not a read (1, 2, 3, 4)" % (function,))
    _check_range(address, count, limit, "read")
    return bytes((function, address >> 8, address & 0xFF, count >> 8, count & 0xFF))


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


def read_request(slave, function, address, count):
    _check_slave(slave, True)
    return adu(slave, read_pdu(function, address, count))


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


def response_expected(request):
    """False for broadcast requests, which no slave answers."""
    return request[0] != BROADCAST


def _request_count(request):
    return (request[4] << 8) | request[5]


def _normal_length(request):
    fc = request[1]
    if fc == 3 or fc == 4:
        return 5 + 2 * _request_count(request)
    if fc == 1 or fc == 2:
        return 5 + ((_request_count(request) + 7) >> 3)
    if fc == 5 or fc == 6 or fc == 15 or fc == 16:
        return 8
    raise ValueError("function %d is not supported" % fc)


def expected_response_length(request, head, n=-1):
    """Total length of the response to `request` whose first bytes are `head` (n of them).

    Returns 0 while fewer than 2 bytes are in (the function byte decides the layout: an exception
    response is always 5 bytes). Raises WrongFunctionError when the function byte is neither the
    request's function nor its exception form.
    """
    if n < 0:
        n = len(head)
    if n < 2:
        return 0
    fc = head[1]
    if fc == request[1]:
        return _normal_length(request)
    if fc == request[1] | 0x80:
        return 5
    raise WrongFunctionError("function %d in the response to function %d" % (fc, request[1]))


def _expected_byte_count(request):
    fc = request[1]
    if fc == 3 or fc == 4:
        return 2 * _request_count(request)
    return (_request_count(request) + 7) >> 3


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


def _wrong_address(got, want):
    return WrongAddressError("response from slave %d to a request for slave %d" % (got, want))


def _check_body(request, response, n):
    # Everything after the CRC: shared by check_response and the framer.
    if response[0] != request[0]:
        raise _wrong_address(response[0], request[0])
    fc = request[1]
    got = response[1]
    if got == fc | 0x80:
        if n != 5:
            raise FrameError("exception response of %d bytes (must be 5)" % n)
        raise ModbusException(fc, response[2])
    if got != fc:
        raise WrongFunctionError("function %d in the response to function %d" % (got, fc))
    if fc <= 4:
        want = _expected_byte_count(request)
        if response[2] != want:
            raise ByteCountError("byte count %d, expected %d" % (response[2], want))
        if n != 5 + want:
            raise FrameError("response of %d bytes, expected %d" % (n, 5 + want))
        return
    if n != 8:
        raise FrameError("write response of %d bytes (must be 8)" % n)
    for k in range(2, 6):
        if response[k] != request[k]:
            raise WrongEchoError("write response does not echo the request's address/value/quantity")


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


class ResponseFramer:
    """Collects the response to one request from chunks as they arrive on the UART.

    framer.start(request); then feed(chunk) for each chunk until it returns COMPLETE or ERROR.
    COMPLETE: `frame` is a memoryview of the validated response (data of reads at byte 3).
    ERROR: `error` is the ModbusError (ModbusException for an exception response, whose `frame`
    is also set). Errors are reported as soon as the bytes show them (wrong address, function or
    byte count) so the caller can stop waiting; it should then drain the line until silence.
    Bytes after a complete frame are counted in `trailing`, not interpreted.

    With hunt=True, leading bytes that are not the expected slave address are dropped (counted in
    `skipped`): some RS-485 transceivers emit a spurious byte when the driver turns around.
    One framer owns one preallocated buffer and is reused for every request.
    """

    def __init__(self, hunt=False, size=MAX_ADU):
        self.buf = bytearray(size)
        self._mv = memoryview(self.buf)
        self.hunt = hunt
        self.request = None
        self.reset()

    def reset(self):
        self.n = 0
        self.need = 0
        self.state = NEED_MORE
        self.error = None
        self.frame = None
        self.trailing = 0
        self.skipped = 0

    def start(self, request):
        if not response_expected(request):
            raise ValueError("broadcast requests get no response")
        self.request = request
        self.reset()

    def _fail(self, err):
        self.state = ERROR
        self.error = err
        return ERROR

    def feed(self, data, count=-1):
        """Adds the first `count` bytes of `data` (default all); returns NEED_MORE, COMPLETE or ERROR."""
        if count < 0:
            count = len(data)
        if self.state != NEED_MORE:
            self.trailing += count
            return self.state
        request = self.request
        buf = self.buf
        i = 0
        while i < count:
            n = self.n
            if n < 3:
                # Byte by byte through the header so each check fires at the first byte that shows it.
                b = data[i]
                i += 1
                if n == 0:
                    if b != request[0]:
                        if self.hunt:
                            self.skipped += 1
                            continue
                        buf[0] = b
                        self.n = 1
                        return self._fail(_wrong_address(b, request[0]))
                elif n == 1:
                    buf[1] = b
                    self.n = 2
                    try:
                        self.need = expected_response_length(request, buf, 2)
                    except WrongFunctionError as err:
                        return self._fail(err)
                    continue
                elif request[1] <= 4 and buf[1] == request[1] and b != _expected_byte_count(request):
                    buf[2] = b
                    self.n = 3
                    return self._fail(
                        ByteCountError("byte count %d, expected %d" % (b, _expected_byte_count(request)))
                    )
                buf[n] = b
                self.n = n + 1
            else:
                take = self.need - n
                if take > count - i:
                    take = count - i
                self._mv[n : n + take] = data[i : i + take]
                self.n = n + take
                i += take
            if self.n == self.need:
                self.trailing = count - i
                return self._complete()
        return NEED_MORE

    def _complete(self):
        n = self.n
        if not crc_ok(self.buf, n):
            return self._fail(CRCError("CRC mismatch in a %d-byte response" % n))
        self.frame = self._mv[:n]
        try:
            _check_body(self.request, self.buf, n)
        except ModbusError as err:
            if not isinstance(err, ModbusException):
                self.frame = None
            return self._fail(err)
        self.state = COMPLETE
        return COMPLETE


# ---- slave side: requests ------------------------------------------------------------------------


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
