"""ESP32 HAL: machine.UART with an RS-485 direction (DE) pin, RTC clock, WDT, WLAN, flash fs root.

Times are Unix epoch seconds everywhere in the app; this port's time.time() counts from 2000, so now()
adds the difference (found at import, not assumed). now() is an int: ESP32 floats are 32-bit.
"""

import asyncio
import time

import machine

from hal.port import Port

_EPOCH = 0 if time.gmtime(0)[0] == 1970 else 946684800
TIME_SCALE = 1


def now():
    return time.time() + _EPOCH


def now_ms():
    return time.time_ns() // 1000000 + _EPOCH * 1000


def set_time(t):
    """Sets the RTC from epoch seconds t (UTC)."""
    tm = time.gmtime(int(t) - _EPOCH)
    # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))


async def sleep_until(t):
    while True:
        d = int(t * 1000) - now_ms()  # t is an int on the device: exact
        if d <= 0:
            return
        await asyncio.sleep_ms(d)


class _UartPort(Port):
    def _wait_tx(self, n):
        u = self.stream
        if hasattr(u, "flush"):
            u.flush()  # returns when the last stop bit is out (ESP32 port >= 1.20)
        else:
            u.wait_tx_done(n * self.char_us // 1000 + 10)


def uart(num, baud=9600, parity="N", stop_bits=1, tx=None, rx=None, de=None):
    par = {"N": None, "E": 0, "O": 1}[parity]
    u = machine.UART(num, baudrate=baud, bits=8, parity=par, stop=stop_bits, tx=tx, rx=rx,
                     timeout=0, rxbuf=512)
    pin = None
    if de is not None:
        pin = machine.Pin(de, machine.Pin.OUT, value=0)
    return _UartPort(u, baud, parity, stop_bits, pin, min_silence_ms=0)


def wdt(timeout_ms):
    return machine.WDT(timeout=timeout_ms)


def fs_root():
    return ""


def center_addr_override():
    return {}


def log_level():
    return None  # INFO from boot; `log debug` on the console changes it


def net_ready():
    try:
        import network

        return network.WLAN(network.STA_IF).isconnected()
    except Exception:
        return False
