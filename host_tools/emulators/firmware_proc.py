"""Runs the real firmware under the MicroPython unix port with the HIL env contract.

    fw = FirmwareProcess(fs_dir, {1: bus1.path, 2: bus2.path}, clock, heap="64k",
                         centers={"national": ("127.0.0.1", port)})
    fw.start(config)                     # writes fs_dir/config.json, starts micropython firmware/main.py
    fw.wait_for(lambda f: f.stats is not None, timeout=20)
    fw.stop()

stdout is read on a thread: lines `STATS <json>` (periodic) and `COUNTERS <json>` (console reply) update
`stats` (latest) and `stats_history`; other
lines are kept in `lines` (the firmware logs "LEVEL module: text"). `wait_for` is woken by every line.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.micropython import micropython_executable

# Heap given to the firmware under the 64-bit unix port (pointers are 8 bytes; an ESP32 is 32-bit): the
# loaded bytecode alone is ~200 KB there, so 64 KiB cannot hold it. Measured (firmware/README.md "Memory"):
# reference site with both centers and rules on, one simulated hour: peak 342 KB after collection, so
# 512k leaves 33 % free (448k would leave 24 %). Override with EMLOG_HIL_HEAP to experiment.
HIL_HEAP = os.environ.get("EMLOG_HIL_HEAP", "512k")

STATS_PREFIXES = ("STATS ", "COUNTERS ")  # periodic lines, and the console `counters` reply



def _clock_ticks():
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def compiled_firmware():
    """Compiles firmware/ and protocols/ to .mpy as the device image lays them out; returns its main.py."""
    from host_tools.image import compile_tree_to_mpy

    out = Path(tempfile.mkdtemp(prefix="emlog-fw-"))
    files = compile_tree_to_mpy([(REPO_ROOT / "firmware", ""), (REPO_ROOT / "protocols", "protocols")], "6.3")
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return out / "main.py"


class FirmwareProcess:
    def __init__(self, fs_dir, uarts, clock, heap=HIL_HEAP, centers=None, extra_env=None, main=None, compiled=True):
        self.fs_dir = Path(fs_dir)
        self.uarts = {str(k): v for k, v in uarts.items()}
        self.clock = clock
        self.heap = heap
        self.centers = centers or {}
        self.extra_env = extra_env or {}
        # Like the logger, run the .mpy bytecode `emlog build` ships (compiling .py on the device costs heap).
        self.main = Path(main) if main else (compiled_firmware() if compiled else REPO_ROOT / "firmware" / "main.py")
        self._compiled_dir = self.main.parent if (compiled and not main) else None
        self.proc = None
        self.lines = []
        self.stats = None
        self.stats_history = []
        self.cpu_s = None
        self.returncode = None
        self._cond = threading.Condition()
        self._threads = []

    def env(self):
        env = dict(os.environ)
        env.update({
            "EMLOG_FS": str(self.fs_dir),
            "EMLOG_UARTS": json.dumps(self.uarts),
            "EMLOG_SIM_START": repr(self.clock.sim_start),
            "EMLOG_SIM_T0_NS": str(self.clock.t0_ns),
            "EMLOG_TIME_SCALE": repr(self.clock.scale),
            # DEBUG names every tick without a usable sample (Simulation.lost_samples): the reference needs them
            "EMLOG_LOG_LEVEL": "DEBUG",
        })
        if self.centers:
            env["EMLOG_CENTER_ADDR"] = json.dumps({k: list(v) for k, v in self.centers.items()})
        env.update(self.extra_env)
        return env

    def start(self, config=None):
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (self.fs_dir / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
        if not self.main.exists():
            raise FileNotFoundError("firmware entry point %s is missing" % self.main)
        cmd = [micropython_executable(), "-X", "heapsize=" + self.heap, str(self.main)]
        self.proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=self.env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
        t = threading.Thread(target=self._reader, name="fw-stdout", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _reader(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                prefix = next((p for p in STATS_PREFIXES if line.startswith(p)), None)
                if prefix is not None:
                    try:
                        st = json.loads(line[len(prefix):])
                    except ValueError:
                        self.lines.append(line)
                    else:
                        self.stats = st
                        self.stats_history.append(st)
                else:
                    self.lines.append(line)
                self.cpu_s = self.cpu_seconds()
                self._cond.notify_all()
        with self._cond:
            self.returncode = self.proc.wait()
            self._cond.notify_all()

    def send(self, text):
        """Writes one console line to the firmware's stdin."""
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write((text + "\n").encode())
                self.proc.stdin.flush()
            except OSError:
                pass

    def request_stats(self, timeout=5.0):
        """Asks the console for `counters` and waits for the reply; returns the newest stats (or None)."""
        with self._cond:
            n = len(self.stats_history)
        self.send("counters")
        self.wait_for(lambda f: len(f.stats_history) > n, timeout)
        return self.stats

    def wait_for(self, predicate, timeout):
        """Waits until predicate(self) is true (re-checked after each output line); returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ok = predicate(self)
                if ok or self.returncode is not None:
                    return ok
                left = deadline - time.monotonic()
                if left <= 0:
                    return ok
                self._cond.wait(min(left, 0.5))

    def safe_mode(self):
        """The reason line when the firmware went into safe mode, else None."""
        with self._cond:
            return next((ln for ln in self.lines if ln.startswith("SAFE MODE")), None)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self):
        """User + system CPU seconds of the running child, from /proc (None if unavailable)."""
        if self.proc is None:
            return None
        try:
            with open("/proc/%d/stat" % self.proc.pid) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / float(_clock_ticks())
        except (OSError, IndexError, ValueError):
            return self.cpu_s

    def stop(self, timeout=5.0):
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.cpu_s = self.cpu_seconds()
            # Console `stop`: the application prints a final STATS line and ends; SIGINT, then kill, if not.
            self.send("stop")
            for action in (None, lambda: self.proc.send_signal(signal.SIGINT), self.proc.kill):
                if action is not None:
                    action()
                try:
                    self.proc.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for t in self._threads:
            t.join(timeout)
        for fh in (self.proc.stdin, self.proc.stdout):
            try:
                fh.close()
            except OSError:
                pass
        self.returncode = self.proc.returncode
        if self._compiled_dir is not None:
            shutil.rmtree(self._compiled_dir, ignore_errors=True)
        return self.returncode

    def log_tail(self, n=40):
        with self._cond:
            return "\n".join(self.lines[-n:])

    def log_lines(self, level=None):
        with self._cond:
            if level is None:
                return list(self.lines)
            return [ln for ln in self.lines if ln.startswith(level + " ")]
