"""HJ 212 codec figures: 1 KiB minute-data frames encoded and parsed per second, CRC bytes per second, and
the device's frame writer (protocols/hj212/segment.py) against Packet.encode / hj212.split.

    python bench/bench_hj212.py            # CPython figures + MicroPython (unix port) figures, as JSON

The same file runs under MicroPython as the child (`micropython bench/bench_hj212.py --child ROOT`);
the parent merges both and adds MicroPython/CPython ratios. Each rate is the median of REPEATS runs.
The unix port runs on the host CPU (64-bit), so its figures show relative cost, not ESP32 speed.
MicroPython heap figures come from gc.mem_alloc() with the GC disabled around one call, i.e. every byte
allocated by that call: an upper bound of its peak. Figures only: nothing here passes or fails.
"""

import json
import sys

from timing import REPEATS, _rate

MPY = sys.implementation.name == "micropython"



def _alloc(fn):
    """Heap bytes allocated by one call (MicroPython only)."""
    if not MPY:
        return None
    import gc

    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn()
        return gc.mem_alloc() - before
    finally:
        gc.enable()
        gc.collect()




# Flue-gas minute record (2051) as in hj212.md 8.2, widened to the usual CEMS channel set.
CHANNELS = (
    ("a00000", ("Cou", "Min", "Avg", "Max")),
    ("a21002", ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")),
    ("a21026", ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")),
    ("a34013", ("Cou", "Min", "Avg", "Max", "ZsMin", "ZsAvg", "ZsMax")), ("a19001", ("Min", "Avg", "Max")),
    ("a01011", ("Min", "Avg", "Max")), ("a01012", ("Min", "Avg", "Max")), ("a01013", ("Min", "Avg", "Max")),
    ("a01014", ("Min", "Avg", "Max")),
)


def minute_packet(hj212):
    groups = [[("DataTime", "20240315102000")]]
    k = 0
    for code, kinds in CHANNELS:
        pairs = []
        for kind in kinds:
            k += 1
            pairs.append((code + "-" + kind, "%d.%03d" % (10 + k, k * 7 % 1000)))
        pairs.append((code + "-Flag", "N"))
        groups.append(pairs)
    return hj212.build("31", "2051", "123456", "31000000123456789ABCDEF0", groups, qn="20240315103000456",
                       ack=True)


def measure():
    from hj212_reference import crc_appendix_a as crc_bitwise  # Appendix A's loop as written

    gc = None
    if MPY:
        import gc

        gc.collect()
        before_import = gc.mem_alloc()
    from protocols import hj212

    import_bytes = None
    if MPY:
        gc.collect()
        import_bytes = gc.mem_alloc() - before_import

    packet = minute_packet(hj212)
    raw = packet.encode()
    segment = raw[6:-6]
    dec = hj212.StreamDecoder()
    quarter = len(raw) // 4 + 1
    pieces = [raw[i:i + quarter] for i in range(0, len(raw), quarter)]

    def encode():
        packet.encode()

    def build_encode():
        minute_packet(hj212).encode()

    def parse():
        hj212.parse(raw)

    def stream():
        for piece in pieces:
            dec.feed(piece)

    # The device's writer (protocols/hj212/segment.py) from the CP text: the same frame, and a record
    # twice as long in parts (PNUM/PNO) against hj212.split of its `;` groups.
    from protocols.hj212.segment import Frames

    cp = packet.cp_text().encode()
    head = (packet.st, packet.cn, packet.pw, packet.mn, packet.flag)
    assert bytes(Frames(*head, cp).frame(0, packet.qn)) == raw
    long_cp = cp + cp[cp.find(b";"):]
    qns = [hj212.qn_add_ms(packet.qn, i) for i in range(4)]

    def segment_write():
        Frames(*head, cp).frame(0, packet.qn)

    def segment_split():
        f = Frames(*head, long_cp)
        for i in range(f.n):
            f.frame(i, qns[i])

    def packet_split():
        groups = [[(g, None)] for g in long_cp.decode().split(";")]
        groups[0] = [("DataTime", groups[0][0][0][9:])]
        for p in hj212.split(hj212.Packet(*head[:4], groups, packet.qn, head[4]), qns=qns):
            p.encode()

    def crc_table():
        hj212.crc16(segment)

    def crc_loop():
        crc_bitwise(segment)

    n = 200 if MPY else 2000
    return {
        "frame_bytes": len(raw),
        "cp_items": sum(len(g) for g in packet.cp),
        "encode_frames_per_s": round(_rate(encode, n)),
        "build_and_encode_frames_per_s": round(_rate(build_encode, n)),
        "segment_write_frames_per_s": round(_rate(segment_write, n)),
        "parse_frames_per_s": round(_rate(parse, n)),
        "stream_decode_frames_per_s_4_chunks": round(_rate(stream, n)),
        "crc_table_bytes_per_s": round(_rate(crc_table, n, len(segment))),
        "crc_bitwise_bytes_per_s": round(_rate(crc_loop, max(n // 20, 5), len(segment))),
        "heap_import_bytes": import_bytes,
        "heap_alloc_encode_bytes": _alloc(encode),
        "heap_alloc_build_and_encode_bytes": _alloc(build_encode),
        "heap_alloc_segment_write_bytes": _alloc(segment_write),
        "heap_alloc_split_packets_bytes": _alloc(packet_split),
        "heap_alloc_split_segment_write_bytes": _alloc(segment_split),
        "heap_alloc_parse_bytes": _alloc(parse),
        "heap_alloc_stream_decode_bytes": _alloc(stream),
    }


def main():
    if MPY:
        sys.path.insert(0, sys.argv[2] + "/tests")
        sys.path.insert(0, sys.argv[2])  # before tests/, whose protocols/ folder would shadow the package
        print(json.dumps(measure()))
        return
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "tests"))
    sys.path.insert(0, root)
    cpy = measure()
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    heap = "256k"
    proc = subprocess.run(
        [exe, "-X", "heapsize=" + heap, os.path.abspath(__file__), "--child", root],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
    )
    if proc.returncode != 0:
        raise SystemExit("micropython run failed:\n" + proc.stdout + proc.stderr)
    mpy = json.loads(proc.stdout.strip().splitlines()[-1])
    rates = [k for k in cpy if "_per_s" in k]
    result = {
        "cpython": {k: v for k, v in cpy.items() if v is not None},
        "micropython_unix": mpy,
        "ratio_micropython_to_cpython": {k: round(mpy[k] / cpy[k], 4) for k in rates if cpy[k]},
        "crc_table_speedup": {
            "cpython": round(cpy["crc_table_bytes_per_s"] / cpy["crc_bitwise_bytes_per_s"], 1),
            "micropython_unix": round(mpy["crc_table_bytes_per_s"] / mpy["crc_bitwise_bytes_per_s"], 1),
        },
        "context": {
            "packet": "CN=2051 minute record, %d CP items, %d-byte frame"
            % (cpy["cp_items"], cpy["frame_bytes"]),
            "micropython_heap": heap,
            "micropython_modules": "imported from source (the device loads .mpy)",
            "heap_alloc": "bytes allocated by one call with the GC disabled (upper bound of its peak)",
        },
        "repeats": REPEATS,
        "statistic": "median",
        "python": sys.version.split()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
