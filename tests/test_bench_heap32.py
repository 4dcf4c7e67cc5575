"""bench/bench_heap32.py measures what it says: the same firmware work on the 32-bit webassembly port and
the 64-bit unix port, with packets built and rule events fired. Its figures are reported, never judged
here; this only keeps the bench from rotting as the firmware changes under it."""

import json
import subprocess
import sys

from host_tools import REPO_ROOT


def test_quick_run_does_the_same_work_on_both_ports():
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "bench_heap32.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["same_work_on_both_ports"] is True
    assert out["packets"]["packets"] > 0 and out["packets"]["records"] > 0 and out["rule_events"] > 0
    assert out["ports"]["32bit"]["pointer_bits"] == 32 and out["ports"]["64bit"]["pointer_bits"] == 64
    for key in ("state_bytes_32bit", "state_bytes_64bit"):
        assert isinstance(out[key], int) and out[key] > 0, key
    # smaller pointers and object headers: the same state takes fewer bytes on 32 bits
    assert out["state_bytes_32bit"] < out["state_bytes_64bit"]
    assert out["ratio"] == round(out["state_bytes_32bit"] / out["state_bytes_64bit"], 3)
