"""HJ 212 CRC16 exactly as in the standard's Appendix A (it is NOT CRC-16/MODBUS).

Per byte the standard does ``reg = (reg >> 8) ^ byte`` (the low byte of the old register is dropped,
Modbus would keep it: ``reg ^= byte``), then eight shift/xor-0xA001 rounds. After that first step the
register is always < 256, so the eight rounds depend on one byte only and fold into a 256-entry
table: ``reg = TABLE[(reg >> 8) ^ byte]``. A consequence (used as a sanity check in tests): the low
byte of every HJ 212 CRC is one of 00, 01, 40, 41, 80, 81, C0, C1.
"""


def _rounds(reg):
    for _ in range(8):
        if reg & 1:
            reg = (reg >> 1) ^ 0xA001
        else:
            reg >>= 1
    return reg


# Built once at import: 256 small ints (about 1 KiB on a 32-bit port).
_TABLE = [_rounds(i) for i in range(256)]


def crc16(data, crc=0xFFFF):
    """CRC of `data` (bytes, bytearray or memoryview). Pass the previous result as `crc` to continue."""
    table = _TABLE
    for b in data:
        crc = table[(crc >> 8) ^ b]
    return crc


def crc_hex(data):
    """The 4 upper-case hex digits that go on the wire (high byte first)."""
    return "%04X" % crc16(data)
