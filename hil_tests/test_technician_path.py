"""The technician path end to end (issue 6): init -> edit -> check -> build -> flash -> the logger boots from
its flash and the platform receives minute data.

Every `emlog` step runs as its own process, as a technician runs it. The flash is the emulated ESP32 ROM
driven by the real esptool; the logger is the MicroPython unix port that mounts the LittleFS partition
cut out of that flash (host_tools/emulators/logger_boot.py) and runs the firmware from it against the
`voc-line` template's instruments (NMHC analyser, two power meters, damper switch) and a real
PlatformServer. Expected values come from the scenario below, not from the firmware.

Other bad inputs of the acceptance list are covered elsewhere: port missing, wrong chip and an image too
large for the partition in hil_tests/test_flash_esp32.py; key typos, unknown template/code, duplicate
address, pin clashes and placeholders in tests/test_site_cli.py and tests/test_build.py.
"""

import asyncio
import hashlib
import json
import re
import struct
import threading

from emlog_cli import emlog

from host_tools import REPO_ROOT
from host_tools.boards import load_board
from host_tools.emulators.bus import build_buses
from host_tools.emulators.esp32_rom import Esp32RomEmulator
from host_tools.emulators.logger_boot import LoggerFromFlash
from host_tools.emulators.scenario import Scenario, SimClock
from host_tools.platform import Registry, Store
from host_tools.platform.registry import Device
from host_tools.platform.server import PlatformServer
from host_tools.siteconfig import load_site

BOARD = "esp32-generic-4mb"
MN = "31000000A1B2C3D4E5F60708"
PW = "rto-2024"
SCALE = 15.0
START = "2024-05-01T10:00:00+08:00"  # a 10-minute boundary: minute periods close at START + k x 600
LEAD_S = 90  # the logger boots this many sim seconds before START
# Constant instrument values, so the expected period averages are these numbers (f32-exact).
VALUES = {"voc": {"nmhc": 24.5, "ch4": 3.25, "thc": 27.75},
          "prod_power": {"power": 42.0, "u1": 230.0, "i1": 60.0, "pf": 0.95, "freq": 50.0},
          "fan_power": {"power": 18.5, "u1": 230.0, "i1": 27.0, "pf": 0.9, "freq": 50.0},
          "damper": {"di1": 0}}
CHANNEL_OF = {"a24088": ("voc", "nmhc"), "a05002": ("voc", "ch4")}


def fake_micropython_bin(size=96 * 1024):
    """An ESP32 app image as esptool checks it: magic 0xE9, segment count, chip id 0 (ESP32) at byte 12."""
    header = bytes([0xE9, 1, 2, 0x20]) + struct.pack("<I", 0x40080000) + bytes([0xEE, 0, 0, 0])
    header += struct.pack("<H", 0) + bytes(10)
    body = hashlib.sha256(b"not really MicroPython").digest() * (size // 32)
    return header + body[len(header):]


class Platform:
    """A real PlatformServer on its own event loop thread; keeps every parsed frame."""

    def __init__(self):
        self.frames = []
        self.cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    def start(self, clock):
        self.thread.start()
        self.server = PlatformServer("127.0.0.1", 0, Store(":memory:"), Registry([Device(MN, PW, "31")]),
                                     center="provincial", on_frame=self._on_frame, clock=clock.now,
                                     utc_offset_hours=8)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(15)
        return self.server.port

    def _on_frame(self, rx):
        with self.cond:
            self.frames.append(rx)
            self.cond.notify_all()

    def packets(self, cn):
        with self.cond:
            return [rx.packet for rx in self.frames if rx.packet is not None and rx.packet.cn == cn]

    def wait_for(self, predicate, timeout, logger):
        """Waits (woken by every frame) until predicate() holds, the logger exits or the timeout passes."""
        import time

        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate() and logger.alive() and time.monotonic() < deadline:
                self.cond.wait(min(1.0, max(0.01, deadline - time.monotonic())))
            return predicate()

    def stop(self):
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def fill_placeholders(text, port):
    """What the technician types over the template's CHANGE-ME values (and the platform's real port)."""
    text = text.replace('mn = "CHANGE-ME-24-HEX-DIGITS0"', 'mn = "%s"' % MN)
    text = text.replace('host = "CHANGE-ME.example"', 'host = "127.0.0.1"')
    text = re.sub(r"(?m)^port = 9001$", "port = %d" % port, text)
    text = text.replace('pw = "CHANGE"', 'pw = "%s"' % PW)
    assert "CHANGE" not in re.sub(r"#.*", "", text)
    return text


def test_technician_path_init_check_build_flash_boot_minute_data(tmp_path):
    board = load_board(BOARD)
    scenario = Scenario({"name": "technician", "start": START, "seed": 1,
                         "devices": {d: {"points": pts} for d, pts in VALUES.items()}})
    clock = SimClock(scenario.start - LEAD_S, SCALE)
    platform = Platform()
    emu = buses = logger = None
    try:
        port = platform.start(clock)

        # 1. init: a commented template; as shipped it must not pass check (placeholders).
        site = tmp_path / "site.toml"
        proc = emlog("init", "--template", "voc-line", "--out", site, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        unfilled = emlog("check", site, cwd=tmp_path)
        assert unfilled.returncode == 2 and "placeholder" in unfilled.stderr

        # 2. edit, 3. check: exit 0 and a summary naming what the logger will do.
        site.write_text(fill_placeholders(site.read_text(encoding="utf-8"), port), encoding="utf-8")
        proc = emlog("check", site, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        for needle in ("bus rs485-1", "@1", "@4", "a24088", "mg/m3", "127.0.0.1:%d" % port, "storage", "OK"):
            assert needle in proc.stdout, (needle, proc.stdout)

        # 4. build
        proc = emlog("build", site, "--board", BOARD, "--out", tmp_path / "build", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        image = (tmp_path / "build" / "fs.img").read_bytes()
        manifest = json.loads((tmp_path / "build" / "manifest.json").read_text(encoding="utf-8"))
        rom = (tmp_path / "build" / "romfs.img").read_bytes()
        assert len(image) == board["filesystem"]["size"]
        assert manifest["image"]["sha256"] == hashlib.sha256(image).hexdigest()
        assert manifest["romfs"]["sha256"] == hashlib.sha256(rom).hexdigest()

        # 5. flash the emulated ESP32 (always in download mode on its pty) with esptool, through emlog.
        emu = Esp32RomEmulator(tmp_path / "esp32-flash.bin", chip="esp32").start()
        firmware = fake_micropython_bin()
        (tmp_path / "micropython.bin").write_bytes(firmware)
        proc = emlog("flash", tmp_path / "build", "--port", emu.port, "--firmware", tmp_path / "micropython.bin",
                     cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count("Hash of data verified.") == 3, proc.stdout
        for data in (firmware, rom, image):
            assert "md5 %s" % hashlib.md5(data).hexdigest() in proc.stdout
        emu.stop()
        emu = None
        flash = (tmp_path / "esp32-flash.bin").read_bytes()
        # boards/micropython/esp32-generic-4mb/partitions.csv: .bin at 0x1000, romfs at 0x200000 (256 KiB),
        # vfs at 0x240000 to the end of flash, by hand.
        assert len(flash) == 4 << 20
        assert flash[0x1000:0x1000 + len(firmware)] == firmware
        assert flash[0x200000:0x200000 + len(rom)] == rom
        assert flash[0x240000:0x400000] == image

        # 6. boot the logger from the flash's LittleFS against the site's instruments and the platform.
        config = load_site(site)  # only to wire the emulated buses to the site's UARTs
        buses = build_buses(config, scenario, clock)
        for bus in buses.values():
            bus.start()
        logger = LoggerFromFlash(tmp_path / "esp32-flash.bin", board, tmp_path / "logger",
                                 {u: b.path for u, b in buses.items()}, clock)
        logger.start()

        first_full = str(scenario.start + 600)

        def full_period():
            for p in platform.packets("2051"):
                f = p.fields()
                if p.mn == MN and f.get("DataTime") == "20240501100000" and "a24088-Avg" in f:
                    return f
            return None

        fields = platform.wait_for(full_period, (LEAD_S + 600) / SCALE * 2 + 60, logger)
        assert fields, "no minute data for %s (period %s) at the platform; logger said:\n%s" % (
            MN, first_full, logger.log_tail(30))
        for code, (dev, point) in CHANNEL_OF.items():
            assert float(fields[code + "-Avg"]) == VALUES[dev][point], (code, fields)
            assert float(fields[code + "-Min"]) == float(fields[code + "-Max"]) == VALUES[dev][point]
            assert fields[code + "-Flag"] == "N", (code, fields)
        assert platform.packets("2011"), "no realtime data (the site uploads realtime every 30 s)"
        stats = logger.request_stats(10.0)
        logger.stop()

        # It ran from the flash: the app from the romfs partition, main.py, config and state from LittleFS.
        boot = logger.boot_info()
        assert boot["mount"] == "/flash" and boot["blocks"] == board["filesystem"]["size"] // 4096
        assert {"main.py", "boot.py", "romfs.sha256", "config.json", "manifest.json"} <= set(boot["files"])
        assert not {"app", "protocols", "hal"} & set(boot["files"])
        assert not any(str(REPO_ROOT) in p for p in boot["path"]), boot["path"]
        files = logger.files()
        built = {p: m["sha256"] for p, m in manifest["files"].items()}
        assert {p: hashlib.sha256(files[p]).hexdigest() for p in built} == built
        assert json.loads(files["bootstate.json"])["boots"] == 1  # written by the logger into LittleFS
        assert not logger.safe_mode(), logger.log_tail(30)
        answered = {d for bus in buses.values() for d in {e["device"] for e in bus.entries()}}
        assert "voc" in answered, answered
        assert stats is None or stats.get("mode") == "run"
    finally:
        if logger is not None:
            logger.stop()
        for bus in (buses or {}).values():
            bus.stop()
        if emu is not None:
            emu.stop()
        platform.stop()
