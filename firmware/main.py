# Entry point, a source file on the LittleFS root beside boot.py and config.json. The app itself (app/,
# hal/, protocols/) is bytecode in the ROMFS partition, mounted at /rom and imported in place, so it costs
# no heap. The image is checked against romfs.sha256 (written by `emlog build`) before anything is imported
# from it: a missing, erased or damaged partition gives safe mode with the reason, never a boot loop.
# ESP32: MicroPython runs boot.py, then this file. Unix/HIL: `micropython main.py` with EMLOG_FS (the
# filesystem root) and EMLOG_ROMFS (the partition, a file); boot.py is not run by the port, so the boot
# counter is counted here.
import sys

ESP32 = sys.platform == "esp32"


def _fs(name):
    if ESP32:
        return name
    import os

    return (os.getenv("EMLOG_FS") or ".").rstrip("/") + "/" + name  # pyright: ignore[reportAttributeAccessIssue] (unix port)


def _partition(size):
    """The ROMFS partition's bytes (the first `size` of them where it is a file)."""
    import vfs

    if ESP32:
        if not hasattr(vfs, "rom_ioctl"):
            return None
        return memoryview(vfs.rom_ioctl(2, 0))
    import os

    path = os.getenv("EMLOG_ROMFS")  # pyright: ignore[reportAttributeAccessIssue] (unix port only)
    if not path:
        return None
    buf = bytearray(size)  # first and in one piece, before anything else takes the heap
    with open(path, "rb") as f:
        n = f.readinto(buf)
    return memoryview(buf)[:n]


def mount_romfs():
    """Mounts the app image at /rom and puts it first on sys.path; returns None, or why it cannot."""
    try:
        with open(_fs("romfs.sha256")) as f:
            size, want = f.read().split()
        size = int(size)
    except (OSError, ValueError):
        return "romfs.sha256 is missing from the filesystem: flash a build made by `emlog build`"
    try:
        rom = _partition(size)
    except OSError as exc:
        rom = None
        why = exc
    else:
        why = "the firmware has no ROMFS support (vfs.rom_ioctl); flash the MicroPython built from boards/micropython"
    if rom is None:
        return "no ROMFS partition: %s" % why
    if len(rom) < size:
        return "ROMFS partition holds %d bytes, the image needs %d: reflash with `emlog flash`" % (len(rom), size)
    if rom[0] == 0xFF and rom[1] == 0xFF:
        return "ROMFS partition is erased: reflash with `emlog flash`"
    import binascii
    import hashlib

    h = hashlib.sha256()
    h.update(rom[:size])
    got = binascii.hexlify(h.digest()).decode()
    if got != want:
        return "ROMFS image is damaged (sha256 %s, build says %s): reflash with `emlog flash`" % (got[:12], want[:12])
    import vfs

    try:
        vfs.mount(vfs.VfsRom(rom[:size]), "/rom")  # pyright: ignore[reportAttributeAccessIssue] (>= 1.25, not in the stubs)
    except OSError as exc:
        if not ESP32 or exc.args[0] != 1:  # EPERM: the ESP32's _boot.py mounted it already
            return "ROMFS image does not mount (%s): reflash with `emlog flash`" % exc
    if "/rom" not in sys.path:
        sys.path.insert(0, "/rom")
    return None


def safe_console(reason):
    """Safe mode without the app: say why on the console. The ESP32 falls through to the REPL; the unix
    port answers each console line until `stop` or end of input."""
    print("SAFE MODE: " + reason)
    print("ERROR main: safe mode: " + reason)
    if ESP32:
        return
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "stop":
            return
        print("SAFE MODE: " + reason)


_why = mount_romfs()
if not ESP32:
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    if _here not in sys.path:
        sys.path.append(_here)  # boot.py, beside this file (the LittleFS root on the device)
import boot  # noqa: E402 (after the ROMFS is mounted and sys.path set)

if ESP32:
    _state = boot.read("")  # boot.py has counted this boot already
else:
    _state = boot.run(_fs("")[:-1])
if _why:
    safe_console(_why)
else:
    try:
        from app import main as _main

        _main.main(_state)
    except Exception as exc:  # the app's own safe mode could not take it: still answer, never crash
        _main = None
        safe_console("the app stopped (%s: %s)" % (type(exc).__name__, exc))
