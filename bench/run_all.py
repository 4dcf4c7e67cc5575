"""Runs every bench/bench_*.py, one after another, and prints one JSON document of their figures.

    .venv/bin/python bench/run_all.py [--only NAME ...] [--quick] [--out FILE] [--timeout S]

Each benchmark prints one JSON object on stdout; this collects them as
`{"machine": {...}, "benches": {name: result}, "runner": {...}}` where name is the file name without
`bench_` and `.py`. A benchmark that fails or prints no JSON gets `{"error": ...}` and makes the exit
status 1; the others still run. Progress goes to stderr, so stdout is the document alone. Nothing here
judges a figure: see bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def discover(only=()):
    """bench name -> path, for bench/bench_*.py (filtered to `only` when given)."""
    found = {p.stem[len("bench_"):]: p for p in sorted(BENCH_DIR.glob("bench_*.py"))}
    unknown = [n for n in only if n not in found]
    if unknown:
        raise SystemExit("run_all: no bench named %s (have: %s)" % (", ".join(unknown), ", ".join(found)))
    return {n: p for n, p in found.items() if not only or n in only}


def default_python():
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _run_text(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return "unavailable (%s)" % exc
    return proc.stdout.strip() if proc.returncode == 0 else "unavailable (exit %d)" % proc.returncode


def _proc_field(path, key):
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info(python):
    """What the figures depend on; all of it read, nothing assumed."""
    bindir = os.path.dirname(python)
    micropython = shutil.which("micropython", path=bindir + os.pathsep + os.environ.get("PATH", ""))
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": affinity,
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "mem_total": _proc_field("/proc/meminfo", "MemTotal"),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": _run_text([python, "-c", "import sys; print(sys.version.split()[0])"]),
        "python_executable": python,
        "micropython": _run_text([micropython, "-c", "import sys; print(sys.version, sys.implementation)"])
        if micropython else "not found",
        # bench_heap32 runs the MicroPython webassembly port (bench/heap32, npm) under node for its 32-bit figure
        "node": _run_text(["node", "--version"]) if shutil.which("node") else "not found",
    }


def parse_json_output(text):
    """The JSON object a bench printed: the whole stdout, or failing that the last object in it."""
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
        decoder = json.JSONDecoder()
        starts = [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[i - 1] == "\n")]
        for start in reversed(starts):
            try:
                value, end = decoder.raw_decode(text, start)
            except ValueError:
                continue
            if text[end:].strip() == "":
                break
            value = None
    if not isinstance(value, dict):
        raise ValueError("no JSON object on stdout")
    return value


def _wants_quick(path):
    return "--quick" in path.read_text(encoding="utf-8")


def run_bench(name, path, python, timeout, quick):
    """Returns (result, wall seconds, ok)."""
    cmd = [python, str(path)]
    if quick and _wants_quick(path):
        cmd.append("--quick")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    print("run_all: %s ..." % " ".join([path.relative_to(REPO_ROOT).as_posix()] + cmd[2:]), file=sys.stderr,
          flush=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %d s" % timeout}, time.monotonic() - t0, False
    seconds = time.monotonic() - t0
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        return {"error": "exit %d" % proc.returncode, "stdout_tail": proc.stdout[-2000:],
                "stderr_tail": proc.stderr[-2000:]}, seconds, False
    try:
        return parse_json_output(proc.stdout), seconds, True
    except ValueError as exc:
        return {"error": str(exc), "stdout_tail": proc.stdout[-2000:]}, seconds, False


def _commit():
    head = _run_text(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    if head.startswith("unavailable"):
        return None
    dirty = _run_text(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"])
    return head + ("+dirty" if dirty and not dirty.startswith("unavailable") else "")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run just these (e.g. modbus)")
    ap.add_argument("--list", action="store_true", help="list the benches and exit")
    ap.add_argument("--quick", action="store_true", help="pass --quick to the benches that take it")
    ap.add_argument("--out", metavar="FILE", help="also write the document to FILE")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per bench (default 1800)")
    ap.add_argument("--python", default=default_python(), help="interpreter for the benches (default: .venv)")
    args = ap.parse_args(argv)
    benches = discover(args.only)
    if args.list:
        for name, path in benches.items():
            print("%s\t%s" % (name, path.relative_to(REPO_ROOT)))
        return 0
    doc = {
        "machine": machine_info(args.python),
        "benches": {},
        "runner": {
            "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "commit": _commit(),
            "quick": args.quick,
            "wall_seconds": {},
        },
    }
    failed = []
    for name, path in benches.items():
        result, seconds, ok = run_bench(name, path, args.python, args.timeout, args.quick)
        doc["benches"][name] = result
        doc["runner"]["wall_seconds"][name] = round(seconds, 1)
        if not ok:
            failed.append(name)
    text = json.dumps(doc, indent=2, sort_keys=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    if failed:
        print("run_all: failed: %s" % ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
