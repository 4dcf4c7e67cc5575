"""What the ROMFS saves: the heap it costs to import the app in place versus from .mpy files (prints JSON).

    python bench/bench_romfs.py

Builds the app as `emlog build` does (host_tools.romfs), then, on the MicroPython unix port, imports every
device module once from the ROMFS image mounted with vfs.VfsRom and once from the same .mpy files in a
directory (as they would sit on a LittleFS partition), and reports the live heap each costs after
collection, with the qstrs interned. Heap figures are deterministic for a given firmware: no repeats.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools import romfs  # noqa: E402
from host_tools.micropython import micropython_executable  # noqa: E402

_IMPORT = r"""
import sys, gc, vfs, json, micropython
where, names = sys.argv[1], open(sys.argv[2]).read().split()
if where.endswith(".img"):
    rom = open(where, "rb").read()
    vfs.mount(vfs.VfsRom(rom), "/rom")
    where = "/rom"
sys.path[:] = [where, ".frozen"]
gc.collect()
base = gc.mem_alloc()
for name in names:
    __import__(name)
gc.collect()
print(json.dumps({"import_bytes": gc.mem_alloc() - base}))
"""


def _measure(where, modules_file, script):
    proc = subprocess.run([micropython_executable(), "-X", "heapsize=4M", str(script), str(where),
                           str(modules_file)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit("micropython failed: %s" % (proc.stderr or proc.stdout)[-1000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])["import_bytes"]


def main():
    rom_files, _ = romfs.split_files(romfs.compile_app("6.3"))
    image = romfs.pack(rom_files)
    # the config validator runs once at boot and is unloaded; the rest stays imported while the app runs
    modules = [m for m in romfs.modules_of(rom_files) if m not in ("app.config", "app.rules.check")]
    device = [m for m in modules
              if not m.endswith((".host", ".slave", ".esp32")) and m != "protocols.modbus.values"]
    with tempfile.TemporaryDirectory(prefix="emlog-bench-romfs-") as tmp:
        tmp = Path(tmp)
        for path, data in rom_files.items():
            (tmp / "files" / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "files" / path).write_bytes(data)
        (tmp / "romfs.img").write_bytes(image)
        (tmp / "modules.txt").write_text("\n".join(device))
        (tmp / "import.py").write_text(_IMPORT)
        from_rom = _measure(tmp / "romfs.img", tmp / "modules.txt", tmp / "import.py")
        from_files = _measure(tmp / "files", tmp / "modules.txt", tmp / "import.py")
    print(json.dumps({
        "romfs_image_bytes": len(image),
        "romfs_files": len(rom_files),
        "modules_imported": len(device),
        "import_bytes_romfs_64bit": from_rom,
        "import_bytes_files_64bit": from_files,
        "ratio_romfs_to_files": round(from_rom / from_files, 3),
        "note": "every device module the running app may import (validator and host-only modules left out), "
                "MicroPython unix port (64-bit), live heap after gc.collect(), qstrs included",
    }, indent=1))


if __name__ == "__main__":
    main()
