"""Modbus codec figures: decode of a 60-register response per second, CRC bytes per second.

    python bench/bench_modbus.py            # CPython figures + MicroPython (unix port) figures, as JSON

The same file runs under MicroPython as the child (`micropython bench/bench_modbus.py --child ROOT`);
the parent merges both and adds MicroPython/CPython ratios. Each figure is the median of REPEATS runs.
The unix port runs on the host CPU, so its figures show relative cost, not ESP32 speed.
Figures only: nothing here passes or fails on timing.
"""

import json
import sys

from timing import REPEATS, _rate

MPY = sys.implementation.name == "micropython"



def _alloc_per_call(fn, n=20):
    """Heap bytes allocated per call (MicroPython only: gc.mem_alloc with collection disabled)."""
    if not MPY:
        return None
    import gc

    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(n):
            fn()
        return (gc.mem_alloc() - before) // n
    finally:
        gc.enable()
        gc.collect()


def measure():
    from protocols.modbus import crc, rtu, slave, values
    from protocols.modbus.plan import plan_reads

    def response_of(points, encoded):
        plan = plan_reads(points)
        request = plan.reads[0].request(1)
        return plan, request, slave.registers_response(1, 3, encoded)

    f32 = [{"address": 2 * i, "type": "f32"} for i in range(30)]
    raw = b"".join(values.encode(i * 1.25 - 7, "f32") for i in range(30))
    plan_f, req_f, resp_f = response_of(f32, raw)
    f32w = [{"address": 2 * i, "type": "f32", "order": "CDAB"} for i in range(30)]
    rawc = b"".join(values.encode(i * 1.25 - 7, "f32", "CDAB") for i in range(30))
    plan_w, _, resp_w = response_of(f32w, rawc)
    u16 = [{"address": i, "type": "s16" if i % 2 else "u16", "scale": 0.1} for i in range(60)]
    raw16 = b"".join(values.encode(i * 37, "u16") for i in range(60))
    plan_u, _, resp_u = response_of(u16, raw16)
    out = [0] * 60
    framer = rtu.ResponseFramer()
    mv = memoryview(resp_f)

    def dec_f32():
        plan_f.decode(0, mv, out)

    def dec_cdab():
        plan_w.decode(0, resp_w, out)

    def dec_u16():
        plan_u.decode(0, resp_u, out)

    def frame_and_decode():
        framer.start(req_f)
        if framer.feed(resp_f) != rtu.COMPLETE:
            raise RuntimeError("bench response rejected")
        plan_f.decode(0, framer.frame, out)

    block = bytes(range(256))

    def crc_block():
        crc.crc16(block)

    n = 1000 if MPY else 3000
    return {
        "decode_60reg_30xf32_per_s": round(_rate(dec_f32, n)),
        "decode_60reg_30xf32_cdab_per_s": round(_rate(dec_cdab, n)),
        "decode_60reg_60xint16_scaled_per_s": round(_rate(dec_u16, n)),
        "frame_crc_decode_60reg_per_s": round(_rate(frame_and_decode, n)),
        "crc_bytes_per_s": round(_rate(crc_block, n, len(block))),
        "alloc_bytes_per_decode_30xf32": _alloc_per_call(dec_f32),
        "alloc_bytes_per_frame_crc_decode": _alloc_per_call(frame_and_decode),
        "alloc_bytes_per_decode_60xint16_scaled": _alloc_per_call(dec_u16),
    }


def main():
    if MPY:
        sys.path.insert(0, sys.argv[2])
        print(json.dumps(measure()))
        return
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    cpy = measure()
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    proc = subprocess.run(
        [exe, "-X", "heapsize=256k", os.path.abspath(__file__), "--child", root],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
    )
    if proc.returncode != 0:
        raise SystemExit("micropython run failed:\n" + proc.stdout + proc.stderr)
    mpy = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {
        "cpython": {k: v for k, v in cpy.items() if v is not None},
        "micropython_unix": mpy,
        "ratio_micropython_to_cpython": {
            k: round(mpy[k] / cpy[k], 3) for k in cpy if k.endswith("_per_s") and cpy[k]
        },
        "repeats": REPEATS,
        "statistic": "median",
        "python": sys.version.split()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
