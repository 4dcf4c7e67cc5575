"""`emlog build` as a technician runs it: the output directory contract and the board-fit errors.

The image is read back with littlefs-python directly (not through host_tools.image), and compared with
the site file parsed here with tomllib and the board file read as JSON. Flashing errors (port missing,
wrong chip, image too large for the partition) are tested in hil_tests/test_flash_esp32.py.
"""

import hashlib
import json
import tomllib

import pytest
from emlog_cli import MN, edit, emlog, fill
from littlefs import LittleFS, UserContext

from host_tools import REPO_ROOT

BOARD = "esp32-generic-4mb"


def site_file(tmp_path, template="voc-line", filled=True):
    path = tmp_path / "site.toml"
    assert emlog("init", "--template", template, "--out", path.name, "--force", cwd=tmp_path).returncode == 0
    if filled:
        path.write_text(fill(path.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def board_json(name=BOARD):
    return json.loads((REPO_ROOT / "boards" / (name + ".json")).read_text(encoding="utf-8"))


def refused(proc, out_dir):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert not out_dir.exists(), "a refused build must not leave an output directory"
    return proc.stderr


# ---- the output directory contract ---------------------------------------------------------------------------
@pytest.mark.parametrize("template", ["boiler-nox", "voc-line"])
def test_build_output_directory_contract(tmp_path, template):
    site = site_file(tmp_path, template)
    out = tmp_path / "build"
    proc = emlog("build", site.name, "--board", BOARD, "--out", "build", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "next: emlog flash build --port PORT --board %s" % BOARD in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["fs.img", "manifest.json", "romfs.img"]

    board = board_json()
    fs_size = int(board["filesystem"]["size"], 16)
    image = (out / "fs.img").read_bytes()
    assert len(image) == fs_size
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["image"] == {"file": "fs.img", "size": fs_size, "sha256": hashlib.sha256(image).hexdigest()}
    assert manifest["board"]["name"] == BOARD and manifest["board"]["chip"] == "ESP32"
    assert manifest["micropython"]["version"] == board["micropython"]["default"]

    fs = LittleFS(context=UserContext(buffer=bytearray(image)), block_size=4096, block_count=fs_size // 4096,
                  mount=False)
    fs.mount()
    files = {}
    for root, _dirs, names in fs.walk("/"):
        for name in names:
            full = (root.rstrip("/") + "/" + name).lstrip("/")
            with fs.open(full, "rb") as fh:
                files[full] = fh.read()
    # every file the manifest lists is in the image with that hash, plus the manifest itself
    assert set(files) == set(manifest["files"]) | {"manifest.json"}
    for path, meta in manifest["files"].items():
        assert hashlib.sha256(files[path]).hexdigest() == meta["sha256"], path
    stored = json.loads(files["manifest.json"])
    assert stored == {k: v for k, v in manifest.items() if k != "image"}
    # ESP32 MicroPython runs boot.py / main.py as source; the app is .mpy in romfs.img, checked by main.py
    assert files["main.py"] == (REPO_ROOT / "firmware" / "main.py").read_bytes()
    assert not [p for p in files if p.endswith((".py", ".mpy")) and p not in ("boot.py", "main.py")]
    rom = (out / "romfs.img").read_bytes()
    digest = hashlib.sha256(rom).hexdigest()
    assert manifest["romfs"]["size"] == len(rom) <= int(board["romfs"]["size"], 16)
    assert manifest["romfs"]["sha256"] == digest
    assert files["romfs.sha256"] == b"%d %s\n" % (len(rom), digest.encode())
    rom_files = romfs_listing(rom)
    assert rom_files["app/main.mpy"][:2] == b"M\x06"
    assert "protocols/templates/sdm630.json" in rom_files  # data the device reads, beside the bytecode
    sources = {p.relative_to(REPO_ROOT / "firmware").with_suffix(".mpy").as_posix()
               for p in (REPO_ROOT / "firmware").rglob("*.py") if p.name not in ("boot.py", "main.py")}
    sources |= {p.relative_to(REPO_ROOT).with_suffix(".mpy").as_posix()
                for p in (REPO_ROOT / "protocols").rglob("*.py")}
    assert sources <= set(rom_files), sorted(sources - set(rom_files))
    assert {p: hashlib.sha256(d).hexdigest() for p, d in rom_files.items()} == {
        p: meta["sha256"] for p, meta in manifest["romfs"]["files"].items()}
    # the config is the site file's content
    config = json.loads(files["config.json"])
    site_data = tomllib.loads(site.read_text(encoding="utf-8"))
    assert config["stations"][0]["mn"] == MN
    assert config["centers"][0]["host"] == "10.1.2.3"
    assert [(d["name"], d["address"]) for d in config["buses"][0]["devices"]] == [
        (d["name"], d["address"]) for d in site_data["buses"][0]["devices"]]
    assert [r["name"] for r in config["rules"]["list"]] == [r["name"] for r in site_data["rules"]["list"]]
    assert manifest["config"]["sha256"] == hashlib.sha256(files["config.json"]).hexdigest()
    # sealed: the logger takes exactly these bytes without running its validator again
    assert files["config.sha256"] == hashlib.sha256(files["config.json"]).hexdigest().encode() + b"\n"


def romfs_listing(image):
    """{path: bytes} of a ROMFS image, read here from the format (MicroPython's extmod/vfs_rom.c): records
    of (kind, length, payload) as unsigned varints; 4 = directory (name, records), 5 = file (name, records
    of which 2 = verbatim data)."""
    def uint(buf, i):
        v = 0
        while True:
            b = buf[i]
            i += 1
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v, i

    def records(buf, i, end):
        while i < end:
            kind, i = uint(buf, i)
            size, i = uint(buf, i)
            yield kind, buf[i:i + size]
            i += size

    def walk(buf, prefix, out):
        for kind, payload in records(buf, 0, len(buf)):
            if kind in (4, 5):
                n, j = uint(payload, 0)
                name = prefix + payload[j:j + n].decode()
                rest = payload[j + n:]
                if kind == 4:
                    walk(rest, name + "/", out)
                else:
                    out[name] = b"".join(bytes(d) for k, d in records(rest, 0, len(rest)) if k == 2)
        return out

    assert image[:3] == b"\xd2\xcd\x31"
    size, i = uint(image, 3)
    return walk(image[i:i + size], "", {})


# ---- bad inputs --------------------------------------------------------------------------------------------
def test_site_pins_that_do_not_match_the_board(tmp_path):
    site = site_file(tmp_path)
    line = edit(site, "de = 4", "de = 5")
    err = refused(emlog("build", site.name, "--board", BOARD, "--out", "build", cwd=tmp_path), tmp_path / "build")
    port = board_json()["rs485"][0]
    assert err == ("emlog: error: the site does not fit board {b} (boards/{b}.json):\n"
                   "  site.toml:{line}: buses[0].de: GPIO5, but board {b} wires UART1 DE to GPIO{de}; set de = {de}\n"
                   .format(b=BOARD, line=line, de=port["de"]))


def test_site_bus_on_a_uart_the_board_has_not(tmp_path):
    site = site_file(tmp_path)
    line = edit(site, "uart = 1", "uart = 0")
    err = refused(emlog("build", site.name, "--board", BOARD, "--out", "build", cwd=tmp_path), tmp_path / "build")
    uarts = ", ".join(str(p["uart"]) for p in board_json()["rs485"])
    assert err == ("emlog: error: the site does not fit board {b} (boards/{b}.json):\n  site.toml:{line}: "
                   "buses[0].uart: bus rs485-1 is on UART0, but board {b} has RS-485 ports on UART {u} only; "
                   "set uart to one of them\n".format(b=BOARD, line=line, u=uarts))
    site = site_file(tmp_path)
    edit(site, "uart = 1", "uart = 2")  # a real port of the board, but wired to other pins
    tx_line = edit(site, "tx = 17", "tx = 17")
    err = refused(emlog("build", site.name, "--board", BOARD, "--out", "build", cwd=tmp_path), tmp_path / "build")
    bus2 = board_json()["rs485"][1]
    for pin, off in (("tx", 0), ("rx", 1), ("de", 2)):
        assert "  site.toml:%d: buses[0].%s: GPIO%d, but board %s wires UART2 %s to GPIO%d; set %s = %d\n" % (
            tx_line + off, pin, {"tx": 17, "rx": 16, "de": 4}[pin], BOARD, pin.upper(), bus2[pin], pin,
            bus2[pin]) in err


def test_rule_relay_that_the_board_does_not_have(tmp_path):
    site = site_file(tmp_path)
    line = edit(site, "for_s = 60", 'for_s = 60\n  relay = "do7"') + 1
    err = refused(emlog("build", site.name, "--board", BOARD, "--out", "build", cwd=tmp_path), tmp_path / "build")
    relays = ", ".join(r["name"] for r in board_json()["relays"])
    assert ("  site.toml:%d: rules.list[1].relay: rule damper-open drives relay 'do7', which board %s does not "
            "have; use one of %s\n" % (line, BOARD, relays)) in err


def test_unfilled_placeholders_stop_the_build(tmp_path):
    site = site_file(tmp_path, filled=False)
    err = refused(emlog("build", site.name, "--board", BOARD, "--out", "build", cwd=tmp_path), tmp_path / "build")
    assert err.startswith("emlog: error: 3 problem(s) in the site file:\n")
    assert "stations[0].mn: still the template's placeholder; put the real value here" in err


def test_typo_in_a_key_stops_the_build_with_the_line(tmp_path):
    site = site_file(tmp_path)
    line = edit(site, "timeout_ms = 300", "timeout = 300")
    err = refused(emlog("build", site.name, "--board", BOARD, "--out", "build", cwd=tmp_path), tmp_path / "build")
    assert err.startswith("emlog: error: 1 problem(s) in the site file:\n  site.toml:%d: buses[0].timeout: "
                          "unknown key 'timeout'; did you mean 'timeout_ms'?" % line)


def test_unknown_board(tmp_path):
    site = site_file(tmp_path)
    err = refused(emlog("build", site.name, "--board", "esp32-generic", "--out", "build", cwd=tmp_path),
                  tmp_path / "build")
    assert err.startswith("emlog: error: ") and "esp32-generic-4mb" in err


def _board_variant(tmp_path, change):
    board = board_json()
    change(board)
    path = tmp_path / "my-board.json"
    board["name"] = "my-board"
    path.write_text(json.dumps(board), encoding="utf-8")
    return str(path)


def test_romfs_image_larger_than_its_partition(tmp_path):
    site = site_file(tmp_path)
    board = _board_variant(tmp_path, lambda b: b["romfs"].update(size="0x10000"))
    err = refused(emlog("build", site.name, "--board", board, "--out", "build", cwd=tmp_path), tmp_path / "build")
    assert "emlog: error: the ROMFS image is " in err
    assert "romfs partition holds 65536" in err and "enlarge the romfs partition" in err


def test_board_without_a_romfs_partition(tmp_path):
    site = site_file(tmp_path)
    board = _board_variant(tmp_path, lambda b: b.pop("romfs"))
    err = refused(emlog("build", site.name, "--board", board, "--out", "build", cwd=tmp_path), tmp_path / "build")
    assert "board my-board has no romfs partition" in err and '"romfs": {"offset"' in err


def test_micropython_without_romfs_support(tmp_path):
    site = site_file(tmp_path)
    err = refused(emlog("build", site.name, "--board", BOARD, "--out", "build", "--micropython", "1.24.1",
                        cwd=tmp_path), tmp_path / "build")
    assert "MicroPython 1.24.1 cannot import from a ROMFS partition (vfs.VfsRom needs >= 1.25)" in err
