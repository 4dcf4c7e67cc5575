"""Torn writes: power cuts inside LittleFS while the store appends, acks, rotates and reclaims.

One MicroPython process runs CUTS power cuts in a row on one flash image: each "boot" mounts the image
with a FileBlockDev whose write budget (seeded, reproducible) runs out in the middle of a flash program
or erase; the device is then dead (every write fails) and the test "reboots": a fresh device on the same
image, mount (must succeed every time, never reformatted), Store recovery, invariant checks:

- no committed record lost: every lane still holds every sequence up to the last append that returned;
- nothing corrupted: every record read back equals what was written for its sequence (records are a pure
  function of (lane, seq), so an append that was cut and never committed may reuse its number);
- a record is gone only when every link that receives it had acknowledged it (persisted cursor), and a
  cursor never falls behind an ack that returned;
- no record was dropped by the overflow policy (the workload acks fast enough), no bad record met.
"""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")
if "host_tools/emulators" not in sys.path:
    sys.path.insert(0, "host_tools/emulators")

import os
import time

import blockdev
from app.store import Store

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "128k"

SEED = 0x5EED2026
CUTS = 320
IMG = "/tmp/emlog_test_powercut_%d.img" % time.time_ns()
MNT = "/pc"
T0 = 1767225600
LINKS = [
    {"name": "nat/boiler", "station": "boiler", "realtime": True},
    {"name": "prov/boiler", "station": "boiler", "realtime": False},
    {"name": "nat/dust", "station": "dust", "realtime": True},
]
LANES = (("min", "boiler"), ("rtd", "boiler"), ("min", "dust"), ("hour", "boiler"))


class Rng:
    def __init__(self, seed):
        self.s = seed

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next() % n


def record(kind, station, seq):
    """The record stored at `seq` of a lane: values exact in f32, so the comparison is exact."""
    if kind == "rtd":
        values = [["a21003", {"Rtd": seq * 0.5, "Flag": "N"}], ["a19001", {"Rtd": float(seq % 7)}]]
    else:
        values = [["a21003", {"Avg": seq * 0.5, "Flag": "N"}], ["a19001", {"Min": 20.0, "Avg": float(seq % 7)}]]
    return {"kind": kind, "station": station, "t": T0 + 60 * seq, "values": values}


def subscribers(kind, station):
    return [ln["name"] for ln in LINKS if ln["station"] == station and (kind != "rtd" or ln["realtime"])]


def open_store():
    return Store(MNT + "/s", LINKS, max_bytes=36 * 1024, seg_bytes=1024, block=4096)


def check(st, model, acked):
    """Invariants after a reboot; returns the number of records read back."""
    assert st.bad == 0 and st.dropped == 0, st.snapshot()
    n = 0
    for kind, station in LANES:
        key = kind + "." + station
        lane = st.lanes.get(key)
        top = model.get(key, 0)
        if lane is None:
            assert top == 0, key
            continue
        assert lane.next_seq - 1 >= top, (key, lane.next_seq, top)  # committed records all there
        first = None
        expect = None
        for r in st.query(kind, station, 0, 2**32 - 1):
            seq = (r["t"] - T0) // 60
            assert r == record(kind, station, seq), (key, seq, r)
            if first is None:
                first = expect = seq
            assert seq == expect, (key, "gap", expect, seq)
            expect += 1
            n += 1
        if first is None:
            first = lane.next_seq
        assert expect is None or expect == lane.next_seq, (key, expect, lane.next_seq)
        for link in subscribers(kind, station):
            contig = st.cursors[link].get(key, [0])[0]  # as persisted (not yet moved by reading)
            assert contig >= acked.get((link, key), 0), (link, key, contig)  # no ack lost
            assert contig >= first - 1, (link, key, "reclaimed before acked", first, contig)
    return n


def step(st, rng, model, acked, down, phase):
    """One random operation: mostly appends and in-order acks of the oldest pending records.
    `phase[0]` names the operation under way (where a cut lands)."""
    op = rng.below(10)
    phase[0] = "append" if op < 5 else "ack"
    if op < 5:
        kind, station = LANES[rng.below(3) if rng.below(20) else 3]
        key = kind + "." + station
        lane = st.lanes.get(key)
        seq = lane.next_seq if lane is not None else 1
        ref = st.append(record(kind, station, seq))
        assert ref == (key, seq)
        model[key] = seq
        return
    link = LINKS[rng.below(len(LINKS))]["name"]
    if link == down:
        return  # this link's center is unreachable during this boot: its backlog grows
    n = 1 + rng.below(6)
    for ref, _ in st.pending(link):
        if st.ack(link, ref, sync=False) and ref[1] > acked.get((link, ref[0]), 0):
            pass
        n -= 1
        if n == 0:
            break
    st.save_cursor(link)
    for key in st.cursors[link]:
        acked[(link, key)] = st.cursors[link][key][0]


def test_torn_write_power_cuts():
    rng = Rng(SEED)
    blockdev.umount(MNT)
    bd = blockdev.FileBlockDev(IMG, block_count=48)
    blockdev.mount(bd, MNT, mkfs=True)
    blockdev.umount(MNT)
    model = {}  # lane key -> highest seq whose append returned
    acked = {}  # (link, lane key) -> contiguous ack whose save_cursor returned
    cuts = 0
    where = {}
    boots = 0
    checked = 0
    while cuts < CUTS:
        bd = blockdev.FileBlockDev(IMG, budget=rng.below(160000) + 1)
        blockdev.mount(bd, MNT)  # must mount every time: never reformatted
        boots += 1
        phase = ["open"]
        try:
            st = open_store()
            checked += check(st, model, acked)
            down = LINKS[rng.below(len(LINKS))]["name"] if rng.below(2) else None
            for _ in range(200):
                step(st, rng, model, acked, down, phase)
        except OSError:
            assert bd.cut, "OSError without a power cut"
            cuts += 1
            where[phase[0]] = where.get(phase[0], 0) + 1
            st = None
        blockdev.umount(MNT)
        bd.close()
    # A last clean boot checks the state the final cut left.
    bd = blockdev.FileBlockDev(IMG)
    blockdev.mount(bd, MNT)
    check(open_store(), model, acked)
    blockdev.umount(MNT)
    bd.close()
    os.remove(IMG)
    print("POWERCUT cuts=%d boots=%d where=%s records_checked=%d" % (cuts, boots, where, checked))
    assert where.get("append", 0) > 20 and where.get("ack", 0) > 20, where
    assert sum(model.values()) > 200, model  # the workload made progress through the cuts
