"""An independent HJ 212 CRC for tests, data generators and benchmarks: Appendix A's C loop transcribed
bit by bit (no table), so it shares nothing with protocols.hj212.crc. Runs on CPython and MicroPython."""


def crc_appendix_a(data):
    crc_reg = 0xFFFF
    for byte in data:
        crc_reg = (crc_reg >> 8) ^ byte
        for _ in range(8):
            check = crc_reg & 0x0001
            crc_reg >>= 1
            if check == 0x0001:
                crc_reg ^= 0xA001
    return crc_reg
