"""`emlog flash`, `emlog erase`, `emlog info`: put a build on a logger, wipe it, or see what is on it.

All three talk to the ESP32 serial bootloader through esptool's Python API (`esptool.cmds`), never by
running the esptool command: chip detection, the flasher stub, compressed writes and MD5 checks are
esptool's own code paths, and its errors are turned into one clear line for the technician.

    emlog flash BUILD_DIR --port PORT [--firmware MICROPYTHON.bin] [--board B] [--baud N]
    emlog erase --port PORT [--board B] [--filesystem-only] --yes
    emlog info  --port PORT [--board B] [--json] [--save-image FILE]

BUILD_DIR is the output of `emlog build` (see host_tools/image.py): `fs.img` (the LittleFS image, exactly
the board's filesystem partition), `romfs.img` (the app's bytecode, for the board's romfs partition; see
host_tools/romfs.py) and `manifest.json` (board, versions, sha256 of every file, plus size and sha256 of
fs.img and romfs.img). The board defaults to the one recorded in the manifest. The MicroPython firmware
(`--firmware`) must be one built from boards/micropython/BOARD, which mounts the romfs partition.

Resetting into the bootloader: on a USB-serial adapter esptool pulses DTR/RTS (`default-reset` before,
`hard-reset` after). A pseudo-terminal (the emulated logger in tests, or a serial-over-network bridge)
has no modem lines, so `--before/--after auto` (the default) picks `no-reset` there; the device must
already be in download mode, which the emulator always is.
"""

import contextlib
import hashlib
import json
import os
import stat
import struct
import sys
from pathlib import Path

from mpremote.romfs import VfsRomWriter

from host_tools.boards import CHIPS, FLASH_SIZES, boards_for_chip, load_board, romfs_partition
from host_tools.errors import UserError
from host_tools.image import CONFIG_NAME, MANIFEST_NAME, image_info, load_build_output, sha256_hex
from host_tools.romfs import ROMFS_CHECK, check_fits, load_romfs

ROM_BAUD = 115200
DEFAULT_BAUD = 460800
CONNECT_ATTEMPTS = 4
ESP_IMAGE_MAGIC = 0xE9
ROMFS_MAGIC = VfsRomWriter.ROMFS_HEADER  # b"\xd2\xcd\x31", then a varint payload length
ROMFS_PROBE = 16  # header bytes read to find the image length: the magic plus a varint of up to 13 bytes
SECRET_KEYS = ("pw", "password", "passwd", "secret", "token", "key", "psk")


# ---------------------------------------------------------------------------------------------- CLI

def register(subparsers):
    p = subparsers.add_parser(
        "flash", help="write a build (and optionally MicroPython) to a logger over USB-serial",
        description="Write an `emlog build` output directory (fs.img, romfs.img, manifest.json) to the "
                    "logger's filesystem and romfs partitions, and optionally the MicroPython firmware, then "
                    "verify each by MD5. The chip must match the board.",
    )
    p.add_argument("build", metavar="BUILD_DIR",
                   help="output directory of `emlog build` (fs.img, romfs.img, manifest.json)")
    _connection_args(p)
    p.add_argument("--firmware", metavar="MICROPYTHON.bin",
                   help="MicroPython firmware .bin built from boards/micropython/BOARD (written at the "
                        "board's firmware offset)")
    p.add_argument("--board", "-b", help="board name or board .json (default: the board in the manifest)")
    p.set_defaults(func=cmd_flash)

    p = subparsers.add_parser(
        "erase", help="erase a logger's flash (everything, or only the filesystem partition)",
        description="Erase the whole flash (firmware, app, config and stored records) or, with "
                    "--filesystem-only, only the board's filesystem partition (the firmware and the romfs "
                    "partition with the app stay). Unsent records are lost.",
    )
    _connection_args(p)
    p.add_argument("--board", "-b", help="board name: checked against the chip; needed for --filesystem-only")
    p.add_argument("--filesystem-only", action="store_true",
                   help="erase only the filesystem partition (config and data), keep the firmware")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_erase)

    p = subparsers.add_parser(
        "info", help="what is on this logger? chip, board, manifest and config summary",
        description="Read the logger's filesystem partition back (only the blocks littlefs needs), and show "
                    "the chip, the board layout found, the build manifest, the config summary and whether "
                    "every file still matches the manifest; then read the app image in the romfs partition "
                    "(only its length) and check it against the build.",
    )
    _connection_args(p)
    p.add_argument("--board", "-b", help="board name (default: try every board for the detected chip)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--save-image", metavar="FILE", help="also read the whole filesystem partition into FILE")
    p.set_defaults(func=cmd_info)


def _connection_args(p):
    p.add_argument("--port", "-p", required=True, help="serial port of the logger, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help="baud rate once the flasher stub runs (default %d)" % DEFAULT_BAUD)
    p.add_argument("--before", choices=("auto", "default-reset", "no-reset"), default="auto",
                   help="how to enter the bootloader (auto: DTR/RTS pulse, or none on a pty)")
    p.add_argument("--after", choices=("auto", "hard-reset", "no-reset"), default="auto",
                   help="what to do when done (auto: reset into the app, or none on a pty)")


def cmd_flash(args):
    flash_build(args.port, args.build, board_name=args.board, firmware_path=args.firmware, baud=args.baud,
                before=args.before, after=args.after)
    return 0


def cmd_erase(args):
    if not args.yes:
        what = "the filesystem partition (config and stored records)" if args.filesystem_only else \
            "the whole flash (firmware, config and stored records)"
        if not sys.stdin.isatty():
            raise UserError("erase wipes %s; records not yet uploaded are lost. Pass --yes to confirm" % what)
        answer = input("This erases %s on %s. Type 'erase' to continue: " % (what, args.port))
        if answer.strip() != "erase":
            raise UserError("not erased (confirmation not given)")
    erase_device(args.port, board_name=args.board, filesystem_only=args.filesystem_only, baud=args.baud,
                 before=args.before, after=args.after)
    return 0


def cmd_info(args):
    # esptool's connection chatter goes to stderr so that stdout is only the report (or JSON).
    with contextlib.redirect_stdout(sys.stderr):
        report = device_info(args.port, board_name=args.board, baud=args.baud, before=args.before,
                             after=args.after, save_image=args.save_image)
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False))
    else:
        print(format_info(report))
    return 0


def say(message):
    print("emlog: " + message, flush=True)


# -------------------------------------------------------------------------------------- connection

def is_pty(port):
    """True for a pseudo-terminal: no DTR/RTS lines, so no automatic reset into the bootloader."""
    try:
        real = os.path.realpath(port)
        if real.startswith("/dev/pts/"):
            return True
        st = os.stat(real)
        return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143  # Unix98 pty slaves
    except OSError:
        return False


def _before_mode(port, before):
    if before == "auto":
        return "no-reset" if is_pty(port) else "default-reset"
    return before


def _after_mode(port, after):
    if after == "auto":
        return "no-reset" if is_pty(port) else "hard-reset"
    return after


def _check_port(port):
    if "://" in port:  # pyserial URL (rfc2217://, socket://): nothing to check locally
        return
    if not os.path.exists(port):
        raise UserError("serial port %s does not exist; check the USB cable and the port name "
                        "(ls /dev/ttyUSB* /dev/ttyACM* on Linux)" % port)


def _connection_error(port, exc):
    text = str(exc)
    low = text.lower()
    if "exclusively lock" in low or "resource temporarily unavailable" in low or "errno 16" in low \
            or "device or resource busy" in low:
        return UserError("serial port %s is busy: another program has it open (a serial monitor, "
                         "`emlog monitor`, or another flash); close it and retry" % port)
    if "permission denied" in low:
        return UserError("no permission to open %s; add your user to the 'dialout' group (then log in "
                         "again) or run with access to the port" % port)
    if "no such file" in low or "errno 2]" in low:
        return UserError("serial port %s does not exist; check the USB cable and the port name" % port)
    if "failed to connect" in low or "no serial data" in low or "timed out" in low:
        return UserError("no ESP32 bootloader answered on %s: check the cable and --port, then put the "
                         "logger in download mode (hold BOOT/GPIO0, press and release EN/RESET, release "
                         "BOOT) and retry" % port)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return UserError("talking to the bootloader on %s failed: %s" % (port, first))


class Connection:
    """An esptool connection to a logger's bootloader with the flasher stub running."""

    def __init__(self, port, board=None, baud=DEFAULT_BAUD, before="auto", after="auto"):
        self.port = port
        self.board = board
        self.baud = baud
        self.before = _before_mode(port, before)
        self.after = _after_mode(port, after)
        self.esp = None
        self.flash_size = None

    def __enter__(self):
        from esptool.cmds import attach_flash, detect_chip, detect_flash_size, run_stub
        from esptool.util import FatalError
        from serial import SerialException

        _check_port(self.port)
        try:
            esp = detect_chip(self.port, ROM_BAUD, connect_mode=self.before,
                              connect_attempts=CONNECT_ATTEMPTS)
        except (FatalError, SerialException, OSError) as exc:
            raise _connection_error(self.port, exc) from None
        self.esp = esp
        try:
            if self.board is not None and esp.CHIP_NAME != self.board["chip"]:
                others = [b["name"] for b in boards_for_chip(esp.CHIP_NAME)]
                raise UserError(
                    "the logger on %s is an %s, but board %s is for an %s: nothing was written; use a board "
                    "for %s (%s)" % (self.port, esp.CHIP_NAME, self.board["name"], self.board["chip"],
                                     esp.CHIP_NAME, ", ".join(others) or "none shipped: add a boards/*.json"))
            self.esp = esp = run_stub(esp)
            if self.baud > ROM_BAUD:
                esp.change_baud(self.baud)
            attach_flash(esp)
            self.flash_size = detect_flash_size(esp)
            if self.board is not None and self.flash_size in FLASH_SIZES and \
                    FLASH_SIZES[self.flash_size] < self.board["flash_bytes"]:
                raise UserError("the logger on %s has %s of flash but board %s needs %s; pick the board "
                                "that matches this module" % (self.port, self.flash_size, self.board["name"],
                                                              self.board["flash_size"]))
        except (FatalError, SerialException, OSError) as exc:
            self._close()
            raise _connection_error(self.port, exc) from None
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        from esptool.cmds import reset_chip
        from esptool.util import FatalError

        try:
            if exc_type is None and self.esp is not None:
                try:
                    reset_chip(self.esp, self.after)
                except (FatalError, OSError) as err:
                    say("warning: could not reset the logger (%s); press its EN/RESET button" % err)
        finally:
            self._close()
        return False

    def _close(self):
        if self.esp is not None:
            try:
                self.esp._port.close()
            except Exception:  # closing must not mask the real error
                pass

    def describe(self):
        esp = self.esp
        try:
            chip = esp.get_chip_description()
        except Exception:
            chip = esp.CHIP_NAME
        try:
            mac = ":".join("%02x" % b for b in esp.read_mac("BASE_MAC"))
        except Exception:
            mac = None
        return {"name": esp.CHIP_NAME, "description": chip, "mac": mac, "flash_size": self.flash_size}

    def md5(self, offset, size):
        return self.esp.flash_md5sum(offset, size)


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _esptool_errors():
    from esptool.util import FatalError
    from serial import SerialException

    return (FatalError, SerialException, OSError)


# ------------------------------------------------------------------------------------------- flash

def check_firmware(data, board, name="firmware"):
    """Refuses a firmware file that is not an ESP image for the board's chip or outgrows the app partition."""
    if not data:
        raise UserError("%s is empty" % name)
    if data[0] != ESP_IMAGE_MAGIC:
        raise UserError("%s is not an ESP firmware image (first byte %#04x, expected 0xe9): use the "
                        "MicroPython .bin built from boards/micropython/%s (not .uf2, .hex, fs.img or romfs.img)"
                        % (name, data[0], board["name"]))
    if len(data) >= 24:
        (chip_id,) = struct.unpack_from("<H", data, 12)
        want = CHIPS[board["chip"]]["image_chip_id"]
        if chip_id != want:
            built_for = [c for c, info in CHIPS.items() if info["image_chip_id"] == chip_id]
            raise UserError("%s is a firmware image for %s, but board %s is an %s" % (
                name, built_for[0] if built_for else "chip id %d" % chip_id, board["name"], board["chip"]))
    limit = board["firmware"]["max_size"]
    if len(data) > limit:
        raise UserError("%s is %d bytes; at %#x it would run past the app partition (max %d bytes) into "
                        "the filesystem" % (name, len(data), board["firmware"]["offset"], limit))


def check_image_for_board(image, manifest, board, where="fs.img"):
    """Refuses an image that does not fit or was laid out for another partition (before any device I/O)."""
    fs = board["filesystem"]
    built = manifest.get("filesystem") or {}
    built_board = (manifest.get("board") or {}).get("name", "?")
    if len(image) > fs["size"]:
        raise UserError(
            "%s (%d KiB, built for board %s) does not fit the filesystem partition of board %s (%d KiB at "
            "%#x); rebuild with `emlog build SITE.toml --board %s`" % (
                where, len(image) // 1024, built_board, board["name"], fs["size"] // 1024, fs["offset"],
                board["name"]))
    try:
        geometry = image_info(image)
    except UserError as exc:
        raise UserError("%s is not a usable littlefs image (%s); rebuild it" % (where, exc)) from None
    if len(image) != fs["size"] or geometry["block_count"] != fs["block_count"] \
            or built.get("offset") != fs["offset"]:
        raise UserError(
            "%s was built for board %s (%d blocks at %#x) but board %s has its filesystem at %#x with %d "
            "blocks: MicroPython would not mount it; rebuild with `--board %s`" % (
                where, built_board, geometry["block_count"], built.get("offset", 0), board["name"],
                fs["offset"], fs["block_count"], board["name"]))


def flash_build(port, build_dir, board_name=None, firmware_path=None, baud=DEFAULT_BAUD, before="auto",
                after="auto"):
    """Writes BUILD_DIR's fs.img, romfs.img (and a firmware .bin) to the logger and verifies each by MD5."""
    image, manifest = load_build_output(build_dir)
    board_name = board_name or (manifest.get("board") or {}).get("name")
    if not board_name:
        raise UserError("the manifest in %s names no board; pass --board" % build_dir)
    board = load_board(board_name)
    check_image_for_board(image, manifest, board, where=str(Path(build_dir) / "fs.img"))
    romfs = None
    if manifest.get("romfs"):  # builds older than ROMFS have none: their app is on the filesystem
        romfs = load_romfs(build_dir, manifest)
        romfs_offset, romfs_size = romfs_partition(board)
        check_fits(romfs, romfs_size, board["name"])
    regions = []
    if firmware_path:
        path = Path(firmware_path)
        if not path.is_file():
            raise UserError("firmware file %s does not exist" % path)
        firmware = path.read_bytes()
        check_firmware(firmware, board, name=str(path))
        regions.append(("firmware", board["firmware"]["offset"], firmware))
    if romfs is not None:
        regions.append(("romfs", romfs_offset, romfs))
    regions.append(("filesystem", board["filesystem"]["offset"], image))
    note = "%d files, MicroPython %s" % (len(manifest.get("files", {})) + 1,
                                         (manifest.get("micropython") or {}).get("version"))
    return flash_regions(port, board, regions, baud=baud, before=before, after=after, note=note)


def flash_regions(port, board, regions, baud=DEFAULT_BAUD, before="auto", after="auto", note=""):
    """Writes [(label, offset, bytes)] through esptool's write_flash, then re-checks each region's MD5."""
    from esptool.cmds import write_flash

    say("board %s (%s, %s flash): %s" % (board["name"], board["chip"], board["flash_size"], ", ".join(
        "%s %d KiB at %#x" % (label, (len(data) + 1023) // 1024, offset) for label, offset, data in regions))
        + (" (%s)" % note if note else ""))
    report = {"port": port, "board": board["name"], "regions": []}
    with Connection(port, board=board, baud=baud, before=before, after=after) as conn:
        report["chip"] = conn.describe()
        try:
            # One write_flash per region: esptool stops compressing every later file once one file
            # (e.g. an already-dense firmware) does not compress.
            for _label, offset, data in regions:
                write_flash(conn.esp, [(offset, data)], flash_size="keep")
            for label, offset, data in regions:
                want = hashlib.md5(data).hexdigest()
                got = conn.md5(offset, len(data))
                if got != want:
                    raise UserError("%s at %#x reads back with MD5 %s instead of %s: the flash may be worn "
                                    "or the link unreliable; erase and flash again"
                                    % (label, offset, got, want))
                report["regions"].append({"label": label, "offset": offset, "size": len(data), "md5": got})
        except _esptool_errors() as exc:
            raise UserError("writing to the logger on %s failed: %s; nothing is verified, flash again"
                            % (port, _first_line(exc))) from None
    say("flashed and verified: " + ", ".join("%s at %#x (%d bytes, md5 %s)" % (
        r["label"], r["offset"], r["size"], r["md5"]) for r in report["regions"]))
    return report


# ------------------------------------------------------------------------------------------- erase

def erase_device(port, board_name=None, filesystem_only=False, baud=DEFAULT_BAUD, before="auto",
                 after="auto"):
    """Erases the whole flash, or only the board's filesystem partition, and checks it reads back erased."""
    from esptool.cmds import erase_flash, erase_region

    board = load_board(board_name) if board_name else None
    if filesystem_only and board is None:
        raise UserError("--filesystem-only needs --board, so emlog knows where the filesystem partition is")
    with Connection(port, board=board, baud=baud, before=before, after=after) as conn:
        try:
            if filesystem_only:
                offset, size = board["filesystem"]["offset"], board["filesystem"]["size"]
                erase_region(conn.esp, offset, size)
            else:
                # The chip's own flash size (its RDID), else the board's; the smallest size if neither
                # is known, so the blank check never reads past the end of the flash.
                size = FLASH_SIZES.get(conn.flash_size) or (board["flash_bytes"] if board else min(
                    FLASH_SIZES.values()))
                offset = 0
                erase_flash(conn.esp)
            got = conn.md5(offset, size)
        except _esptool_errors() as exc:
            raise UserError("erasing the logger on %s failed: %s" % (port, _first_line(exc))) from None
        if got != hashlib.md5(b"\xff" * size).hexdigest():
            raise UserError("flash at %#x..%#x does not read back erased; erase again"
                            % (offset, offset + size))
    say("erased and verified blank: %#x..%#x (%d KiB)" % (offset, offset + size, size // 1024))
    return {"offset": offset, "size": size}


# -------------------------------------------------------------------------------------------- info

class _DeviceBlocks:
    """littlefs-python context reading 4 KiB blocks from the device on demand (cached, read-only)."""

    def __init__(self, conn, offset, limit, block_size):
        from littlefs import UserContext

        class Context(UserContext):
            def __init__(ctx):
                super().__init__(buffsize=0)

            def read(ctx, cfg, block, off, size):
                return self.block(block)[off:off + size]

            def prog(ctx, cfg, block, off, data):
                raise OSError("read-only")

            def erase(ctx, cfg, block):
                raise OSError("read-only")

            def sync(ctx, cfg):
                return 0

        self.conn = conn
        self.offset = offset
        self.limit = limit
        self.block_size = block_size
        self.cache = {}
        self.context = Context()

    def block(self, n):
        if n not in self.cache:
            start = self.offset + n * self.block_size
            if start + self.block_size > self.limit:
                self.cache[n] = b"\xff" * self.block_size
            else:
                self.cache[n] = bytes(self.conn.esp.read_flash(start, self.block_size))
        return self.cache[n]


def _mount_on_device(conn, board):
    from littlefs import LittleFS, LittleFSError

    from host_tools.image import LFS_LOOKAHEAD, LFS_NAME_MAX, LFS_PROG_SIZE, LFS_READ_SIZE

    fs_info = board["filesystem"]
    flash_end = FLASH_SIZES.get(conn.flash_size, board["flash_bytes"])
    dev = _DeviceBlocks(conn, fs_info["offset"], flash_end, fs_info["block_size"])
    first = dev.block(0) + dev.block(1)
    if b"littlefs" not in first:  # no superblock in the metadata pair: not a littlefs partition
        return None, dev
    fs = LittleFS(context=dev.context, block_size=fs_info["block_size"], block_count=0,
                  read_size=LFS_READ_SIZE, prog_size=LFS_PROG_SIZE, lookahead_size=LFS_LOOKAHEAD,
                  name_max=LFS_NAME_MAX, mount=False)
    try:
        fs.mount()
    except LittleFSError:
        return None, dev
    if fs.fs_stat().block_count != fs_info["block_count"]:
        return None, dev
    return fs, dev


def device_info(port, board_name=None, baud=DEFAULT_BAUD, before="auto", after="auto", save_image=None):
    """What is on the logger: chip, board layout found, manifest, config summary, file check."""
    from host_tools.image import read_files

    board = load_board(board_name) if board_name else None
    report = {"port": port, "board": None, "filesystem": None, "manifest": None, "config": None,
              "files": None, "romfs": None}
    with Connection(port, board=board, baud=baud, before=before, after=after) as conn:
        report["chip"] = conn.describe()
        candidates = [board] if board else [
            b for b in boards_for_chip(conn.esp.CHIP_NAME)
            if b["flash_bytes"] <= FLASH_SIZES.get(conn.flash_size, b["flash_bytes"])]
        try:
            found = None
            files = {}
            for cand in candidates:
                fs, dev = _mount_on_device(conn, cand)
                if fs is not None:
                    found = (cand, fs, dev)
                    break
            if found is None:
                report["searched"] = [{"board": c["name"], "offset": c["filesystem"]["offset"]}
                                      for c in candidates]
            else:
                cand, fs, dev = found
                files = read_files(fs)
                st = fs.fs_stat()
                report["filesystem"] = {
                    "offset": cand["filesystem"]["offset"], "size": cand["filesystem"]["size"],
                    "block_count": st.block_count, "used_blocks": fs.used_block_count,
                    "disk_version": "%d.%d" % (st.disk_version >> 16, st.disk_version & 0xFFFF),
                    "blocks_read": len(dev.cache),
                }
                _describe_files(report, files)
                cand = _board_built_for(report["manifest"], cand, candidates)
                report["board"] = cand["name"]
                if save_image:
                    size = cand["filesystem"]["size"]
                    data = conn.esp.read_flash(cand["filesystem"]["offset"], size)
                    Path(save_image).write_bytes(data)
                    report["saved_image"] = {"file": str(save_image), "size": len(data),
                                             "sha256": sha256_hex(data)}
            # The romfs partition of the board found (or given: it is still worth reading when the
            # filesystem was erased on its own, which keeps the app image).
            romfs_board = board if found is None else cand
            if romfs_board is not None:
                report["romfs"] = read_romfs(conn, romfs_board, romfs_expected(files, report["manifest"]))
        except _esptool_errors() as exc:
            raise UserError("reading the logger on %s failed: %s" % (port, _first_line(exc))) from None
    return report


def _board_built_for(manifest, cand, candidates):
    """Boards with the same layout (e.g. one with PSRAM and one without) mount alike; the manifest names one."""
    name = ((manifest or {}).get("board") or {}).get("name")
    for other in candidates:
        if other["name"] == name and other["filesystem"] == cand["filesystem"] \
                and other["romfs"] == cand["romfs"]:
            return other
    return cand


# ------------------------------------------------------------------------------------------- romfs

def romfs_length(head):
    """Total length of the ROMFS image starting with `head`, or None if `head` is not a ROMFS header.

    mpremote's VfsRomWriter writes the magic b"\xd2\xcd\x31", then the payload length as a varint (7 bits a
    byte, most significant group first, 0x80 set on every byte but the last), then the payload.
    """
    if not head.startswith(ROMFS_MAGIC):
        return None
    value = 0
    for end, byte in enumerate(head[len(ROMFS_MAGIC):], len(ROMFS_MAGIC) + 1):
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return end + value
    return None


def romfs_expected(files, manifest):
    """{"size", "sha256"} of the ROMFS image the build on the logger's filesystem was made with, or None.

    The manifest's "romfs" entry, else the romfs.sha256 check file ("SIZE SHA256") that main.py checks the
    partition against at boot.
    """
    meta = (manifest or {}).get("romfs")
    if isinstance(meta, dict) and isinstance(meta.get("size"), int) and meta.get("sha256"):
        return {"size": meta["size"], "sha256": meta["sha256"]}
    try:
        size, digest = files[ROMFS_CHECK].decode("ascii").split()
        return {"size": int(size), "sha256": digest}
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def read_romfs(conn, board, expected):
    """What is in the board's romfs partition: state, size, sha256 and whether it is the image expected.

    Reads only the image: its length as the build recorded it, else as the ROMFS header gives it.
    States: "present" (a ROMFS header whose image fits the partition), "erased" (all 0xFF), "corrupt" (no
    ROMFS header, or one giving more bytes than the partition holds), "absent" (the board has no romfs
    partition).
    """
    part = board["romfs"]
    if part is None:
        return {"state": "absent", "why": "board %s has no romfs partition" % board["name"],
                "expected": expected, "matches": None if expected is None else False}
    offset, size = part["offset"], part["size"]
    if expected is not None and 0 < expected["size"] <= size:
        data = bytes(conn.esp.read_flash(offset, expected["size"]))
    else:
        data = bytes(conn.esp.read_flash(offset, min(ROMFS_PROBE, size)))
        length = romfs_length(data)
        if length is not None and len(data) < length <= size:
            data = bytes(conn.esp.read_flash(offset, length))
    length = romfs_length(data[:ROMFS_PROBE])
    report = {"offset": offset, "partition_size": size, "image_size": length, "size": len(data),
              "sha256": sha256_hex(data), "expected": expected, "why": None}
    if data.count(0xFF) == len(data):
        report.update(state="erased", why="the first %d bytes read back as 0xFF" % len(data))
    elif length is None:
        report.update(state="corrupt", why="no ROMFS header (starts %s)" % data[:4].hex())
    elif length > size:
        report.update(state="corrupt", why="its header gives %d bytes, more than the %d-byte partition"
                      % (length, size))
    else:
        report["state"] = "present"
    report["matches"] = None if expected is None else (
        report["state"] == "present" and len(data) == expected["size"] and report["sha256"] == expected["sha256"])
    return report


def format_romfs(rom):
    """One line about the romfs partition for `emlog info`."""
    if rom["state"] == "absent":
        text = "none (%s)" % rom["why"]
    elif rom["state"] == "present":
        text = "%d bytes at %#x, sha256 %s" % (rom["size"], rom["offset"], rom["sha256"])
    else:
        text = "%s at %#x (%s)" % (rom["state"], rom["offset"], rom["why"])
    if rom["matches"]:
        return text + "; matches the build"
    if rom["matches"] is False:
        return text + "; does NOT match the build: reflash with emlog flash"
    return text + "; no build record on the filesystem to compare it with"


def _describe_files(report, files):
    manifest = None
    if MANIFEST_NAME in files:
        try:
            manifest = json.loads(files[MANIFEST_NAME].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            report["manifest_error"] = "manifest.json is not valid JSON"
    report["manifest"] = manifest
    if CONFIG_NAME in files:
        try:
            report["config"] = summarize_config(json.loads(files[CONFIG_NAME].decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            report["config"] = {"error": "config.json is not valid JSON"}
    listed = (manifest or {}).get("files") or {}
    check = {"ok": [], "modified": [], "missing": [], "added": []}
    for path in sorted(listed):
        if path not in files:
            check["missing"].append(path)
        elif sha256_hex(files[path]) != listed[path].get("sha256"):
            check["modified"].append(path)
        else:
            check["ok"].append(path)
    # Files the firmware created at run time (logs, the record store) are expected, not errors.
    check["added"] = sorted(p for p in files if p not in listed and p != MANIFEST_NAME)
    report["files"] = {k: v for k, v in check.items()}
    report["file_sizes"] = {p: len(d) for p, d in sorted(files.items())}


def _is_secret(key):
    low = key.lower()
    return any(low == s or low.endswith("_" + s) or low.startswith(s + "_") for s in SECRET_KEYS) \
        or "password" in low or "secret" in low


def summarize_config(cfg):
    """A short, password-free view of a device config.json."""
    if not isinstance(cfg, dict):
        return {"error": "config.json is not a JSON object"}
    out = {"schema": cfg.get("schema")}
    site = cfg.get("site")
    if isinstance(site, dict):
        out["site"] = site.get("name")
    stations = cfg.get("stations")
    if isinstance(stations, list):
        out["stations"] = [{"name": s.get("name"), "mn": s.get("mn"), "st": s.get("st"),
                            "channels": len(s.get("channels") or [])}
                           for s in stations if isinstance(s, dict)]
    buses = cfg.get("buses")
    if isinstance(buses, list):
        out["buses"] = [{"name": b.get("name"), "uart": b.get("uart"), "baud": b.get("baud"),
                         "devices": [d.get("name") for d in (b.get("devices") or []) if isinstance(d, dict)]}
                        for b in buses if isinstance(b, dict)]
    centers = cfg.get("centers")
    if isinstance(centers, list):
        out["centers"] = [{"name": c.get("name"), "host": c.get("host"), "port": c.get("port"),
                           "version": c.get("version")} for c in centers if isinstance(c, dict)]
    other = {}
    for key, value in cfg.items():
        if key in out or key in ("site", "stations", "buses", "centers"):
            continue
        if _is_secret(key):
            other[key] = "***"
        elif isinstance(value, (list, dict)):
            other[key] = "%d %s" % (len(value), "items" if isinstance(value, list) else "keys")
        else:
            other[key] = value
    if other:
        out["other"] = other
    return out


def format_info(report):
    lines = []
    chip = report.get("chip") or {}
    lines.append("port:        %s" % report["port"])
    lines.append("chip:        %s, %s flash, MAC %s" % (chip.get("description"), chip.get("flash_size"),
                                                         chip.get("mac")))
    if report["filesystem"] is None:
        where = ", ".join("%s at %#x" % (s["board"], s["offset"]) for s in report.get("searched", []))
        lines.append("filesystem:  none found (looked for littlefs at %s): erased, or not flashed by emlog"
                     % (where or "no board for this chip"))
        if report.get("romfs"):
            lines.append("romfs:       " + format_romfs(report["romfs"]))
        return "\n".join(lines)
    fs = report["filesystem"]
    lines.append("board:       %s (filesystem %d KiB at %#x, %d of %d blocks used, littlefs %s)" % (
        report["board"], fs["size"] // 1024, fs["offset"], fs["used_blocks"], fs["block_count"],
        fs["disk_version"]))
    m = report.get("manifest")
    if m:
        mp = m.get("micropython") or {}
        lines.append("build:       emlog %s for %s, MicroPython %s (.mpy %s), %d files" % (
            m.get("emlog_version"), (m.get("board") or {}).get("name"), mp.get("version"), mp.get("mpy"),
            len(m.get("files") or {})))
        lines.append("config:      sha256 %s" % ((m.get("config") or {}).get("sha256")))
    else:
        lines.append("build:       no manifest.json (not an emlog build, or damaged)")
    cfg = report.get("config") or {}
    if cfg.get("site"):
        lines.append("site:        %s" % cfg["site"])
    for s in cfg.get("stations", []):
        lines.append("station:     %s MN %s ST %s, %d channels"
                     % (s["name"], s["mn"], s["st"], s["channels"]))
    for b in cfg.get("buses", []):
        devices = ", ".join(str(d) for d in b["devices"]) or "no devices"
        lines.append("bus:         %s (UART%s, %s baud): %s" % (b["name"], b["uart"], b["baud"], devices))
    for c in cfg.get("centers", []):
        lines.append("center:      %s %s:%s HJ 212-%s" % (c["name"], c["host"], c["port"], c["version"]))
    files = report.get("files") or {}
    if m:
        state = "all %d files match the manifest" % len(files.get("ok", []))
        bad = [("modified", files.get("modified")), ("missing", files.get("missing"))]
        problems = ["%s: %s" % (k, ", ".join(v)) for k, v in bad if v]
        if problems:
            state = "MISMATCH: " + "; ".join(problems)
        lines.append("files:       %s" % state)
    if files.get("added"):
        lines.append("created on device: %s" % ", ".join(files["added"]))
    if report.get("romfs"):
        lines.append("romfs:       " + format_romfs(report["romfs"]))
    if report.get("saved_image"):
        saved = report["saved_image"]
        lines.append("saved:       %s (%d bytes)" % (saved["file"], saved["size"]))
    return "\n".join(lines)
