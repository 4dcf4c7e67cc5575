"""Hardware abstraction: the ESP32 implementation on the device, the unix-HIL one everywhere else.

Both export the same names (see hal/unix.py for the contract):
  uart(num, baud=9600, parity="N", stop_bits=1, tx=None, rx=None, de=None) -> Port
  now() -> epoch seconds (UTC, 1970 epoch on every port); now_ms() -> int epoch ms
  sleep_until(t) (async, sim time); set_time(t); TIME_SCALE
  wdt(timeout_ms) -> object with feed(); fs_root() -> str; center_addr_override() -> dict
  net_ready() -> bool; log_level() -> level name or None (the console `log LEVEL` changes it later)
"""

import sys

if sys.platform == "esp32":
    from hal.esp32 import (
        TIME_SCALE,
        center_addr_override,
        fs_root,
        log_level,
        net_ready,
        now,
        now_ms,
        set_time,
        sleep_until,
        uart,
        wdt,
    )
else:
    from hal.unix import (  # noqa: F401
        TIME_SCALE,
        center_addr_override,
        fs_root,
        log_level,
        net_ready,
        now,
        now_ms,
        set_time,
        sleep_until,
        uart,
        wdt,
    )
