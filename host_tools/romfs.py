"""The app's ROMFS image: the device part of firmware/ and protocols/ as .mpy, imported in place on the logger.

    image = pack(files)                    # {device path: bytes} -> ROMFS bytes (mpremote's own writer)
    report = verify(image, modules)        # mounts it under MicroPython's vfs.VfsRom, imports every module

On the ESP32 (MicroPython >= 1.25 with MICROPY_VFS_ROM) the romfs partition is memory-mapped and mounted
at /rom, so bytecode imported from it is executed where it lies and costs no heap. boot.py and main.py stay
source files on the LittleFS partition: they must run even when the ROMFS partition is missing or damaged
(then main.py boots into safe mode), and `ROMFS_CHECK` there holds the image's size and sha256 so main.py
can tell a damaged image from a good one before importing anything from it.
"""

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

from host_tools.errors import UserError
from host_tools.micropython import micropython_executable

ROMFS_NAME = "romfs.img"
MOUNT = "/rom/"  # where the logger mounts it (MicroPython's esp32 port does, and firmware/main.py)
ROMFS_CHECK = "romfs.sha256"  # on the LittleFS image: "<size> <sha256 hex>"
ROMFS_MIN_MICROPYTHON = (1, 25)  # vfs.VfsRom
ON_FILESYSTEM = ("boot.py", "main.py")  # not in the ROMFS: they mount it


def compile_app(mpy_version, progress=None):
    """The device part of firmware/ and protocols/ as the logger lays it out: {device path: bytes}."""
    from host_tools import REPO_ROOT
    from host_tools.image import compile_tree_to_mpy

    return compile_tree_to_mpy([(REPO_ROOT / "firmware", ""), (REPO_ROOT / "protocols", "protocols")],
                               mpy_version, progress=progress, source_root=MOUNT)


def split_files(app_files):
    """({path: bytes} for the ROMFS image, {path: bytes} left on the LittleFS filesystem)."""
    rom = {p: d for p, d in app_files.items() if p not in ON_FILESYSTEM}
    return rom, {p: d for p, d in app_files.items() if p in ON_FILESYSTEM}


def pack(files):
    """ROMFS image bytes for {device path: bytes}, directories sorted, with mpremote's VfsRomWriter."""
    from mpremote.romfs import VfsRomWriter

    tree = {}
    for path, data in files.items():
        node = tree
        *dirs, name = path.strip("/").split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = bytes(data)
    writer = VfsRomWriter()

    def emit(node):
        for name in sorted(node):
            if isinstance(node[name], dict):
                writer.opendir(name)
                emit(node[name])
                writer.closedir()
            else:
                writer.mkfile(name, node[name])

    emit(tree)
    return writer.finalise()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def check_line(image):
    """The ROMFS_CHECK file's text for an image."""
    return "%d %s\n" % (len(image), sha256_hex(image))


def modules_of(files):
    """Dotted module names of the .mpy files in {device path: bytes} (packages by their __init__)."""
    names = []
    for path in sorted(files):
        if path.endswith(".mpy"):
            name = path[:-4].replace("/", ".")
            names.append(name[: -len(".__init__")] if name.endswith(".__init__") else name)
    return names


def check_fits(image, partition_size, board_name):
    if len(image) > partition_size:
        raise UserError("the ROMFS image is %d bytes but board %s's romfs partition holds %d (%d too many); "
                        "enlarge the romfs partition in the board file (boards/README.md)"
                        % (len(image), board_name, partition_size, len(image) - partition_size))


# Runs under the MicroPython unix port: mounts the image as the device does, imports every module from
# it and reports the heap each import cost (bytecode in ROMFS should cost only the module objects).
_VERIFY = r"""
import sys, gc, json, vfs
with open(sys.argv[1], "rb") as f:
    rom = f.read()
with open(sys.argv[2]) as f:
    names = f.read().split()
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path[:] = ["/rom", ".frozen"]  # the app from the image; asyncio and friends are frozen in the port
gc.collect()
base = gc.mem_alloc()
for name in names:
    try:
        __import__(name)
        mod = sys.modules[name]
        where = getattr(mod, "__file__", "")
        print(json.dumps({"module": name, "file": where}))
    except Exception as e:
        print(json.dumps({"module": name, "error": "%s: %s" % (type(e).__name__, e)}))
gc.collect()
print(json.dumps({"done": True, "import_bytes": gc.mem_alloc() - base}))
"""


def verify(image, modules, heap="1M"):
    """Imports every module from the image under MicroPython's vfs.VfsRom; returns {"import_bytes": N}.

    Raises UserError naming each module that does not import, or that was imported from elsewhere.
    """
    with tempfile.TemporaryDirectory(prefix="emlog-romfs-") as tmp:
        img = Path(tmp) / ROMFS_NAME
        script = Path(tmp) / "verify_romfs.py"
        names = Path(tmp) / "modules.txt"  # a file: this unix port crashes on a command line argument > 255
        img.write_bytes(image)
        script.write_text(_VERIFY, encoding="utf-8")
        names.write_text("\n".join(modules))
        proc = subprocess.run([micropython_executable(), "-X", "heapsize=%s" % heap, str(script), str(img),
                               str(names)], capture_output=True, text=True, timeout=120, cwd=tmp)
    problems, done = [], None
    for line in proc.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("done"):
            done = rec
        elif "error" in rec:
            problems.append("%s: %s" % (rec["module"], rec["error"]))
        elif not rec["file"].startswith("/rom/"):
            problems.append("%s: imported from %s, not from the ROMFS image" % (rec["module"], rec["file"]))
    if done is None:
        raise UserError("the ROMFS image could not be checked under MicroPython (exit %d): %s"
                        % (proc.returncode, (proc.stderr or proc.stdout).strip()[-500:]))
    if problems:
        raise UserError("the ROMFS image failed its import check under MicroPython's vfs.VfsRom:\n  "
                        + "\n  ".join(problems))
    return {"import_bytes": done["import_bytes"], "modules": len(modules)}


def load_romfs(build_dir, manifest):
    """romfs.img of a build directory, checked against the manifest's "romfs" entry."""
    meta = manifest.get("romfs")
    path = Path(build_dir) / ROMFS_NAME
    hint = "rebuild it with `emlog build SITE.toml --board BOARD --out %s`" % build_dir
    if not meta:
        raise UserError("%s was built without a ROMFS image (an older emlog); %s" % (build_dir, hint))
    if not path.is_file():
        raise UserError("%s has no %s; %s" % (build_dir, ROMFS_NAME, hint))
    image = path.read_bytes()
    if len(image) != meta.get("size") or sha256_hex(image) != meta.get("sha256"):
        raise UserError("%s does not match its manifest (damaged or replaced after the build); %s" % (path, hint))
    return image
