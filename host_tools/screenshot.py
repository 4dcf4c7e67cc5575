"""Renders an HTML file with headless Chromium to a PNG (the README's report screenshot, the CI check).

    python -m host_tools.screenshot OUT/report.html docs/report.png [--size 1280,2000]
    screenshot(html_path, png_path, size=(1280, 2000), timeout=120) -> Path
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools.errors import UserError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_executable():
    """Path of a Chromium binary (EMLOG_CHROMIUM overrides), or None."""
    env = os.environ.get("EMLOG_CHROMIUM")
    if env:
        return env if os.path.exists(env) else shutil.which(env)
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    for name in CANDIDATES:
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def chromium_command(exe, html_path, png_path, profile_dir, size=(1280, 2000)):
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", "--user-data-dir=%s" % profile_dir, "--screenshot=%s" % png_path,
            "--window-size=%d,%d" % tuple(size), Path(html_path).resolve().as_uri()]


def screenshot(html_path, png_path, size=(1280, 2000), timeout=120):
    html_path = Path(html_path)
    png_path = Path(png_path).resolve()
    if not html_path.exists():
        raise UserError("%s: no such file; run emlog simulate (or emlog report DIR) first" % html_path)
    exe = chromium_executable()
    if exe is None:
        raise UserError("no chromium found; install it (Debian: apt-get install chromium) or set EMLOG_CHROMIUM")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if png_path.exists():
        png_path.unlink()
    with tempfile.TemporaryDirectory(prefix="emlog-chromium-") as profile:
        cmd = chromium_command(exe, html_path, png_path, profile, size)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env=dict(os.environ, HOME=profile))
        except subprocess.TimeoutExpired:
            raise UserError("chromium did not finish within %d s: %s" % (timeout, " ".join(cmd))) from None
    if not png_path.exists() or png_path.stat().st_size == 0:
        raise UserError("chromium wrote no screenshot (exit %s): %s" % (
            proc.returncode, (proc.stderr or proc.stdout)[-2000:]))
    return png_path


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.screenshot", description=__doc__.splitlines()[0])
    ap.add_argument("html")
    ap.add_argument("png")
    ap.add_argument("--size", default="1280,2000", help="window WIDTH,HEIGHT (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        try:
            size = tuple(int(x) for x in args.size.split(","))
        except ValueError:
            raise UserError("--size %r: use WIDTH,HEIGHT such as 1280,2000" % args.size) from None
        print(screenshot(args.html, args.png, size))
    except UserError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
