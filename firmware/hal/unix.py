"""Unix-port HAL for HIL runs: UARTs are ptys, time may be scaled, the filesystem is a directory.

Environment (set by the HIL harness):
  EMLOG_FS           directory acting as the device filesystem root (config.json, state files)
  EMLOG_UARTS        JSON map uart number -> pty path, e.g. {"1": "/dev/pts/7"}
  EMLOG_SIM_START    sim epoch seconds (UTC) at harness t0          (default: real time)
  EMLOG_SIM_T0_NS    real time.time_ns() at harness t0               (default: start of this process)
  EMLOG_TIME_SCALE   sim seconds per real second                     (default 1)
  EMLOG_CENTER_ADDR  optional JSON map center name -> [host, port]
  EMLOG_LOG_LEVEL    optional lowest log level shown from boot (DEBUG, INFO, WARN, ERROR; default INFO)

Sim time: now = SIM_START + (time_ns() - T0_NS) * SCALE / 1e9. Scheduling (ticks, periods, backoff) is
in sim time; I/O timeouts (Modbus response, TCP) stay real milliseconds.

UART over a pty: opened unbuffered, raw mode with VMIN=0 and VTIME=0 so readinto() returns what has
arrived (0 when nothing) instead of blocking until the buffer is full, and waited on through asyncio's
select.poll (hal/port.py). The baud rate is set on the tty for completeness; a pty does not pace bytes.
"""

import asyncio
import json
import os
import time

from hal.port import Port


def _env(name, default=None):
    v = os.getenv(name)
    return default if v is None or v == "" else v


_T0_NS = int(_env("EMLOG_SIM_T0_NS", "0")) or time.time_ns()
_START = float(_env("EMLOG_SIM_START", "0")) or _T0_NS / 1e9
TIME_SCALE = float(_env("EMLOG_TIME_SCALE", "1"))
_offset = 0.0  # set_time() shift, sim seconds


def now():
    """Sim epoch seconds (float, 1970 epoch)."""
    return _START + _offset + (time.time_ns() - _T0_NS) * TIME_SCALE / 1e9


def now_ms():
    return int(now() * 1000)


def set_time(t):
    """Sets the sim clock (platform time calibration)."""
    global _offset
    _offset += t - now()


async def sleep_until(t):
    """Returns once sim time >= t (never early: re-checks after each real sleep)."""
    while True:
        d = t - now()
        if d <= 0:
            return
        await asyncio.sleep_ms(int(d * 1000 / TIME_SCALE) + 1)


_PARITY = {"N": 0, "E": 1, "O": 2}


def _uart_paths():
    text = _env("EMLOG_UARTS")
    return json.loads(text) if text else {}


def uart(num, baud=9600, parity="N", stop_bits=1, tx=None, rx=None, de=None):
    """A Port on the pty mapped to UART `num` by EMLOG_UARTS (pins are ignored here)."""
    import termios

    path = _uart_paths().get(str(num))
    if not path:
        raise OSError("EMLOG_UARTS has no pty for uart %s" % num)
    f = open(path, "r+b", buffering=0)
    fd = f.fileno()
    termios.setraw(fd)
    attr = termios.tcgetattr(fd)
    speed = getattr(termios, "B%d" % baud, None)
    if speed is not None:
        attr[4] = speed
        attr[5] = speed
    attr[6][5] = 0  # VTIME
    attr[6][6] = 0  # VMIN: reads return what is there
    termios.tcsetattr(fd, termios.TCSANOW, attr)
    # Scheduling jitter on a loaded host makes gaps of a few ms meaningless on a pty.
    return Port(f, baud, parity, stop_bits, None, min_silence_ms=20)


class _Wdt:
    """Watchdog stub: remembers the last feed so a test can see the app keeps feeding it."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.fed = time.ticks_ms()
        self.feeds = 0

    def feed(self):
        self.fed = time.ticks_ms()
        self.feeds += 1


def wdt(timeout_ms):
    return _Wdt(timeout_ms)


def fs_root():
    return _env("EMLOG_FS", ".")


def center_addr_override():
    text = _env("EMLOG_CENTER_ADDR")
    return json.loads(text) if text else {}


def log_level():
    return _env("EMLOG_LOG_LEVEL")


def net_ready():
    return True
