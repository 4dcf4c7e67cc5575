"""`emlog build SITE --board B --out DIR`: the logger's two images, ready for `emlog flash`.

site file -> validated device config; firmware/ and protocols/ -> .mpy for the board's MicroPython ->
romfs.img (the app, imported in place from the board's romfs partition; every module imported from it
under MicroPython's vfs.VfsRom before the build says done) and fs.img (a LittleFS image sized to the
board's filesystem partition: boot.py, main.py, config.json, config.sha256 (the validated config's seal:
the logger then skips its own validator), romfs.sha256 and manifest.json with versions and the sha256 of
every file and of romfs.img), mounted under MicroPython's own VfsLfs2 and checked.
"""

import sys
import time
from pathlib import Path

from host_tools import romfs
from host_tools.boards import load_board, micropython_entry, romfs_partition
from host_tools.errors import UserError
from host_tools.image import (
    build_filesystem,
    expected_hashes,
    verify_image_with_micropython,
    write_build_output,
)
from host_tools.siteconfig import load_site, locator


def register(sub):
    p = sub.add_parser("build", help="compile the firmware and a site file into a filesystem image")
    p.add_argument("site", help="site file (TOML, or a compiled device config .json)")
    p.add_argument("--board", required=True, help="board name from boards/ (or a board .json file)")
    p.add_argument("--out", required=True, help="output directory (gets fs.img, romfs.img and manifest.json)")
    p.add_argument("--micropython", help="MicroPython version on the logger (default: the board's)")
    p.set_defaults(func=cmd_build)


def check_pins(config, board, where=None):
    """Every bus of the site must be a RS-485 port the board has, with the board's pins; every rule relay
    must be a relay output of the board. `where(config_path)` names the site file and line."""
    where = where or (lambda config_path: "site")
    ports = {port["uart"]: port for port in board.get("rs485", [])}
    problems = []
    for i, bus in enumerate(config["buses"]):
        port = ports.get(bus["uart"])
        if port is None:
            p = "buses[%d].uart" % i
            problems.append("%s: %s: bus %s is on UART%s, but board %s has RS-485 ports on UART %s only; "
                            "set uart to one of them" % (where(p), p, bus["name"], bus["uart"], board["name"],
                                                         ", ".join(str(u) for u in sorted(ports))))
            continue
        for pin in ("tx", "rx", "de"):
            if bus[pin] != port[pin]:
                p = "buses[%d].%s" % (i, pin)
                problems.append("%s: %s: GPIO%s, but board %s wires UART%s %s to GPIO%s; set %s = %s"
                                % (where(p), p, bus[pin], board["name"], bus["uart"], pin.upper(), port[pin],
                                   pin, port[pin]))
    relays = [r["name"] for r in board.get("relays", [])]
    for i, rule in enumerate((config.get("rules") or {}).get("list") or []):
        relay = rule.get("relay")
        if relay is not None and relay not in relays:
            p = "rules.list[%d].relay" % i
            problems.append("%s: %s: rule %s drives relay %r, which board %s does not have; use one of %s"
                            % (where(p), p, rule.get("name"), relay, board["name"], ", ".join(relays) or "(none)"))
    if problems:
        raise UserError("the site does not fit board %s (boards/%s.json):\n  %s"
                        % (board["name"], board["name"], "\n  ".join(problems)))


class _Progress:
    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = None

    def __call__(self, stage, done, total):
        line = "%-8s %3d%% (%d/%d)" % (stage, 100 * done // max(total, 1), done, total)
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
        elif done >= total and stage != self.last:
            self.stream.write(line + "\n")
            self.last = stage
        self.stream.flush()


def check_micropython(entry, board):
    version = tuple(int(x) for x in entry["version"].split(".")[:2])
    if version < romfs.ROMFS_MIN_MICROPYTHON:
        raise UserError("MicroPython %s cannot import from a ROMFS partition (vfs.VfsRom needs >= %d.%d); "
                        "build for %s's default (--micropython %s) or later"
                        % (entry["version"], *romfs.ROMFS_MIN_MICROPYTHON, board["name"],
                           board["micropython"]["default"]))


def build(site_path, board_name, out_dir, micropython_version=None, progress=None):
    """Builds and verifies; returns (fs.img bytes, manifest, romfs.img bytes)."""
    progress = progress or (lambda *a: None)
    config = load_site(site_path)
    board = load_board(board_name)
    check_pins(config, board, locator(site_path))
    entry = micropython_entry(board, micropython_version)
    check_micropython(entry, board)
    room = romfs_partition(board)[1]
    app = romfs.compile_app(entry["mpy"], progress=progress)
    rom_files, fs_files = romfs.split_files(app)
    rom = romfs.pack(rom_files)
    romfs.check_fits(rom, room, board["name"])
    progress("romfs", 0, 1)
    checked = romfs.verify(rom, romfs.modules_of(rom_files))
    progress("romfs", 1, 1)
    fs_files[romfs.ROMFS_CHECK] = romfs.check_line(rom).encode()
    files = {p: {"size": len(d), "sha256": romfs.sha256_hex(d)} for p, d in sorted(rom_files.items())}
    extra = {"romfs": {"file": romfs.ROMFS_NAME, "size": len(rom), "sha256": romfs.sha256_hex(rom),
                       "partition_size": room, "modules": checked["modules"], "files": files}}
    image, manifest = build_filesystem(fs_files, config, board, progress=progress,
                                       micropython_version=entry["version"], extra_manifest=extra,
                                       sealed=True)
    progress("verify", 0, 1)
    verify_image_with_micropython(image, expected_hashes(manifest))
    progress("verify", 1, 1)
    write_build_output(out_dir, image, manifest)
    (Path(out_dir) / romfs.ROMFS_NAME).write_bytes(rom)
    return image, manifest, rom


def cmd_build(args):
    started = time.monotonic()
    image, manifest, rom = build(args.site, args.board, args.out, args.micropython, _Progress())
    meta = manifest["romfs"]
    print("built %s/romfs.img for %s: %d files (%d modules imported under MicroPython vfs.VfsRom) in %d bytes "
          "of its %d-byte romfs partition"
          % (args.out, args.board, len(meta["files"]), meta["modules"], len(rom), meta["partition_size"]))
    print("built %s/fs.img: %d files, %d bytes of files in a %d-byte LittleFS image, "
          "verified under MicroPython VfsLfs2 (%.1f s)"
          % (args.out, len(manifest["files"]), sum(f["size"] for f in manifest["files"].values()),
             len(image), time.monotonic() - started))
    print("next: emlog flash %s --port PORT --board %s" % (args.out, args.board))
    return 0
