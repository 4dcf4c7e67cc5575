"""A serial port as the bus owner sees it, over any stream that asyncio can poll.

The stream must return what is available from readinto() without blocking (ESP32 machine.UART with
timeout=0; a unix tty in raw mode with VMIN=0/VTIME=0). Waiting is done by asyncio's poller
(StreamReader), so an idle bus costs no CPU and a response is seen as soon as its first byte lands,
instead of polling with sleeps (which on the unix port would either burn CPU or add latency).
"""

import asyncio


class Port:
    def __init__(self, stream, baud, parity="N", stop_bits=1, de=None, min_silence_ms=0):
        self.stream = stream
        self.baud = baud
        self._reader = asyncio.StreamReader(stream)
        self.de = de
        bits = 1 + 8 + (0 if parity == "N" else 1) + stop_bits
        self.char_us = bits * 1000000 // baud
        # Modbus: 3.5 characters, fixed 1.75 ms above 19200 baud
        self.gap_us = 1750 if baud > 19200 else (7 * self.char_us + 1) // 2
        # smallest silence that can be trusted to mean "frame ended" on this transport
        self.min_silence_ms = min_silence_ms

    def write(self, data):
        """Sends data; returns once the last byte has left (DE high only while sending)."""
        de = self.de
        if de is not None:
            de.value(1)
        self.stream.write(data)
        self._wait_tx(len(data))
        if de is not None:
            de.value(0)

    def _wait_tx(self, n):
        pass

    def _now_read(self, buf):
        try:
            n = self.stream.readinto(buf)
        except OSError:  # EAGAIN on a non-blocking fd
            return 0
        return n or 0

    async def read(self, buf, timeout_ms):
        """Reads what has arrived into buf, waiting at most timeout_ms for the first byte; 0 = none."""
        n = self._now_read(buf)
        if n or timeout_ms <= 0:
            return n
        try:
            n = await asyncio.wait_for_ms(self._reader.readinto(buf), timeout_ms)
        except asyncio.TimeoutError:
            return 0
        if not n:
            # Readable but empty (e.g. the other end of a pty closed): do not spin.
            await asyncio.sleep_ms(min(timeout_ms, 10))
            return 0
        return n

    def drain(self, buf):
        """Discards every byte already received; returns how many."""
        total = 0
        while True:
            n = self._now_read(buf)
            if not n:
                return total
            total += n
