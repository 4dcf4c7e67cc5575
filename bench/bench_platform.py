"""Receiver throughput and memory of `emlog platform serve` (prints JSON; never asserts timings).

frames/s = minute-data frames (~520 bytes, ack requested) parsed, verified, stored in SQLite, committed and
acknowledged with 9014, measured at the clients (wall clock) and per CPU-second of the server process
(the server is one asyncio thread, so this is its one-core capacity). The server runs as a child process
pinned to CPU 0 when `taskset` exists; the senders run in this process.

    python bench/bench_platform.py [--frames N] [--quick]
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from host_tools.platform.load import ServeProcess, make_mn, minute_frames, run_sender


async def _load(port, conns, frames_each, window, first_minute):
    jobs = []
    for i in range(conns):
        mn = make_mn(i)
        jobs.append(
            run_sender(
                "127.0.0.1", port, mn, minute_frames(mn, frames_each, start=first_minute), window=window
            )
        )
    t0 = time.perf_counter()
    results = await asyncio.gather(*jobs)
    wall = time.perf_counter() - t0
    acked = sum(r.acked for r in results)
    errors = [r.error for r in results if r.error or r.bad_acks]
    return wall, acked, errors


def throughput(conns, total, window, durable, tmp):
    db = os.path.join(tmp, "bench-%d-%d-%d.db" % (conns, window, durable))
    extra = [] if durable else ["--no-fsync"]
    cpu = 0 if shutil.which("taskset") else None
    server = ServeProcess(db, extra, cpu=cpu)
    try:
        each = max(1, total // conns)
        asyncio.run(_load(server.port, conns, 5, window, 0))  # warm-up: connect, caches, first pages
        cpu0 = server.cpu_seconds()
        wall, acked, errors = asyncio.run(_load(server.port, conns, each, window, 10))
        cpu_used = server.cpu_seconds() - cpu0
    finally:
        server.stop()
    return {
        "connections": conns,
        "window": window,
        "durable": durable,
        "frames": acked,
        "wall_s": round(wall, 3),
        "frames_per_s": round(acked / wall, 1),
        "server_cpu_s": round(cpu_used, 3),
        "frames_per_server_cpu_s": round(acked / cpu_used, 1) if cpu_used else None,
        "errors": errors[:3],
    }


async def _hold(port, n):
    """n connections, one frame each, then kept open; returns the writers to close later."""
    conns = []
    for i in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        mn = make_mn(10000 + i)
        w.write(minute_frames(mn, 1)[0][1])
        await r.readline()
        conns.append((r, w))
    return conns


def memory_per_connection(n, tmp):
    server = ServeProcess(os.path.join(tmp, "mem.db"))
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_hold(server.port, 1))  # first connection pays one-off costs
        before = server.rss_kib()
        conns = loop.run_until_complete(_hold(server.port, n))
        after = server.rss_kib()
        for _, w in conns:
            w.close()
    finally:
        loop.close()
        server.stop()
    return {
        "connections": n,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": round((after - before) / n, 1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=5000, help="frames per throughput run")
    ap.add_argument("--quick", action="store_true", help="1000 frames per run")
    args = ap.parse_args()
    total = 1000 if args.quick else args.frames
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})  # senders off the server's core
    tmp = tempfile.mkdtemp(prefix="bench-platform-")
    try:
        runs = [
            throughput(1, total // 2, 1, True, tmp),
            throughput(1, total, 32, True, tmp),
            throughput(50, total, 1, True, tmp),
            throughput(50, total, 1, False, tmp),
        ]
        mem = [memory_per_connection(50, tmp), memory_per_connection(200, tmp)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "platform",
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "throughput": runs,
                "memory": mem,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
