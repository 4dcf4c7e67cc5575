"""A scripted fake UART for the bus owner and reader tests (MicroPython), and Modbus replies built with a
bit-by-bit CRC-16/MODBUS (not the firmware's table), so a decoded value can be compared with what was
put on the wire."""

import asyncio
import struct
import time

TIMEOUT = 40  # ms


def crc(data):
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return bytes((c & 0xFF, c >> 8))


def frame(*parts):
    body = bytes(parts[0]) if len(parts) == 1 else b"".join(bytes(p) for p in parts)
    return body + crc(body)


def regs_reply(slave, fc, regs):
    data = b"".join(struct.pack(">H", r) for r in regs)
    return frame(bytes((slave, fc, len(data))) + data)


class FakePort:
    """Answers each written request with scripted chunks [(delay_ms, bytes)], timed in real ms."""

    gap_us = 4011  # 3.5 characters at 9600 8N1
    min_silence_ms = 5

    def __init__(self, script):
        self.script = script  # callable(request bytes) -> list of (delay_ms, bytes)
        self.pending = []
        self.sent = []

    def write(self, data):
        data = bytes(data)
        self.sent.append(data)
        now = time.ticks_us()  # microseconds: a reply "3 ms" after the request is never early
        for delay, chunk in self.script(data):
            self.pending.append((time.ticks_add(now, delay * 1000), chunk))
        self.pending.sort(key=lambda p: time.ticks_diff(p[0], now))

    def _ready(self, buf):
        now = time.ticks_us()
        n = 0
        while self.pending and time.ticks_diff(now, self.pending[0][0]) >= 0:
            chunk = self.pending[0][1]
            if n + len(chunk) > len(buf):
                break
            self.pending.pop(0)
            buf[n : n + len(chunk)] = chunk
            n += len(chunk)
        return n

    async def read(self, buf, timeout_ms):
        n = self._ready(buf)
        if n or timeout_ms <= 0:
            return n
        wait = timeout_ms
        if self.pending:
            wait = min(wait, max(0, (time.ticks_diff(self.pending[0][0], time.ticks_us()) + 999) // 1000))
        await asyncio.sleep_ms(wait)
        return self._ready(buf)

    def drain(self, buf):
        total = 0
        while True:
            n = self._ready(buf)
            if not n:
                return total
            total += n


def run(coro):
    return asyncio.run(coro)
