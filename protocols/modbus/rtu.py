"""Modbus RTU frames the device needs: read requests, response validation, an incremental framer.

An ADU is  slave | function | data | CRC(lo, hi).  Requests are built once (a poll plan caches them);
responses are validated in place and values are decoded straight from the receive buffer.

Function codes: 1 read coils, 2 read discrete inputs, 3 read holding registers, 4 read input
registers, 5 write single coil, 6 write single register, 15 write multiple coils, 16 write multiple
registers. Only what the device runs is here (each function costs it heap at import): write requests,
read shortcuts and whole-response parsing are in host.py, the slave side in slave.py.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


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

MAX_READ_BITS = 2000
MAX_READ_REGISTERS = 125
_MAX_ADU = const(256)
_BROADCAST = const(0)

# ResponseFramer.feed() results
NEED_MORE = 0
COMPLETE = 1
ERROR = 2


def _check_slave(slave, reading):
    if not 0 <= slave <= 255:
        raise ValueError("slave address %r is not 0..255" % (slave,))
    if reading and slave == _BROADCAST:
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


def read_pdu(function, address, count):
    """PDU of a read (function 1, 2, 3 or 4) of `count` bits or registers from `address`."""
    if function not in (1, 2, 3, 4):
        raise ValueError("function %r is not a read (1, 2, 3, 4)" % (function,))
    _check_range(address, count, MAX_READ_BITS if function <= 2 else MAX_READ_REGISTERS, "read")
    return bytes((function, address >> 8, address & 0xFF, count >> 8, count & 0xFF))


def read_request(slave, function, address, count):
    _check_slave(slave, True)
    return adu(slave, read_pdu(function, address, count))


def response_expected(request):
    """False for broadcast requests, which no slave answers."""
    return request[0] != _BROADCAST


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

    def __init__(self, hunt=False, size=_MAX_ADU):
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
