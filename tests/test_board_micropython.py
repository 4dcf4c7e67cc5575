"""boards/micropython/<board>: the MicroPython board definitions agree with boards/<board>.json.

They cannot be built here (no ESP-IDF, no network), so what can be checked is checked: every partitions.csv
is parsed as ESP-IDF reads it and its app, romfs and vfs partitions must be exactly where the board JSON says
(expectations come from the JSON, so a change on either side alone fails), no two partitions overlap, all
fit the flash, and the board enables MICROPY_VFS_ROM and names the right chip, flash size and partition table.
"""

import re

import pytest

from host_tools.boards import BOARDS_DIR, list_boards, load_board

MP_DIR = BOARDS_DIR / "micropython"
FILES = ("mpconfigboard.h", "mpconfigboard.cmake", "sdkconfig.board", "partitions.csv")
PARTITION_TABLE_END = 0x9000  # the table is at 0x8000 (ESP-IDF's default CONFIG_PARTITION_TABLE_OFFSET), 4 KiB
IDF_TARGET = {"ESP32": "esp32", "ESP32-S3": "esp32s3"}
SPIRAM_MODE = {"quad": "CONFIG_SPIRAM_MODE_QUAD", "octal": "CONFIG_SPIRAM_MODE_OCT"}


def parse_partitions(text):
    """Rows of an ESP-IDF partition CSV as dicts (name, type, subtype, offset, size), comments skipped."""
    rows = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        name, kind, subtype, offset, size = fields[:5]
        rows.append({"name": name, "type": kind, "subtype": subtype, "offset": int(offset, 0),
                     "size": int(size, 0)})
    return rows


def layout_problems(rows, flash_bytes):
    """What is wrong with a partition table's placement (empty when nothing is)."""
    problems = []
    names = [r["name"] for r in rows]
    if len(names) != len(set(names)):
        problems.append("duplicate partition names")
    placed = sorted(rows, key=lambda r: r["offset"])
    if placed and placed[0]["offset"] < PARTITION_TABLE_END:
        problems.append("%s starts inside the bootloader / partition table" % placed[0]["name"])
    for before, after in zip(placed, placed[1:]):
        if before["offset"] + before["size"] > after["offset"]:
            problems.append("%s overlaps %s" % (before["name"], after["name"]))
    for r in rows:
        align = 0x10000 if r["type"] == "app" else 0x1000  # ESP-IDF: apps on 64 KiB, data on 4 KiB
        if r["offset"] % align or r["size"] % 0x1000 or r["size"] <= 0:
            problems.append("%s is misaligned" % r["name"])
        if r["offset"] + r["size"] > flash_bytes:
            problems.append("%s runs past the end of flash" % r["name"])
    return problems


def board_files(name):
    return {f: (MP_DIR / name / f).read_text(encoding="utf-8") for f in FILES}


def by_name(rows):
    return {r["name"]: r for r in rows}


def test_every_board_has_a_micropython_definition_and_nothing_else_is_there():
    boards = set(list_boards())
    dirs = {p.name for p in MP_DIR.iterdir() if p.is_dir()}
    assert dirs == boards
    for name in boards:
        for f in FILES:
            assert (MP_DIR / name / f).is_file(), (name, f)
    readme = (MP_DIR / "README.md").read_text(encoding="utf-8")
    for name in boards:
        assert name in readme, name


@pytest.mark.parametrize("name", list_boards())
def test_partition_table_is_the_board_json_layout(name):
    board = load_board(name)
    rows = parse_partitions(board_files(name)["partitions.csv"])
    assert layout_problems(rows, board["flash_bytes"]) == []
    parts = by_name(rows)
    apps = [r for r in rows if r["type"] == "app"]

    # The app the firmware .bin is written to: `factory`, or `ota_0` with `ota_1` the same size after it.
    app = board["firmware"]["app_partition"]
    first = parts.get("factory") or parts["ota_0"]
    assert (first["type"], first["offset"], first["size"]) == ("app", app["offset"], app["size"])
    if "ota_0" in parts:
        assert [r["name"] for r in apps] == ["ota_0", "ota_1"]
        assert parts["ota_1"]["size"] == app["size"]
        assert parts["otadata"]["subtype"] == "ota"
    else:
        assert [r["name"] for r in apps] == ["factory"]

    # romfs: found by MicroPython by its label, any data subtype (0x80-0xFE is the user range).
    romfs = parts["romfs"]
    assert romfs["type"] == "data" and 0x80 <= int(romfs["subtype"], 0) <= 0xFE
    assert (romfs["offset"], romfs["size"]) == (board["romfs"]["offset"], board["romfs"]["size"])

    # vfs: the LittleFS partition MicroPython mounts (flashbdev looks for the label "vfs").
    vfs = parts["vfs"]
    assert vfs["type"] == "data"
    assert (vfs["offset"], vfs["size"]) == (board["filesystem"]["offset"], board["filesystem"]["size"])

    # Nothing else but what ESP-IDF and MicroPython need (nvs, phy_init, otadata with OTA).
    expected = {"nvs", "phy_init", "romfs", "vfs"} | {r["name"] for r in apps}
    if "ota_0" in parts:
        expected.add("otadata")
    assert set(parts) == expected


@pytest.mark.parametrize("name", list_boards())
def test_board_config_enables_romfs_and_matches_the_chip(name):
    board = load_board(name)
    files = board_files(name)
    header = files["mpconfigboard.h"]
    assert re.search(r"^\s*#define\s+MICROPY_VFS_ROM\s+\(?1\)?\s*$", header, re.M), header
    assert not re.search(r"^\s*#define\s+MICROPY_VFS_ROM_IOCTL\s+\(?0\)?", header, re.M)  # the esp32 partition

    cmake = files["mpconfigboard.cmake"]
    assert re.search(r"^set\(IDF_TARGET %s\)$" % IDF_TARGET[board["chip"]], cmake, re.M), cmake
    assert "${MICROPY_BOARD_DIR}/partitions.csv" in cmake
    assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in cmake

    sdkconfig = files["sdkconfig.board"]
    chosen = re.findall(r"^CONFIG_ESPTOOLPY_FLASHSIZE_(\w+)=y$", sdkconfig, re.M)
    assert chosen == [board["flash_size"]]
    psram = board["psram"]
    if psram is None:
        assert not re.search(r"^CONFIG_SPIRAM=y$", sdkconfig, re.M)
    else:
        assert re.search(r"^CONFIG_SPIRAM=y$", sdkconfig, re.M)
        assert re.search(r"^%s=y$" % SPIRAM_MODE[psram["mode"]], sdkconfig, re.M)


def test_the_checks_catch_a_bad_table():
    table = parse_partitions(
        "# Name, Type, SubType, Offset, Size\n"
        "nvs, data, nvs, 0x9000, 0x6000,\n"
        "factory, app, factory, 0x10000, 0x1F0000,\n"
        "romfs, data, 0x8f, 0x1F8000, 0x40000,  # starts inside the app\n"
        "vfs, data, fat, 0x238000, 0x1D0000,\n")
    assert table[2] == {"name": "romfs", "type": "data", "subtype": "0x8f", "offset": 0x1F8000, "size": 0x40000}
    problems = layout_problems(table, 4 << 20)
    assert "factory overlaps romfs" in problems
    assert "vfs runs past the end of flash" in problems
    misplaced = layout_problems([{"name": "factory", "type": "app", "subtype": "factory", "offset": 0x18000,
                                  "size": 0x1000}], 4 << 20)
    assert misplaced == ["factory is misaligned"]
