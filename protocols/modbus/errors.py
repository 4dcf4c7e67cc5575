"""Modbus errors: one class per failure kind, each with a short `reason` string.

The bus owner counts failures by `reason` ("crc", "wrong-address", ...) so a noisy line (CRC), a
confused device (exception) and someone else's traffic (wrong address) stay distinguishable.
"""

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
SERVER_DEVICE_FAILURE = 4
ACKNOWLEDGE = 5
SERVER_DEVICE_BUSY = 6
MEMORY_PARITY_ERROR = 8
GATEWAY_PATH_UNAVAILABLE = 10
GATEWAY_TARGET_FAILED = 11

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusError(Exception):
    """Base class: a response that cannot be used. `reason` names the kind of failure."""

    reason = "error"


class FrameError(ModbusError):
    """Too short, too long, or a length the function code does not allow: garbage on the line."""

    reason = "length"


class CRCError(ModbusError):
    reason = "crc"


class WrongAddressError(ModbusError):
    """The response came from (or claims to come from) another slave."""

    reason = "wrong-address"


class WrongFunctionError(ModbusError):
    reason = "wrong-function"


class ByteCountError(ModbusError):
    """The byte count does not match the quantity that was requested."""

    reason = "byte-count"


class WrongEchoError(ModbusError):
    """A write response does not echo the address / value / quantity that was written."""

    reason = "wrong-echo"


class ModbusException(ModbusError):
    """The slave answered with an exception response (function | 0x80, code)."""

    reason = "exception"

    def __init__(self, function, code):
        super().__init__(
            "slave exception %d (%s) for function %d" % (code, EXCEPTION_NAMES.get(code, "unknown"), function)
        )
        self.function = function
        self.code = code
