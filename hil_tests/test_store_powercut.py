"""Power cuts by SIGKILL: the host kills a MicroPython store worker at random instants and reboots it.

The worker (source below, run by the `micropython` unix port) mounts a LittleFS flash image through
host_tools/emulators/blockdev.py, opens firmware/app/store.py (recovery), checks what it finds and
reports it, then appends records and acks them (per-link outages make backlogs, the store rotates and
reclaims) until it is killed. It prints `C lane seq` only after `append` returned (committed) and
`A link lane contig` only after the cursor was saved. The host reads those lines, sends SIGKILL after a
seeded number of them (so the kill lands somewhere in the following operations: appends, rotations,
cursor writes, reclaims, LittleFS compaction...), restarts the worker on the same image and checks:

- the image mounts every time (the worker exits 3 if not);
- every committed record is still there and intact; nothing corrupted is read; records are only gone
  when every link receiving them had acked them; no acked cursor went backwards;
- one run in four also arms a torn-write budget in the block device (the worker dies on its own mid-write).

KILLS cuts per run (seeded, reproducible sequence of kill points); with the in-process torn-write test
(tests/firmware/test_fw_store_powercut.py, 320 cuts) the suite makes well over 500 power cuts.
"""

import os
import random
import select
import signal
import subprocess
import sys

import pytest

from host_tools import REPO_ROOT

KILLS = 200
SEED = 212

WORKER = r'''
import sys
ROOT = sys.argv[1]
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, ROOT + "/host_tools/emulators")
import blockdev
from app.store import Store

T0 = 1767225600
LINKS = [
    {"name": "nat/boiler", "station": "boiler", "realtime": True},
    {"name": "prov/boiler", "station": "boiler", "realtime": False},
    {"name": "nat/dust", "station": "dust", "realtime": True},
]
LANES = (("min", "boiler"), ("rtd", "boiler"), ("min", "dust"), ("hour", "boiler"))


def record(kind, station, seq):
    f = "Rtd" if kind == "rtd" else "Avg"
    return {"kind": kind, "station": station, "t": T0 + 60 * seq,
            "values": [["a21003", {f: seq * 0.25, "Flag": "N"}], ["a19001", {f: float(seq % 11)}]]}


def main():
    img, seed, budget = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    bd = blockdev.FileBlockDev(img, budget=budget or None)
    try:
        blockdev.mount(bd, "/f")
    except OSError as exc:
        print("MOUNTFAIL", exc)
        sys.exit(3)
    try:
        run(bd, seed)
    except OSError:
        if not bd.cut:
            raise
        print("CUT")
        sys.exit(4)


def run(bd, seed):
    st = Store("/f/s", LINKS, max_bytes=32 * 1024, seg_bytes=1024)
    for kind, station in LANES:
        key = kind + "." + station
        lane = st.lanes.get(key)
        if lane is None:
            print("L", key, 1, 1)
            continue
        first = None
        exp = None
        for r in st.query(kind, station, 0, 2**32 - 1):
            seq = (r["t"] - T0) // 60
            if r != record(kind, station, seq):
                print("BAD corrupt", key, seq)
            if first is None:
                first = exp = seq
            if seq != exp:
                print("BAD gap", key, exp, seq)
            exp = seq + 1
        if first is None:
            first = exp = lane.next_seq
        if exp != lane.next_seq:
            print("BAD tail", key, exp, lane.next_seq)
        print("L", key, first, lane.next_seq)
        for link in st.links:
            if key in st.cursors[link]:
                print("K", link, key, st.cursors[link][key][0])
    if st.bad or st.dropped:
        print("BAD store", st.bad, st.dropped)
    print("READY")
    x = seed or 1
    down = None
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        op = x % 16
        if op < 7:
            kind, station = LANES[(x >> 8) % 3 if (x >> 12) % 16 else 3]
            key = kind + "." + station
            lane = st.lanes.get(key)
            seq = lane.next_seq if lane is not None else 1
            st.append(record(kind, station, seq))
            print("C", key, seq)
        elif op == 7:
            down = LINKS[(x >> 8) % 3]["name"] if (x >> 10) % 2 else None
        else:
            link = LINKS[(x >> 8) % 3]["name"]
            if link == down:
                continue
            n = 1 + (x >> 16) % 5
            for ref, rec in st.pending(link):
                st.ack(link, ref, sync=False)
                n -= 1
                if n == 0:
                    break
            st.save_cursor(link)
            for key in st.cursors[link]:
                print("A", link, key, st.cursors[link][key][0])


main()
'''


def micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else "micropython"


def subscribers(key):
    kind, station = key.split(".")
    return [n for n, s, rt in (("nat/boiler", "boiler", True), ("prov/boiler", "boiler", False),
                               ("nat/dust", "dust", True)) if s == station and (kind != "rtd" or rt)]


class Model:
    """What the host knows was committed and acked, from complete lines of earlier runs."""

    def __init__(self):
        self.committed = {}  # lane -> highest committed seq
        self.acked = {}  # (link, lane) -> highest saved contiguous ack

    def take(self, line):
        p = line.split()
        if p[0] == "C":
            self.committed[p[1]] = max(self.committed.get(p[1], 0), int(p[2]))
        elif p[0] == "A":
            k = (p[1], p[2])
            self.acked[k] = max(self.acked.get(k, 0), int(p[3]))

    def check_boot(self, lines):
        """Problems in the worker's start-up report (empty list when every invariant holds)."""
        bad = [ln for ln in lines if ln.startswith("BAD")]
        first = {}
        cursors = {}
        for ln in lines:
            p = ln.split()
            if p[0] == "L":
                first[p[1]] = int(p[2])
                top = int(p[3]) - 1
                if top < self.committed.get(p[1], 0):
                    bad.append("lost committed records of %s: holds up to %d, committed %d"
                               % (p[1], top, self.committed[p[1]]))
            elif p[0] == "K":
                cursors[(p[1], p[2])] = int(p[3])
        for (link, key), n in self.acked.items():
            if cursors.get((link, key), 0) < n:
                bad.append("cursor %s %s went back to %s (acked %d)" % (link, key, cursors.get((link, key)), n))
        for key, f in first.items():
            for link in subscribers(key):
                if cursors.get((link, key), 0) < f - 1:
                    bad.append("%s records before %d deleted but %s acked only %s"
                               % (key, f, link, cursors.get((link, key), 0)))
        return bad


def read_line(proc, buf, timeout=30.0):
    """One complete line from the worker (None at EOF); partial lines of a killed worker are dropped."""
    while b"\n" not in buf[0]:
        r, _, _ = select.select([proc.stdout], [], [], timeout)
        if not r:
            raise AssertionError("worker silent for %.0f s" % timeout)
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            return None
        buf[0] += chunk
    line, buf[0] = buf[0].split(b"\n", 1)
    return line.decode()


@pytest.fixture
def image(tmp_path):
    img = tmp_path / "flash.img"
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER, encoding="utf-8")
    fmt = ("import sys\nsys.path.insert(0, %r)\nimport blockdev\n"
           "bd = blockdev.FileBlockDev(%r, block_count=40)\nblockdev.mount(bd, '/f', mkfs=True)\n"
           % (str(REPO_ROOT / "host_tools" / "emulators"), str(img)))
    subprocess.run([micropython(), "-c", fmt], check=True, timeout=60)
    return img, worker


def test_sigkill_and_torn_write_power_cuts(image):
    img, worker = image
    rng = random.Random(SEED)
    model = Model()
    kills = torn = 0
    runs = 0
    while kills + torn < KILLS:
        runs += 1
        budget = rng.randrange(1, 60000) if rng.random() < 0.25 else 0
        proc = subprocess.Popen(
            [micropython(), "-X", "heapsize=256k", str(worker), str(REPO_ROOT), str(img),
             str(rng.randrange(1, 2**31)), str(budget)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        buf = [b""]
        boot = []
        try:
            while True:
                line = read_line(proc, buf)
                assert line is not None, "worker ended before READY: %s %s" % (boot, proc.stderr.read()[-2000:])
                if line == "READY":
                    break
                boot.append(line)
            problems = model.check_boot(boot)
            assert not problems, "run %d: %s" % (runs, problems[:5])
            after = 10**9 if budget else rng.randrange(1, 40)  # a torn-write run dies on its own
            seen = 0
            ended = None
            while seen < after:
                line = read_line(proc, buf)
                if line is None:
                    ended = proc.wait(10)
                    break
                if line == "CUT":
                    continue
                model.take(line)
                seen += 1
            if ended is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                # Lines already written before the kill were committed too.
                rest = buf[0] + proc.stdout.read()
                for ln in rest.split(b"\n")[:-1]:
                    if ln and ln != b"CUT":
                        model.take(ln.decode())
                kills += 1
            else:
                assert ended == 4, "worker failed (exit %s): %s" % (ended, proc.stderr.read()[-2000:])
                torn += 1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("SIGKILL cuts %d, torn-write cuts %d, runs %d, committed %s" % (kills, torn, runs, model.committed))
    assert kills > KILLS // 2 and torn > 10
    assert sum(model.committed.values()) > 500  # the runs made progress between the cuts
