"""Board definitions (`boards/*.json`): load, validate and normalise them.

A board file is data (schema in boards/README.md). `load_board(name)` returns a dict with every offset and
size as an int, `block_count` filled in, and the MicroPython version table checked against the .mpy
version each release really emits. Every mistake is reported as a `BoardError` naming the file and the
field, so a technician editing a board file sees exactly what to fix. `romfs_partition(board)` is where the
app's ROMFS image goes (the build and `emlog flash` call it; it names the fix when a board has none).
"""

import json
import re
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.errors import UserError

BOARDS_DIR = REPO_ROOT / "boards"
SCHEMA_VERSION = 1
FS_BLOCK_SIZE = 4096  # MicroPython's esp32 partition block device (NATIVE_BLOCK_SIZE_BYTES)
SECTOR = 4096  # SPI flash erase unit: ESP-IDF partitions and esptool erases work in whole sectors
# The romfs partition is memory-mapped (esp_partition_mmap) so bytecode runs in place. The mapping is made
# of 64 KiB MMU pages on the ESP32 and ESP32-S3; ESP-IDF rounds an unaligned start down to a page, which
# works but maps the end of the neighbouring partition too, so we keep romfs on a page boundary like
# MicroPython's own ports/esp32/partitions-4MiB-romfs.csv (romfs at 0x1E0000).
MMU_PAGE = 0x10000
ROMFS_LABEL = "romfs"  # the partition label MicroPython's esp32 port looks for (esp32_partition.c)

# Chip facts, keyed by the name esptool reports (ESPLoader.CHIP_NAME). `bootloader_offset` is where the
# downloadable MicroPython .bin (bootloader + partition table + app) starts; `image_chip_id` is the chip id
# in the ESP image extended header; GPIO sets follow the datasheets (flash/PSRAM pins are never usable).
CHIPS = {
    "ESP32": {
        "bootloader_offset": 0x1000,
        "image_chip_id": 0,
        "gpio": set(range(40)) - {20, 24, 28, 29, 30, 31},
        "input_only": {34, 35, 36, 37, 38, 39},
        "reserved": {6, 7, 8, 9, 10, 11},  # SPI flash
    },
    "ESP32-S3": {
        "bootloader_offset": 0x0,
        "image_chip_id": 9,
        "gpio": set(range(22)) | set(range(26, 49)),
        "input_only": set(),
        "reserved": {26, 27, 28, 29, 30, 31, 32},  # SPI flash / PSRAM
    },
}

FLASH_SIZES = {"2MB": 2 << 20, "4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20}
FS_TYPES = ("littlefs",)

# .mpy version each MicroPython release line emits (docs/reference/mpyfiles.rst). 1.19 is our floor.
_MPY_BY_RELEASE = [((1, 23), "6.3"), ((1, 22), "6.2"), ((1, 20), "6.1"), ((1, 19), "6")]
MIN_MICROPYTHON = (1, 19)

_TOP_KEYS = {
    "schema", "name", "description", "chip", "flash_size", "micropython_board", "psram", "firmware",
    "filesystem", "romfs", "micropython", "rs485", "digital_inputs", "relays",
}
# PSRAM wiring that takes GPIOs beyond the flash pins already in CHIPS[...]["reserved"]: ESP32 WROVER
# modules wire quad PSRAM to GPIO16/17; ESP32-S3 octal PSRAM (R8 modules) uses SPIIO4-7 and DQS, GPIO33-37.
PSRAM_PINS = {
    ("ESP32", "quad"): {16, 17},
    ("ESP32-S3", "quad"): set(),
    ("ESP32-S3", "octal"): {33, 34, 35, 36, 37},
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


class BoardError(UserError):
    """A board file is missing, unreadable or inconsistent."""


def list_boards():
    """Names of the boards shipped in boards/, sorted."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def board_path(name):
    """The JSON file for a board name, or the path itself when given a path to a .json file."""
    text = str(name)
    if text.endswith(".json") or "/" in text or "\\" in text:
        return Path(text)
    return BOARDS_DIR / (text + ".json")


def load_board(name):
    """Loads, validates and normalises a board; raises BoardError with the file and field on any mistake."""
    path = board_path(name)
    if not path.is_file():
        if path.parent == BOARDS_DIR:
            raise BoardError(
                "unknown board %r; known boards: %s (or pass the path of a board .json file)"
                % (str(name), ", ".join(list_boards()) or "none")
            )
        raise BoardError("board file %s does not exist" % path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BoardError("%s: not valid JSON: line %d column %d: %s"
                         % (path, exc.lineno, exc.colno, exc.msg)) from None
    board = validate_board(raw, source=str(path))
    if path.parent == BOARDS_DIR and board["name"] != path.stem:
        raise BoardError("%s: name %r must match the file name %r" % (path, board["name"], path.stem))
    return board


def boards_for_chip(chip_name):
    """Shipped boards whose chip is `chip_name` (as esptool reports it)."""
    return [b for b in (load_board(n) for n in list_boards()) if b["chip"] == chip_name]


def mpy_version_for(micropython_version):
    """The .mpy version a MicroPython release emits ("1.22.2" -> "6.2")."""
    key = _parse_version(micropython_version)
    if key is None:
        raise ValueError("not a MicroPython version: %r" % (micropython_version,))
    for floor, mpy in _MPY_BY_RELEASE:
        if key[:2] >= floor:
            return mpy
    raise ValueError("MicroPython %s is older than the supported 1.19" % micropython_version)


def romfs_partition(board):
    """(offset, size) of the board's romfs partition, where `emlog build` / `emlog flash` put the app image."""
    part = board.get("romfs")
    if part is None:
        raise BoardError("board %s has no romfs partition, so the app's ROMFS image has nowhere to go; add "
                         "one to boards/%s.json (\"romfs\": {\"offset\": ..., \"size\": ...}, see "
                         "boards/README.md)" % (board["name"], board["name"]))
    return part["offset"], part["size"]


def micropython_entry(board, version=None):
    """The board's {"version", "mpy"} entry for `version` (default: the board's default)."""
    want = version or board["micropython"]["default"]
    for entry in board["micropython"]["supported"]:
        if entry["version"] == want:
            return dict(entry)
    raise BoardError(
        "board %s does not support MicroPython %s; supported: %s"
        % (board["name"], want, ", ".join(e["version"] for e in board["micropython"]["supported"]))
    )


# ---------------------------------------------------------------------------------------------- validation

class _Checker:
    def __init__(self, source):
        self.source = source

    def fail(self, field, message):
        raise BoardError("%s: %s: %s" % (self.source, field, message))

    def require(self, obj, key, field, kind):
        if not isinstance(obj, dict):
            self.fail(field, "must be an object")
        if key not in obj:
            self.fail(field + "." + key if field else key, "missing (required)")
        return self.kind(obj[key], (field + "." + key) if field else key, kind)

    def kind(self, value, field, kind):
        if kind == "int":
            # JSON has no hex literals, so offsets and sizes may be written as "0x200000" strings.
            if isinstance(value, bool):
                self.fail(field, "must be an integer, got %r" % (value,))
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                try:
                    return int(value, 0)
                except ValueError:
                    pass
            self.fail(field, "must be an integer or a hex string like \"0x200000\", got %r" % (value,))
        if kind == "str":
            if not isinstance(value, str) or not value:
                self.fail(field, "must be a non-empty string, got %r" % (value,))
            return value
        if kind == "list":
            if not isinstance(value, list):
                self.fail(field, "must be a list, got %r" % (type(value).__name__,))
            return value
        if kind == "dict":
            if not isinstance(value, dict):
                self.fail(field, "must be an object, got %r" % (type(value).__name__,))
            return value
        raise AssertionError(kind)

    def only_keys(self, obj, field, allowed):
        extra = sorted(set(obj) - set(allowed))
        if extra:
            self.fail(field or "(top level)", "unknown key(s) %s; allowed: %s" % (
                ", ".join(extra), ", ".join(sorted(allowed))))


def validate_board(raw, source="board"):
    """Checks a board dict (as parsed from JSON) and returns the normalised copy."""
    c = _Checker(source)
    c.kind(raw, "(top level)", "dict")
    c.only_keys(raw, "", _TOP_KEYS)
    schema = c.require(raw, "schema", "", "int")
    if schema != SCHEMA_VERSION:
        c.fail("schema", "version %d is not supported (this emlog reads schema %d)"
               % (schema, SCHEMA_VERSION))
    name = c.require(raw, "name", "", "str")
    if not _NAME_RE.match(name):
        c.fail("name", "%r must be lower-case letters, digits, '-' or '_'" % name)
    chip = c.require(raw, "chip", "", "str")
    if chip not in CHIPS:
        c.fail("chip", "%r is not supported; use one of %s (the name esptool reports)" % (
            chip, ", ".join(sorted(CHIPS))))
    chip_info = CHIPS[chip]
    flash_size_name = c.require(raw, "flash_size", "", "str")
    if flash_size_name not in FLASH_SIZES:
        c.fail("flash_size", "%r is not one of %s" % (flash_size_name, ", ".join(FLASH_SIZES)))
    flash_bytes = FLASH_SIZES[flash_size_name]

    board = {
        "schema": schema,
        "name": name,
        "description": raw.get("description", ""),
        "chip": chip,
        "flash_size": flash_size_name,
        "flash_bytes": flash_bytes,
        "micropython_board": raw.get("micropython_board", ""),
        "psram": None,
    }

    # PSRAM (optional): the mode decides which extra GPIOs the module wires to it.
    psram_pins = set()
    if "psram" in raw:
        psram = c.kind(raw["psram"], "psram", "dict")
        c.only_keys(psram, "psram", {"mode", "size"})
        mode = c.require(psram, "mode", "psram", "str")
        if (chip, mode) not in PSRAM_PINS:
            c.fail("psram.mode", "%r is not a PSRAM mode of %s; use %s" % (mode, chip, " or ".join(
                sorted(m for ch, m in PSRAM_PINS if ch == chip))))
        size_name = c.require(psram, "size", "psram", "str")
        if size_name not in FLASH_SIZES:
            c.fail("psram.size", "%r is not one of %s" % (size_name, ", ".join(FLASH_SIZES)))
        board["psram"] = {"mode": mode, "size": size_name, "bytes": FLASH_SIZES[size_name]}
        psram_pins = PSRAM_PINS[(chip, mode)]

    # Firmware: where the MicroPython .bin goes and the app partition it must not outgrow.
    fw = c.require(raw, "firmware", "", "dict")
    c.only_keys(fw, "firmware", {"offset", "app_partition"})
    fw_offset = c.require(fw, "offset", "firmware", "int")
    if fw_offset != chip_info["bootloader_offset"]:
        c.fail("firmware.offset", "%#x is wrong for %s: its MicroPython image starts at %#x" % (
            fw_offset, chip, chip_info["bootloader_offset"]))
    app = c.require(fw, "app_partition", "firmware", "dict")
    c.only_keys(app, "firmware.app_partition", {"offset", "size"})
    app_offset = c.require(app, "offset", "firmware.app_partition", "int")
    app_size = c.require(app, "size", "firmware.app_partition", "int")
    if app_offset <= fw_offset or app_offset % 0x10000:
        c.fail("firmware.app_partition.offset", "%#x must be a 64 KiB multiple above the firmware offset %#x"
               % (app_offset, fw_offset))
    if app_size <= 0 or app_size % FS_BLOCK_SIZE:
        c.fail("firmware.app_partition.size", "%#x must be a positive multiple of 4096" % app_size)
    board["firmware"] = {
        "offset": fw_offset,
        "app_partition": {"offset": app_offset, "size": app_size},
        # The .bin holds bootloader + partition table + app, so it ends where the app partition ends.
        "max_size": app_offset + app_size - fw_offset,
    }

    # Filesystem partition.
    fs = c.require(raw, "filesystem", "", "dict")
    c.only_keys(fs, "filesystem", {"type", "offset", "size", "block_size", "block_count"})
    fs_type = c.require(fs, "type", "filesystem", "str")
    if fs_type not in FS_TYPES:
        c.fail("filesystem.type", "%r is not supported; use %s" % (fs_type, " or ".join(FS_TYPES)))
    fs_offset = c.require(fs, "offset", "filesystem", "int")
    fs_size = c.require(fs, "size", "filesystem", "int")
    block_size = c.kind(fs.get("block_size", FS_BLOCK_SIZE), "filesystem.block_size", "int")
    if block_size != FS_BLOCK_SIZE:
        c.fail("filesystem.block_size", "%d is wrong: MicroPython's ESP32 flash block device uses %d"
               % (block_size, FS_BLOCK_SIZE))
    if fs_offset % block_size:
        c.fail("filesystem.offset", "%#x is not a multiple of the %d-byte block size"
               % (fs_offset, block_size))
    if fs_size <= 0 or fs_size % block_size:
        c.fail("filesystem.size", "%#x is not a positive multiple of the %d-byte block size"
               % (fs_size, block_size))
    if fs_offset + fs_size > flash_bytes:
        c.fail("filesystem", "%#x + %#x ends at %#x, beyond the %s flash (%#x)" % (
            fs_offset, fs_size, fs_offset + fs_size, flash_size_name, flash_bytes))
    if fs_offset < app_offset + app_size:
        c.fail("filesystem.offset", "%#x overlaps the app partition %#x..%#x" % (
            fs_offset, app_offset, app_offset + app_size))
    block_count = fs_size // block_size
    if "block_count" in fs:
        given = c.kind(fs["block_count"], "filesystem.block_count", "int")
        if given != block_count:
            c.fail("filesystem.block_count", "%d does not match size %#x / %d = %d" % (
                given, fs_size, block_size, block_count))
    if block_count < 16:
        c.fail("filesystem.size", "%#x is too small for littlefs (needs at least 16 blocks)" % fs_size)
    board["filesystem"] = {
        "type": fs_type, "offset": fs_offset, "size": fs_size, "block_size": block_size,
        "block_count": block_count,
    }

    # ROMFS partition (optional here; `romfs_partition()` tells the build when it is missing): the app's
    # bytecode, memory-mapped by MicroPython's esp32 port from the data partition labelled "romfs".
    board["romfs"] = None
    if "romfs" in raw:
        rom = c.kind(raw["romfs"], "romfs", "dict")
        c.only_keys(rom, "romfs", {"offset", "size"})
        rom_offset = c.require(rom, "offset", "romfs", "int")
        rom_size = c.require(rom, "size", "romfs", "int")
        rom_end = rom_offset + rom_size
        if rom_offset % MMU_PAGE:
            c.fail("romfs.offset", "%#x is not a multiple of 64 KiB (0x10000): the partition is memory-mapped "
                   "in 64 KiB MMU pages" % rom_offset)
        if rom_size <= 0 or rom_size % SECTOR:
            c.fail("romfs.size", "%#x is not a positive multiple of the %d-byte flash sector"
                   % (rom_size, SECTOR))
        if rom_end > flash_bytes:
            c.fail("romfs", "%#x + %#x ends at %#x, beyond the %s flash (%#x)" % (
                rom_offset, rom_size, rom_end, flash_size_name, flash_bytes))
        if rom_offset < app_offset + app_size:
            c.fail("romfs.offset", "%#x overlaps the app partition %#x..%#x" % (
                rom_offset, app_offset, app_offset + app_size))
        if rom_offset < fs_offset + fs_size and fs_offset < rom_end:
            c.fail("romfs", "%#x..%#x overlaps the filesystem partition %#x..%#x" % (
                rom_offset, rom_end, fs_offset, fs_offset + fs_size))
        board["romfs"] = {"offset": rom_offset, "size": rom_size}

    # MicroPython versions and the .mpy each one loads.
    mp = c.require(raw, "micropython", "", "dict")
    c.only_keys(mp, "micropython", {"default", "supported"})
    supported = c.require(mp, "supported", "micropython", "list")
    if not supported:
        c.fail("micropython.supported", "must list at least one version")
    entries = []
    seen_versions = set()
    for i, entry in enumerate(supported):
        field = "micropython.supported[%d]" % i
        c.kind(entry, field, "dict")
        c.only_keys(entry, field, {"version", "mpy"})
        version = c.require(entry, "version", field, "str")
        mpy = c.require(entry, "mpy", field, "str")
        parsed = _parse_version(version)
        if parsed is None:
            c.fail(field + ".version", "%r is not a version like \"1.22.2\"" % version)
        if parsed[:2] < MIN_MICROPYTHON:
            c.fail(field + ".version", "%s is older than 1.19, the oldest MicroPython emlog supports"
                   % version)
        if version in seen_versions:
            c.fail(field + ".version", "%s is listed twice" % version)
        seen_versions.add(version)
        expected = mpy_version_for(version)
        if mpy != expected:
            c.fail(field + ".mpy", "MicroPython %s loads .mpy %s, not %s" % (version, expected, mpy))
        entries.append({"version": version, "mpy": mpy})
    default = c.require(mp, "default", "micropython", "str")
    if default not in seen_versions:
        c.fail("micropython.default", "%s is not in micropython.supported" % default)
    board["micropython"] = {"default": default, "supported": entries}

    # Pins: every GPIO must exist on the chip, not be a flash pin, be used once, and outputs
    # (UART TX, RS-485 DE, relays) must not sit on input-only pins.
    used = {}

    def pin(value, field, output):
        number = c.kind(value, field, "int")
        if number not in chip_info["gpio"]:
            c.fail(field, "GPIO%d does not exist on %s" % (number, chip))
        if number in chip_info["reserved"]:
            c.fail(field, "GPIO%d is wired to the SPI flash/PSRAM on %s modules" % (number, chip))
        if number in psram_pins:
            c.fail(field, "GPIO%d is wired to the %s PSRAM on this board" % (number, board["psram"]["mode"]))
        if output and number in chip_info["input_only"]:
            c.fail(field, "GPIO%d is input-only on %s and cannot drive an output" % (number, chip))
        if number in used:
            c.fail(field, "GPIO%d is already used by %s" % (number, used[number]))
        used[number] = field
        return number

    names = set()

    def unique_name(value, field):
        text = c.kind(value, field, "str")
        if text in names:
            c.fail(field, "name %r is used twice" % text)
        names.add(text)
        return text

    buses = []
    uarts = set()
    for i, bus in enumerate(c.kind(raw.get("rs485", []), "rs485", "list")):
        field = "rs485[%d]" % i
        c.kind(bus, field, "dict")
        c.only_keys(bus, field, {"name", "uart", "tx", "rx", "de"})
        uart = c.require(bus, "uart", field, "int")
        if uart not in (1, 2):
            c.fail(field + ".uart", "UART%d cannot be used: UART0 is the REPL/flashing console; use 1 or 2"
                   % uart)
        if uart in uarts:
            c.fail(field + ".uart", "UART%d is already used by another bus" % uart)
        uarts.add(uart)
        for key in ("name", "tx", "rx", "de"):
            if key not in bus:
                c.fail(field + "." + key, "missing (required)")
        buses.append({
            "name": unique_name(bus["name"], field + ".name"),
            "uart": uart,
            "tx": pin(bus["tx"], field + ".tx", True),
            "rx": pin(bus["rx"], field + ".rx", False),
            "de": pin(bus["de"], field + ".de", True),
        })
    board["rs485"] = buses

    inputs = []
    for i, di in enumerate(c.kind(raw.get("digital_inputs", []), "digital_inputs", "list")):
        field = "digital_inputs[%d]" % i
        c.kind(di, field, "dict")
        c.only_keys(di, field, {"name", "pin", "pull", "active"})
        name_i = unique_name(c.require(di, "name", field, "str"), field + ".name")
        number = pin(c.require(di, "pin", field, "int"), field + ".pin", False)
        pull = di.get("pull", "none")
        if pull not in ("up", "down", "none"):
            c.fail(field + ".pull", "%r must be \"up\", \"down\" or \"none\"" % (pull,))
        if pull != "none" and number in chip_info["input_only"]:
            c.fail(field + ".pull", "GPIO%d has no internal pull resistor on %s; use \"none\" and an "
                   "external resistor" % (number, chip))
        active = di.get("active", "low")
        if active not in ("low", "high"):
            c.fail(field + ".active", "%r must be \"low\" or \"high\"" % (active,))
        inputs.append({"name": name_i, "pin": number, "pull": pull, "active": active})
    board["digital_inputs"] = inputs

    relays = []
    for i, relay in enumerate(c.kind(raw.get("relays", []), "relays", "list")):
        field = "relays[%d]" % i
        c.kind(relay, field, "dict")
        c.only_keys(relay, field, {"name", "pin", "active"})
        name_r = unique_name(c.require(relay, "name", field, "str"), field + ".name")
        number = pin(c.require(relay, "pin", field, "int"), field + ".pin", True)
        active = relay.get("active", "high")
        if active not in ("low", "high"):
            c.fail(field + ".active", "%r must be \"low\" or \"high\"" % (active,))
        relays.append({"name": name_r, "pin": number, "active": active})
    board["relays"] = relays
    return board


def _parse_version(text):
    m = _VERSION_RE.match(str(text).strip().lstrip("v"))
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
