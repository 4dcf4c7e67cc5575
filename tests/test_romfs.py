"""host_tools.romfs: packing with mpremote's writer, and the import check under MicroPython's vfs.VfsRom."""

import pytest

from host_tools import romfs
from host_tools.errors import UserError
from host_tools.image import compile_tree_to_mpy


def _compiled(tmp_path, sources):
    for rel, text in sources.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_text(text)
    return compile_tree_to_mpy([(tmp_path / "src", "")], "6.3")


def test_every_module_imports_from_the_image(tmp_path):
    files = _compiled(tmp_path, {"pkg/__init__.py": "X = 1\n", "pkg/leaf.py": "from pkg import X\nY = X + 1\n",
                                 "main.py": "print('stays on the filesystem')\n"})
    rom, on_fs = romfs.split_files(files)
    assert set(on_fs) == {"main.py"} and set(rom) == {"pkg/__init__.mpy", "pkg/leaf.mpy"}
    assert romfs.modules_of(rom) == ["pkg", "pkg.leaf"]
    image = romfs.pack(rom)
    assert image[:3] == b"\xd2\xcd\x31"
    report = romfs.verify(image, romfs.modules_of(rom))
    assert report["modules"] == 2 and report["import_bytes"] > 0


def test_a_module_that_does_not_import_is_named(tmp_path):
    files = _compiled(tmp_path, {"good.py": "A = 1\n", "bad.py": "import no_such_module\n"})
    rom, _ = romfs.split_files(files)
    with pytest.raises(UserError) as err:
        romfs.verify(romfs.pack(rom), romfs.modules_of(rom))
    assert "bad: ImportError" in str(err.value) and "good" not in str(err.value).split("VfsRom:")[1]


def test_a_module_missing_from_the_image_is_named(tmp_path):
    rom, _ = romfs.split_files(_compiled(tmp_path, {"good.py": "A = 1\n"}))
    with pytest.raises(UserError, match="absent: ImportError"):
        romfs.verify(romfs.pack(rom), ["good", "absent"])


def test_load_romfs_checks_the_manifest(tmp_path):
    image = romfs.pack({"a.mpy": b"M\x06\x00\x1f"})
    (tmp_path / romfs.ROMFS_NAME).write_bytes(image)
    manifest = {"romfs": {"size": len(image), "sha256": romfs.sha256_hex(image)}}
    assert romfs.load_romfs(tmp_path, manifest) == image
    (tmp_path / romfs.ROMFS_NAME).write_bytes(image[:-1] + b"\x00")
    with pytest.raises(UserError, match="does not match its manifest"):
        romfs.load_romfs(tmp_path, manifest)
    with pytest.raises(UserError, match="without a ROMFS image"):
        romfs.load_romfs(tmp_path, {})
