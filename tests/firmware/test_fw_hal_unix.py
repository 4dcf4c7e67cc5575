"""firmware/hal/unix.py under the real MicroPython unix port: a pty UART answered from this (CPython)
process, chunked, and the scaled sim clock from the EMLOG_* environment."""

import json
import os
import pty
import subprocess
import threading
import time

from fake_bus import crc

from host_tools import REPO_ROOT
from host_tools.micropython import micropython_executable

SCRIPT = r"""
import sys
sys.path.insert(0, "firmware")
sys.path.insert(0, ".")
import asyncio, json, time
import hal
from app.bus import Bus

async def main():
    port = hal.uart(1, 9600)
    bus = Bus("bus1", port, timeout_ms=%(timeout)d, retries=0)
    lk = bus.link("dev", 1)
    out = {}
    req = bytes.fromhex("010300000002c40b")
    t0 = time.ticks_ms()
    out["reply"] = bytes(await bus.transact(lk, req)).hex()
    out["reply_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    t0 = time.ticks_ms()
    try:
        await bus.transact(lk, req)
    except Exception as e:
        out["second"] = e.reason
    out["timeout_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    out["counters"] = lk.state()
    out["now"] = hal.now()
    t0 = time.ticks_ms()
    target = int(hal.now()) + 3
    await hal.sleep_until(target)
    out["slept_real_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    out["after"] = hal.now() - target
    out["fs"] = hal.fs_root()
    print("RESULT " + json.dumps(out))

asyncio.run(main())
"""


def test_pty_uart_bus_and_scaled_clock(tmp_path):
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    reply = bytes((1, 3, 4, 0x12, 0x34, 0xAB, 0xCD))
    reply += crc(reply)
    seen = []

    def serve():
        # answer the first request in three chunks 15 ms apart; ignore the second (timeout)
        buf = b""
        while len(buf) < 8:
            buf += os.read(master, 64)
        seen.append(buf)
        for part in (reply[:2], reply[2:6], reply[6:]):
            time.sleep(0.015)  # the chunking under test, not synchronisation
            os.write(master, part)
        buf = b""
        while len(buf) < 8:
            buf += os.read(master, 64)
        seen.append(buf)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    env = dict(os.environ)
    env.update({
        "EMLOG_UARTS": json.dumps({"1": path}),
        "EMLOG_SIM_START": "1710469800",
        "EMLOG_SIM_T0_NS": str(time.time_ns()),
        "EMLOG_TIME_SCALE": "10",
        "EMLOG_FS": str(tmp_path),
    })
    proc = subprocess.run([micropython_executable(), "-X", "heapsize=256k", "-c", SCRIPT % {"timeout": 150}],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    os.close(slave)
    os.close(master)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, proc.stdout + proc.stderr
    out = json.loads(line[0][7:])
    assert seen[0] == bytes.fromhex("010300000002c40b")
    assert out["reply"] == reply.hex() and out["reply_ms"] >= 30
    assert out["second"] == "timeout" and 150 <= out["timeout_ms"] < 600
    assert out["counters"]["ok"] == 1 and out["counters"]["timeouts"] == 1 and out["counters"]["rx_bytes"] == 9
    # sim clock: started at SIM_START, 10 sim s per real s; 3 sim s (at most) take <= 300 real ms
    assert 1710469800 <= out["now"] < 1710469800 + 60
    assert out["slept_real_ms"] <= 400 and 0 <= out["after"] < 0.5
    assert out["fs"] == str(tmp_path)
