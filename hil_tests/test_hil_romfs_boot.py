"""The logger boots its app from the ROMFS image, and a damaged image gives safe mode, never a boot loop.

The firmware runner lays the logger out as `emlog build` does (main.py and boot.py as source beside
romfs.sha256 on the filesystem, the app in romfs.img); main.py checks the image before importing from it.
"""

import shutil
import time

import pytest

from host_tools.emulators.firmware_proc import FirmwareProcess, compiled_firmware
from host_tools.emulators.scenario import SimClock


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    main = compiled_firmware()
    yield main.parent
    shutil.rmtree(main.parent, ignore_errors=True)


def _copy_build(build_dir, dest):
    shutil.copytree(build_dir, dest)
    return dest / "main.py"


def _boot(tmp_path, main):
    # No config.json: a good image boots into the app's own safe mode ("invalid config"); a bad one never
    # reaches the app, so the two reasons tell where the boot stopped.
    clock = SimClock(time.time(), 1.0)
    fw = FirmwareProcess(tmp_path / "fs", {}, clock, main=main).start()
    fw.wait_for(lambda f: f.safe_mode() is not None, timeout=30)
    return fw


def test_good_image_reaches_the_app(tmp_path, build_dir):
    fw = _boot(tmp_path, _copy_build(build_dir, tmp_path / "build"))
    try:
        reason = fw.safe_mode()
        assert reason is not None and "config" in reason, fw.log_tail()
        assert "ROMFS" not in reason
    finally:
        fw.stop()


@pytest.mark.parametrize("damage, says", [
    ("flip", "ROMFS image is damaged"),
    ("erase", "ROMFS partition is erased"),
    ("truncate", "the image needs"),
    ("no-check", "romfs.sha256 is missing"),
])
def test_damaged_image_gives_safe_mode_that_answers(tmp_path, build_dir, damage, says):
    main = _copy_build(build_dir, tmp_path / "build")
    img = main.parent / "romfs.img"
    data = bytearray(img.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01  # one bit, in the middle of some module's bytecode
    elif damage == "erase":
        data[:] = b"\xff" * len(data)
    elif damage == "truncate":
        del data[len(data) // 3:]
    else:
        (main.parent / "romfs.sha256").unlink()
    img.write_bytes(bytes(data))
    assert damage == "no-check" or img.read_bytes() != (build_dir / "romfs.img").read_bytes()  # injected
    fw = _boot(tmp_path, main)
    try:
        reason = fw.safe_mode()
        assert reason is not None and says in reason, fw.log_tail()
        assert fw.alive(), "safe mode must keep the console up, not exit:\n" + fw.log_tail()
        seen = len(fw.log_lines())
        fw.send("status")
        assert fw.wait_for(lambda f: any(ln.startswith("SAFE MODE") for ln in f.log_lines()[seen:]), timeout=10), \
            fw.log_tail()
    finally:
        fw.stop()
    assert not any("Traceback" in ln for ln in fw.log_lines()), fw.log_tail()
