"""report.html rendered by headless Chromium (the README screenshot's tooling), and the report of the
default `emlog simulate` run checked against its summary.json.

Without chromium the rendering tests skip locally and FAIL in CI (env CI set): .ci/run installs Debian's
chromium, so a missing browser there is a broken CI image, not a reason to pass.
"""

import json
import os
import subprocess
import sys

import pytest
from test_report import REFERENCE_POLLUTANTS, Page, _cells_text, make_run

from host_tools import REPO_ROOT
from host_tools.errors import UserError
from host_tools.report import write_report
from host_tools.screenshot import chromium_executable, screenshot

SIZE = (1280, 2000)


def need_chromium():
    if chromium_executable() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is missing: .ci/run must install Debian's chromium")
        pytest.skip("chromium not installed (Debian: apt-get install chromium); CI installs it in .ci/run")


def check_png(path):
    from matplotlib.image import imread

    assert path.stat().st_size > 0
    img = imread(str(path))
    assert img.shape[0] == SIZE[1] and img.shape[1] == SIZE[0], img.shape
    rgb = img[:, :, :3]
    assert (rgb != rgb[0, 0]).any(), "the screenshot is a single colour"
    # not just a heading on a white page: the plots cover a good part of it
    non_white = (rgb.min(axis=2) < 0.9).mean()
    assert non_white > 0.05, non_white
    return img


def test_chromium_renders_the_report(tmp_path):
    need_chromium()
    make_run(tmp_path, limits={"boiler": {"a21026": 100}})
    png = screenshot(write_report(tmp_path), tmp_path / "report.png", SIZE)
    img = check_png(png)
    # the SO2 exceedance shading and limit line are drawn in red-ish colours somewhere on the page
    rgb = img[:, :, :3]
    reddish = (rgb[:, :, 0] > 0.75) & (rgb[:, :, 1] < 0.45) & (rgb[:, :, 2] < 0.45)
    assert reddish.any()


def test_screenshot_of_a_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        screenshot(tmp_path / "nope.html", tmp_path / "x.png")


def test_default_simulate_run_report(tmp_path):
    """The acceptance check: the default run (reference site, default duration and scale) writes a report
    with a plot per reference pollutant whose numbers agree with summary.json; Chromium renders it."""
    if not (REPO_ROOT / "firmware" / "main.py").exists():
        pytest.skip("firmware/main.py is missing")
    out = tmp_path / "sim"
    proc = subprocess.run([sys.executable, "-c", "import sys; from host_tools.cli import main; sys.exit(main())",
                           "simulate", "--out", str(out)], cwd=str(REPO_ROOT), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out / "report.html"
    assert "report: %s" % report in proc.stdout
    assert "\x1b[" not in proc.stdout  # not a terminal: plain lines
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    text = report.read_text(encoding="utf-8")
    page = Page(text)
    chans = {(f["data-station"], f["data-code"]) for f in page.figures if f.get("class") == "channel"}
    assert chans == REFERENCE_POLLUTANTS
    for key in ("records_received", "peak_heap_bytes", "firmware_cpu_s", "lag", "frames", "samples"):
        assert page.data_json[key] == summary[key], key
    received = (out / "received.jsonl").read_text(encoding="utf-8").splitlines()
    assert page.data_json["frames_in_file"] == len(received) == summary["records_received"]
    cells = _cells_text(text)
    for center, per in summary["frames"].items():
        for cn, n in per.items():
            assert cells[(("data-center", center), ("data-cn", cn))] == str(n)
    # minute records per channel: counted here from received.jsonl, once per (station, DataTime)
    minutes = {}
    for line in received:
        r = json.loads(line)
        if r.get("kind") == "min" and not r.get("error"):
            for code in r.get("values", {}):
                minutes.setdefault((r["station"], code), set()).add(r["t"])
    for f in page.figures:
        if f.get("class") == "channel":
            assert int(f["data-minutes"]) == len(minutes.get((f["data-station"], f["data-code"]), ()))
    need_chromium()
    check_png(screenshot(report, tmp_path / "report.png", SIZE))
