"""HJ 212 CRC16 exactly as in the standard's Appendix A (it is NOT CRC-16/MODBUS).

Per byte the standard does ``reg = (reg >> 8) ^ byte`` (the low byte of the old register is dropped,
Modbus would keep it: ``reg ^= byte``), then eight shift/xor-0xA001 rounds. After that first step the
register is always < 256, so the eight rounds depend on one byte only and fold into a 256-entry
table: ``reg = TABLE[(reg >> 8) ^ byte]``. A consequence (used as a sanity check in tests): the low
byte of every HJ 212 CRC is one of 00, 01, 40, 41, 80, 81, C0, C1.

TABLE is the reflected 0xA001 table of CRC-16/MODBUS, whose high and low bytes protocols.modbus.crc
keeps as bytes literals (no heap, unlike a list built at import). Only the high byte feeds the next
step, so the low byte is looked up once, at the end.
"""

from protocols.modbus.crc import _HI, _LO


def crc16(data, crc=0xFFFF):
    """CRC of `data` (bytes, bytearray or memoryview). Pass the previous result as `crc` to continue."""
    hi = _HI
    h = crc >> 8
    i = -1
    for b in data:
        i = h ^ b
        h = hi[i]
    if i < 0:
        return crc
    return (h << 8) | _LO[i]
