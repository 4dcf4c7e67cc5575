"""`emlog flash / info / erase` against the emulated ESP32 ROM bootloader, driven by the real esptool.

The emulator (host_tools/emulators/esp32_rom.py) runs in a thread on a pty; `emlog` runs as a separate
process exactly as a technician runs it. Expected flash contents are the input files themselves, placed
at the offsets of the boards' partition tables (boards/micropython/*/partitions.csv: MicroPython's app
partitions, then romfs, then vfs), written out here, not taken from the code under test.

Build directories are made here with the image functions `emlog build` uses, plus a romfs.img made with
mpremote's VfsRomWriter (host_tools.romfs.pack) and its "romfs" manifest entry, so these tests do not depend
on the rest of the build (mpy-cross, the site file).
"""

import hashlib
import json
import os
import random
import struct
import subprocess
import sys

import pytest
import serial
from emlog_cli import fill
from littlefs import LittleFS, UserContext

from host_tools import REPO_ROOT
from host_tools.boards import load_board
from host_tools.emulators.esp32_rom import Esp32RomEmulator, FlashImage
from host_tools.flash import romfs_expected, romfs_length
from host_tools.image import build_filesystem, write_build_output
from host_tools.romfs import ROMFS_NAME, pack

MIB = 1 << 20
# board -> (emulator chip, firmware offset, romfs offset, romfs size, filesystem offset, filesystem size,
# image chip id)
LAYOUT = {
    "esp32-generic-4mb": ("esp32", 0x1000, 0x200000, 0x40000, 0x240000, 0x1C0000, 0),
    "esp32-ota-4mb": ("esp32", 0x1000, 0x310000, 0x40000, 0x350000, 0xB0000, 0),
    "esp32s3-generic-8mb": ("esp32s3", 0x0, 0x200000, 0x80000, 0x280000, 0x580000, 9),
    "esp32s3-psram-8mb": ("esp32s3", 0x0, 0x200000, 0x80000, 0x280000, 0x580000, 9),
}
ROMFS_OFFSET, ROMFS_END = 0x200000, 0x240000  # esp32-generic-4mb
FS_OFFSET = 0x240000
# What the ROMFS image holds: .mpy-like blobs (content does not matter to flashing, only the bytes).
ROMFS_FILES = {
    "app/__init__.mpy": b"M\x06\x00\x1f" + bytes(range(256)) * 60,
    "app/store.mpy": b"M\x06\x00\x1f" + bytes(random.Random(3).getrandbits(8) for _ in range(40_000)),
    "protocols/hj212/crc.mpy": b"M\x06\x00\x1f" + b"crc" * 900,
}
APP = {
    "main.py": b"import app\napp.main()\n",
    "lib/app/__init__.py": b"def main():\n    print('logger up')\n",
    "lib/app/store.py": bytes(range(256)) * 40,
}
CONFIG = {"schema": 1, "site": {"name": "Plant 7 boiler house", "utc_offset_min": 480},
          "stations": [{"name": "boiler", "mn": "31000000123456789ABCDEF0", "st": "31",
                        "channels": [{}, {}]}],
          "centers": [{"name": "national", "host": "127.0.0.1", "port": 9001, "version": 2017,
                       "stations": {"boiler": {"pw": "s3cret-pw"}}}]}


def emlog(*args, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli", *[str(a) for a in args]], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=180, stdin=stdin or subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def fake_firmware(chip_id, size=192 * 1024, seed=1):
    """An ESP image header (magic 0xE9, chip id at byte 12) and a body that compresses like real code."""
    rng = random.Random(seed)
    words = [rng.getrandbits(32) for _ in range(64)]
    body = b"".join(struct.pack("<I", words[rng.randrange(64)] ^ (i & 0xFF)) for i in range(size // 4))
    header = bytes([0xE9, 3, 2, 0x20]) + struct.pack("<I", 0x40080000) + bytes([0xEE, 0, 0, 0])
    header += struct.pack("<H", chip_id) + bytes(10)
    return header + body[len(header):]


@pytest.fixture
def emulator(tmp_path):
    started = []

    def start(chip="esp32", flash_size=None):
        emu = Esp32RomEmulator(tmp_path / ("flash-%s-%d.bin" % (chip, len(started))), chip=chip,
                               flash_size=flash_size).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def build_dir(tmp_path, board_name, app=APP, config=CONFIG, romfs=ROMFS_FILES):
    """A build directory as `emlog build` writes it: fs.img, romfs.img and manifest.json (whose "romfs"
    entry is also in the manifest on the filesystem, as the logger's own record of its app image)."""
    rom = pack(romfs) if romfs is not None else None
    extra = {"romfs": {"file": ROMFS_NAME, "size": len(rom), "sha256": sha256(rom)}} if rom else None
    image, manifest = build_filesystem(app, config, load_board(board_name), extra_manifest=extra)
    out = write_build_output(tmp_path / ("build-" + board_name), image, manifest)
    if rom is not None:
        (out / ROMFS_NAME).write_bytes(rom)
    return out, image, manifest


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def romfs_of(out):
    return (out / ROMFS_NAME).read_bytes()


def flash_contents(emu):
    with open(emu.flash.path, "rb") as fh:
        return fh.read()


def assert_erased(data, start, end):
    assert data[start:end] == b"\xff" * (end - start), "expected erased flash in %#x..%#x" % (start, end)


def test_flash_writes_firmware_and_filesystem_at_the_board_offsets(tmp_path, emulator):
    emu = emulator("esp32")
    out, image, _manifest = build_dir(tmp_path, "esp32-generic-4mb")
    firmware = fake_firmware(0)
    (tmp_path / "micropython.bin").write_bytes(firmware)
    proc = emlog("flash", out, "--port", emu.port, "--firmware", tmp_path / "micropython.bin")
    assert proc.returncode == 0, proc.stderr
    rom = romfs_of(out)
    # esptool's own verification (SPI_FLASH_MD5 against its MD5 of the data) passed for all three regions...
    assert proc.stdout.count("Hash of data verified.") == 3
    # ...and emlog reports the MD5 of exactly what it was asked to write.
    assert "md5 %s" % hashlib.md5(firmware).hexdigest() in proc.stdout
    assert "romfs at 0x200000 (%d bytes, md5 %s)" % (len(rom), hashlib.md5(rom).hexdigest()) in proc.stdout
    assert "md5 %s" % hashlib.md5(image).hexdigest() in proc.stdout

    flash = flash_contents(emu)
    assert len(flash) == 4 * MIB
    assert flash[0x1000:0x1000 + len(firmware)] == firmware
    assert flash[ROMFS_OFFSET:ROMFS_OFFSET + len(rom)] == rom
    assert flash[FS_OFFSET:0x400000] == image
    assert_erased(flash, 0, 0x1000)
    fw_end_sector = -(-(0x1000 + len(firmware)) // 0x1000) * 0x1000
    assert_erased(flash, fw_end_sector, ROMFS_OFFSET)
    assert_erased(flash, -(-(ROMFS_OFFSET + len(rom)) // 0x1000) * 0x1000, ROMFS_END)

    stats = emu.snapshot_stats()
    assert stats["stub_started"] == 1
    # All went over the link zlib-compressed; the mostly-empty filesystem shrinks to almost nothing.
    assert stats["commands"].get("FLASH_DEFL_DATA", 0) >= 3
    assert stats["bytes_by_command"]["FLASH_DEFL_DATA"] < (len(firmware) + len(rom) + len(image)) // 10


def test_info_reads_back_the_manifest_and_config(tmp_path, emulator):
    emu = emulator("esp32")
    out, image, manifest = build_dir(tmp_path, "esp32-generic-4mb")
    assert emlog("flash", out, "--port", emu.port).returncode == 0
    proc = emlog("info", "--port", emu.port, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["board"] == "esp32-generic-4mb"
    assert report["chip"]["name"] == "ESP32"
    assert report["chip"]["mac"] == "24:0a:c4:12:34:56"
    assert report["manifest"] == manifest
    assert report["filesystem"]["offset"] == FS_OFFSET
    assert report["filesystem"]["block_count"] == 448
    # littlefs was read block by block on demand, not the whole 448-block partition
    assert report["filesystem"]["blocks_read"] < 64
    rom = romfs_of(out)
    assert report["romfs"]["state"] == "present" and report["romfs"]["matches"] is True
    assert report["romfs"]["offset"] == ROMFS_OFFSET
    assert (report["romfs"]["size"], report["romfs"]["sha256"]) == (len(rom), sha256(rom))
    assert sorted(report["files"]["ok"]) == sorted(list(APP) + ["config.json"])
    assert report["files"]["modified"] == [] and report["files"]["missing"] == []
    assert report["config"]["site"] == "Plant 7 boiler house"
    assert report["config"]["stations"][0]["mn"] == "31000000123456789ABCDEF0"
    assert "s3cret-pw" not in proc.stdout  # passwords never shown

    text = emlog("info", "--port", emu.port, "--save-image", tmp_path / "readback.img")
    assert text.returncode == 0
    assert "esp32-generic-4mb" in text.stdout and "all 4 files match the manifest" in text.stdout
    assert "romfs:       %d bytes at 0x200000, sha256 %s; matches the build" % (len(rom), sha256(rom)) \
        in text.stdout
    assert (tmp_path / "readback.img").read_bytes() == image


def test_info_flags_a_file_changed_since_the_build(tmp_path, emulator):
    emu = emulator("esp32")
    board = load_board("esp32-generic-4mb")
    image, manifest = build_filesystem(APP, CONFIG, board)
    # Edit one file inside the image behind the manifest's back (as a REPL session on the device would).
    fs = LittleFS(context=UserContext(buffer=bytearray(image)), block_size=4096, block_count=448, mount=False)
    fs.mount()
    with fs.open("lib/app/__init__.py", "wb") as fh:
        fh.write(b"def main():\n    print('patched in the field')\n")
    fs.unmount()
    out = write_build_output(tmp_path / "edited", bytes(fs.context.buffer), manifest)
    assert emlog("flash", out, "--port", emu.port).returncode == 0
    report = json.loads(emlog("info", "--port", emu.port, "--json").stdout)
    assert report["files"]["modified"] == ["lib/app/__init__.py"]
    text = emlog("info", "--port", emu.port).stdout
    assert "MISMATCH" in text and "lib/app/__init__.py" in text


def _clear_a_bit(flash, offset):
    """A bit of the emulated NOR flash drops to 0, as a worn or disturbed cell does."""
    old = flash.read(offset, 1)[0]
    flash.write(offset, bytes([old & ~(old & -old)]))  # clear the lowest set bit (old is never 0 here)


def test_real_build_romfs_is_flashed_and_checked_by_info(tmp_path, emulator):
    # The whole path with `emlog build` itself: it writes romfs.img and the manifest's "romfs" entry.
    site = tmp_path / "site.toml"
    assert emlog("init", "--template", "boiler-nox", "--out", site).returncode == 0
    site.write_text(fill(site.read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp_path / "build"
    proc = emlog("build", site, "--board", "esp32-generic-4mb", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rom = romfs_of(out)
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["romfs"]["sha256"] == sha256(rom)

    emu = emulator("esp32")
    assert emlog("flash", out, "--port", emu.port).returncode == 0
    assert flash_contents(emu)[ROMFS_OFFSET:ROMFS_OFFSET + len(rom)] == rom
    text = emlog("info", "--port", emu.port).stdout
    assert "romfs:       %d bytes at 0x200000, sha256 %s; matches the build" % (len(rom), sha256(rom)) in text

    # One byte of the app image goes bad in the flash.
    spot = next(i for i in range(len(rom) // 2, len(rom)) if rom[i])
    _clear_a_bit(emu.flash, ROMFS_OFFSET + spot)
    report = json.loads(emlog("info", "--port", emu.port, "--json").stdout)
    assert report["romfs"]["state"] == "present" and report["romfs"]["matches"] is False
    text = emlog("info", "--port", emu.port).stdout
    assert "does NOT match the build: reflash with emlog flash" in text


@pytest.mark.parametrize("damage,state,why", [
    ("one byte in the image", "present", None),
    ("the header", "corrupt", "no ROMFS header"),
    ("the whole partition erased", "erased", "0xFF"),
])
def test_info_says_when_the_romfs_does_not_match_the_build(tmp_path, emulator, damage, state, why):
    emu = emulator("esp32")
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    rom = romfs_of(out)
    assert emlog("flash", out, "--port", emu.port).returncode == 0
    assert json.loads(emlog("info", "--port", emu.port, "--json").stdout)["romfs"]["matches"] is True

    if damage == "one byte in the image":
        middle = ROMFS_OFFSET + len(rom) // 2
        assert rom[len(rom) // 2] != 0
        _clear_a_bit(emu.flash, middle)
    elif damage == "the header":
        _clear_a_bit(emu.flash, ROMFS_OFFSET)
    else:
        emu.flash.erase(ROMFS_OFFSET, ROMFS_END - ROMFS_OFFSET)

    report = json.loads(emlog("info", "--port", emu.port, "--json").stdout)
    rom_report = report["romfs"]
    assert rom_report["state"] == state
    assert rom_report["matches"] is False
    assert rom_report["expected"] == {"size": len(rom), "sha256": sha256(rom)}
    assert rom_report["size"] == len(rom)  # the recorded length was read, not the whole partition
    assert rom_report["sha256"] == sha256(flash_contents(emu)[ROMFS_OFFSET:ROMFS_OFFSET + len(rom)]) != sha256(rom)
    if why:
        assert why in rom_report["why"]
    # The filesystem itself is fine, and says so.
    assert report["files"]["modified"] == [] and report["board"] == "esp32-generic-4mb"
    text = emlog("info", "--port", emu.port).stdout
    assert "does NOT match the build: reflash with emlog flash" in text and "matches the build" not in text

    # Reflashing the build puts it right.
    assert emlog("flash", out, "--port", emu.port).returncode == 0
    assert "; matches the build" in emlog("info", "--port", emu.port).stdout


def test_board_without_a_romfs_partition_is_refused_before_writing(tmp_path, emulator):
    emu = emulator("esp32")
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    raw = json.loads((REPO_ROOT / "boards" / "esp32-generic-4mb.json").read_text(encoding="utf-8"))
    del raw["romfs"]
    raw["name"] = "no-rom"
    (tmp_path / "no-rom.json").write_text(json.dumps(raw), encoding="utf-8")
    proc = emlog("flash", out, "--port", emu.port, "--board", tmp_path / "no-rom.json")
    assert proc.returncode == 2
    assert proc.stderr.startswith("emlog: error: board no-rom has no romfs partition")
    assert "boards/no-rom.json" in proc.stderr
    assert emu.snapshot_stats()["bytes_received"] == 0


def test_romfs_image_larger_than_the_partition_is_refused(tmp_path, emulator):
    emu = emulator("esp32")
    big = {"app/big.mpy": bytes(random.Random(9).getrandbits(8) for _ in range(300 * 1024))}
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb", romfs=big)
    size = len(romfs_of(out))
    proc = emlog("flash", out, "--port", emu.port)
    assert proc.returncode == 2
    assert "%d bytes" % size in proc.stderr and "holds 262144" in proc.stderr, proc.stderr
    assert emu.snapshot_stats()["bytes_received"] == 0


def test_damaged_romfs_img_is_refused(tmp_path):
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    rom = bytearray(romfs_of(out))
    rom[100] ^= 0x40
    (out / ROMFS_NAME).write_bytes(bytes(rom))
    proc = emlog("flash", out, "--port", "/dev/ttyUSB-emlog-missing")
    assert proc.returncode == 2
    assert "romfs.img does not match its manifest" in proc.stderr


def test_build_without_romfs_flashes_the_filesystem_only(tmp_path, emulator):
    emu = emulator("esp32")
    out, image, _ = build_dir(tmp_path, "esp32-generic-4mb", romfs=None)  # made by an emlog before ROMFS
    proc = emlog("flash", out, "--port", emu.port)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Hash of data verified.") == 1
    flash = flash_contents(emu)
    assert flash[FS_OFFSET:0x400000] == image
    assert_erased(flash, ROMFS_OFFSET, ROMFS_END)
    report = json.loads(emlog("info", "--port", emu.port, "--json").stdout)
    assert report["romfs"]["state"] == "erased" and report["romfs"]["matches"] is None


@pytest.mark.parametrize("board_name", ["esp32-ota-4mb", "esp32s3-generic-8mb", "esp32s3-psram-8mb"])
def test_other_boards_land_at_their_own_offsets(tmp_path, emulator, board_name):
    chip, fw_offset, rom_offset, rom_size, fs_offset, fs_size, chip_id = LAYOUT[board_name]
    emu = emulator(chip)
    out, image, _ = build_dir(tmp_path, board_name)
    rom = romfs_of(out)
    firmware = fake_firmware(chip_id, size=64 * 1024)
    (tmp_path / "fw.bin").write_bytes(firmware)
    proc = emlog("flash", out, "--port", emu.port, "--firmware", tmp_path / "fw.bin")
    assert proc.returncode == 0, proc.stderr
    flash = flash_contents(emu)
    assert flash[fw_offset:fw_offset + len(firmware)] == firmware
    assert flash[rom_offset:rom_offset + len(rom)] == rom
    assert len(image) == fs_size
    assert flash[fs_offset:fs_offset + fs_size] == image
    assert_erased(flash, -(-(fw_offset + len(firmware)) // 0x1000) * 0x1000, rom_offset)
    assert_erased(flash, -(-(rom_offset + len(rom)) // 0x1000) * 0x1000, rom_offset + rom_size)
    report = json.loads(emlog("info", "--port", emu.port, "--json").stdout)
    # The two ESP32-S3 boards share a layout; the manifest on the logger says which one it was built for.
    assert report["board"] == board_name
    assert report["romfs"]["offset"] == rom_offset and report["romfs"]["matches"] is True


def test_wrong_chip_is_refused_before_writing(tmp_path, emulator):
    emu = emulator("esp32s3")
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    proc = emlog("flash", out, "--port", emu.port)
    assert proc.returncode == 2
    assert "ESP32-S3" in proc.stderr and "esp32-generic-4mb" in proc.stderr
    assert "esp32s3-generic-8mb" in proc.stderr  # the fix: the board that does match
    assert flash_contents(emu) == b"\xff" * (8 * MIB)
    assert not any(op.startswith(("FLASH", "ERASE", "MEM")) for op in emu.snapshot_stats()["commands"])


def test_module_with_less_flash_than_the_board_is_refused(tmp_path, emulator):
    emu = emulator("esp32s3", flash_size="4MB")  # an ESP32-S3 N4 module, board wants 8 MB
    out, _image, _ = build_dir(tmp_path, "esp32s3-generic-8mb")
    proc = emlog("flash", out, "--port", emu.port)
    assert proc.returncode == 2
    assert "has 4MB of flash" in proc.stderr and "needs 8MB" in proc.stderr
    assert flash_contents(emu) == b"\xff" * (4 * MIB)


def test_image_too_large_for_the_partition_is_refused(tmp_path, emulator):
    emu = emulator("esp32")
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")  # 1792 KiB image
    proc = emlog("flash", out, "--port", emu.port, "--board", "esp32-ota-4mb")  # 704 KiB partition
    assert proc.returncode == 2
    assert "does not fit" in proc.stderr and "esp32-ota-4mb" in proc.stderr
    assert emu.snapshot_stats()["bytes_received"] == 0  # refused before touching the logger


def test_image_built_for_another_partition_is_refused(tmp_path):
    out, _image, _ = build_dir(tmp_path, "esp32-ota-4mb")  # 704 KiB image for 0x350000
    proc = emlog("flash", out, "--port", "/dev/ttyUSB-emlog-missing", "--board", "esp32-generic-4mb")
    assert proc.returncode == 2
    assert "built for board esp32-ota-4mb" in proc.stderr and "would not mount" in proc.stderr


def test_firmware_for_another_chip_is_refused(tmp_path, emulator):
    emu = emulator("esp32")
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    (tmp_path / "s3.bin").write_bytes(fake_firmware(9, size=8192))
    proc = emlog("flash", out, "--port", emu.port, "--firmware", tmp_path / "s3.bin")
    assert proc.returncode == 2
    assert "ESP32-S3" in proc.stderr
    assert emu.snapshot_stats()["bytes_received"] == 0


def test_missing_port_gives_a_clear_message(tmp_path):
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    proc = emlog("flash", out, "--port", "/dev/ttyUSB-emlog-missing")
    assert proc.returncode == 2
    assert proc.stderr.startswith("emlog: error: serial port /dev/ttyUSB-emlog-missing does not exist")


def test_busy_port_gives_a_clear_message(tmp_path, emulator):
    emu = emulator("esp32")
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    with serial.Serial(emu.port, exclusive=True):  # e.g. a serial monitor left open
        proc = emlog("flash", out, "--port", emu.port)
    assert proc.returncode == 2
    assert "is busy" in proc.stderr


def test_missing_build_directory_gives_a_clear_message(tmp_path, emulator):
    emu = emulator("esp32")
    proc = emlog("flash", tmp_path / "no-build", "--port", emu.port)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "emlog build" in proc.stderr


def test_erase_filesystem_only_then_everything(tmp_path, emulator):
    emu = emulator("esp32")
    out, _image, _ = build_dir(tmp_path, "esp32-generic-4mb")
    firmware = fake_firmware(0, size=32 * 1024)
    (tmp_path / "fw.bin").write_bytes(firmware)
    assert emlog("flash", out, "--port", emu.port, "--firmware", tmp_path / "fw.bin").returncode == 0

    refused = emlog("erase", "--port", emu.port)  # stdin is not a terminal and no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert flash_contents(emu)[0x1000:0x1000 + len(firmware)] == firmware

    proc = emlog("erase", "--port", emu.port, "--board", "esp32-generic-4mb", "--filesystem-only", "--yes")
    assert proc.returncode == 0, proc.stderr
    flash = flash_contents(emu)
    rom = romfs_of(out)
    assert flash[0x1000:0x1000 + len(firmware)] == firmware
    assert flash[ROMFS_OFFSET:ROMFS_OFFSET + len(rom)] == rom  # the app image stays
    assert_erased(flash, FS_OFFSET, 0x400000)
    info = json.loads(emlog("info", "--port", emu.port, "--json").stdout)
    assert info["filesystem"] is None and info["romfs"] is None  # no board found, none given
    # With the board named, info still reads the romfs partition; with no manifest left to say how long
    # the image is, the length comes from the ROMFS header.
    proc = emlog("info", "--port", emu.port, "--board", "esp32-generic-4mb", "--json")
    info = json.loads(proc.stdout)
    assert info["filesystem"] is None
    assert info["romfs"]["state"] == "present" and info["romfs"]["expected"] is None
    assert (info["romfs"]["size"], info["romfs"]["sha256"]) == (len(rom), sha256(rom))
    assert info["romfs"]["matches"] is None
    text = emlog("info", "--port", emu.port, "--board", "esp32-generic-4mb").stdout
    assert "romfs:       %d bytes at 0x200000" % len(rom) in text and "no build record" in text

    proc = emlog("erase", "--port", emu.port, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert flash_contents(emu) == b"\xff" * (4 * MIB)


# ---------------------------------------------------------------- the emulator against esptool directly

def esptool(*args):
    proc = subprocess.run([sys.executable, "-m", "esptool", *[str(a) for a in args]], capture_output=True,
                          text=True, timeout=180)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_rom_loader_path_without_stub(tmp_path, emulator):
    emu = emulator("esp32")
    data = bytes(random.Random(5).getrandbits(8) for _ in range(50_000))
    (tmp_path / "blob.bin").write_bytes(data)
    proc = esptool("--port", emu.port, "--before", "no-reset", "--after", "no-reset", "--no-stub",
                   "write-flash", "0x10000", tmp_path / "blob.bin")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Hash of data verified." in proc.stdout
    assert flash_contents(emu)[0x10000:0x10000 + len(data)] == data
    stats = emu.snapshot_stats()
    assert stats["stub_started"] == 0
    assert stats["commands"]["FLASH_DATA"] == -(-len(data) // 0x400)  # ROM blocks are 1 KiB
    # the ROM also takes zlib streams (FLASH_DEFL_*), erasing the whole region first
    (tmp_path / "zeros.bin").write_bytes(bytes(40_000))
    proc = esptool("--port", emu.port, "--before", "no-reset", "--after", "no-reset", "--no-stub",
                   "write-flash", "--compress", "0x30000", tmp_path / "zeros.bin")
    assert proc.returncode == 0 and "Hash of data verified." in proc.stdout, proc.stdout + proc.stderr
    assert flash_contents(emu)[0x30000:0x30000 + 40_000] == bytes(40_000)
    # and back through the ROM's 64-byte READ_FLASH_SLOW
    proc = esptool("--port", emu.port, "--before", "no-reset", "--no-stub", "read-flash", "0x10000", "3000",
                   tmp_path / "back.bin")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "back.bin").read_bytes() == data[:3000]


def test_stub_read_flash_and_default_reset_on_a_pty(tmp_path, emulator):
    emu = emulator("esp32s3")
    data = os.urandom(70_000)
    (tmp_path / "blob.bin").write_bytes(data)
    assert esptool("--port", emu.port, "--before", "no-reset", "write-flash", "0x20000",
                   tmp_path / "blob.bin").returncode == 0
    # default-reset toggles DTR/RTS, which a pty cannot do: esptool warns and the emulated chip, always in
    # download mode, still answers.
    proc = esptool("--port", emu.port, "read-flash", "0x20000", len(data), tmp_path / "back.bin")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not supported for port" in proc.stdout + proc.stderr
    assert (tmp_path / "back.bin").read_bytes() == data
    proc = esptool("--port", emu.port, "--before", "no-reset", "read-mac")
    assert "24:0a:c4:12:34:56" in proc.stdout and "ESP32-S3" in proc.stdout


def test_closing_the_port_resets_the_emulated_chip_to_the_rom(tmp_path, emulator):
    emu = emulator("esp32")
    proc = esptool("--port", emu.port, "--before", "no-reset", "--after", "no-reset-stub", "flash-id")
    assert proc.returncode == 0 and "Staying in flasher stub" in proc.stdout
    proc = esptool("--port", emu.port, "--before", "no-reset", "--after", "no-reset", "flash-id")
    assert proc.returncode == 0
    assert "already running" not in proc.stdout  # a fresh ROM loader answered, the stub was uploaded again
    assert emu.snapshot_stats()["stub_started"] == 2


def test_emulator_runs_as_a_program_and_prints_its_port(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.emulators.esp32_rom", "--flash",
                             tmp_path / "f.bin", "--chip", "esp32"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        mac = esptool("--port", port, "--before", "no-reset", "--after", "no-reset", "read-mac")
        assert mac.returncode == 0 and "24:0a:c4:12:34:56" in mac.stdout
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    stats = json.loads(err.strip().splitlines()[-1])
    assert stats["bytes_received"] > 0 and stats["commands"]["SYNC"] >= 1
    assert os.path.getsize(tmp_path / "f.bin") == 4 * MIB


def test_romfs_length_and_expected_record():
    # The header's varint gives the whole image's length, for any payload size (1 to 3 length bytes, and
    # the writer's 0x80 padding byte that keeps images an even length).
    for n in (0, 1, 126, 127, 5000, 20_000, 200_000):
        rom = pack({"a.mpy": b"x" * n})
        assert romfs_length(rom[:16]) == len(rom)
    assert romfs_length(b"\xff" * 16) is None and romfs_length(b"\xd2\xcd\x31" + b"\x80" * 13) is None
    # What the build recorded: the manifest's entry first, else main.py's own check file.
    record = {"size": 1234, "sha256": "ab" * 32}
    assert romfs_expected({}, {"romfs": dict(record, file="romfs.img")}) == record
    assert romfs_expected({"romfs.sha256": b"1234 " + b"ab" * 32 + b"\n"}, {"board": {}}) == record
    assert romfs_expected({}, None) is None


def test_emulated_nor_flash_only_clears_bits(tmp_path):
    flash = FlashImage(tmp_path / "nor.bin", 2 * MIB)
    flash.write(0x100, b"\xf0\x0f\xff")
    flash.write(0x100, b"\x3c\x3c\x00")  # programming again without erase: bits only go 1 -> 0
    assert flash.read(0x100, 3) == b"\x30\x0c\x00"
    flash.erase(0, 0x1000)
    assert flash.read(0x100, 3) == b"\xff\xff\xff"
    flash.close()
