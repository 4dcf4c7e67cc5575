"""Record store figures (firmware/app/store.py on LittleFS through the counting block device).

    python bench/bench_store.py [--quick]     # runs the MicroPython child, prints one JSON object

The child (`micropython bench/bench_store.py --child ROOT [--quick]`) formats a 2 MiB image (512 x 4 KiB
blocks, the ESP32 partition) with VfsLfs2 over host_tools/emulators/blockdev.py and stores the reference
site's records (sites/reference.json: boiler 10 channels, voc 2, dust 8; minute interval 1 min, realtime
every 30 s; field sets as the statistics produce them: Min/Avg/Max/Flag, Zs* for o2_ref channels, Cou for
the boiler's pollutants and flow). Figures:

- flash bytes programmed and blocks erased per stored record (write amplification, counted by the block
  device), for appends alone and for appends + per-record acks (cursor write-then-rename each ack);
- store bytes per channel-minute (segment bytes / channel-minutes) and the days of minute (+hour/day)
  data, and of hour/day data alone, that fit in the store's default budget on a 2 MiB partition;
- append and backlog-drain rates (records/s; unix port on the host CPU: relative figures, not ESP32 speed),
  heap allocated by the opened store.
Each rate is the median of REPEATS runs. Figures only: nothing here passes or fails on timing.
"""

import json
import sys

REPEATS = 3
MPY = sys.implementation.name == "micropython"
T0 = 1767225600

STATIONS = (
    ("boiler", ("a21003", "a21004", "a21002", "a21026", "a19001", "a00000", "a01011", "a01012", "a01013",
                "a01014"), ("a21002", "a21026"), ("a21003", "a21004", "a21002", "a21026", "a00000")),
    ("voc", ("a24088", "a05002"), (), ()),
    ("dust", ("a34001", "a34002", "a34004", "a01001", "a01002", "a01007", "a01008", "LA"), (), ()),
)
N_CHANNELS = sum([len(s[1]) for s in STATIONS])


def stat_record(kind, station, t, k):
    name, codes, zs, cou = station
    vals = []
    for i in range(len(codes)):
        c = codes[i]
        base = 10.0 + i + (k % 17) * 0.173
        if kind == "rtd":
            d = {"Rtd": base, "Flag": "N"}
            if c in zs:
                d["ZsRtd"] = base * 1.21
        else:
            d = {"Min": base - 1.3, "Avg": base, "Max": base + 2.7, "Flag": "N"}
            if c in zs:
                d["ZsMin"], d["ZsAvg"], d["ZsMax"] = base * 1.1, base * 1.2, base * 1.3
            if c in cou:
                d["Cou"] = base * 0.0021
        vals.append([c, d])
    return {"kind": kind, "station": name, "t": t, "values": vals}


def child(root, quick):
    import gc
    import os
    import time

    sys.path.insert(0, root + "/firmware")
    sys.path.insert(0, root + "/host_tools/emulators")
    import blockdev
    from app.store import Store, links_from_config

    with open(root + "/sites/reference.json") as f:
        links = links_from_config(json.load(f))
    img = "/tmp/emlog_bench_store_%d.img" % time.time_ns()
    minutes = 240 if quick else 1440

    def fresh():
        blockdev.umount("/b")
        bd = blockdev.FileBlockDev(img, block_count=512)
        blockdev.mount(bd, "/b", mkfs=True)
        bd.bytes_written = bd.erases = 0
        return bd

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    out = {"minutes_stored": minutes, "channels": N_CHANNELS, "repeats": REPEATS, "statistic": "median"}

    # 1. Append minute/hour/day records of one day (no acks): bytes per record, write amplification.
    rates = []
    for _ in range(REPEATS):
        bd = fresh()
        st = Store("/b/s", links)
        n = 0
        t_start = time.ticks_ms()
        for m in range(minutes):
            t = T0 + 60 * m
            for s in STATIONS:
                st.append(stat_record("min", s, t, m))
                n += 1
                if m % 60 == 59:
                    st.append(stat_record("hour", s, t, m))
                    n += 1
        dt = time.ticks_diff(time.ticks_ms(), t_start)
        rates.append(n * 1000 / max(dt, 1))
    seg_min = seg_hour = 0
    for key in st.lanes:
        size = sum([s[2] for s in st.lanes[key].segs])
        if key.startswith("min."):
            seg_min += size
        elif key.startswith("hour."):
            seg_hour += size
    fs = os.statvfs("/b")
    out["append_records_per_s"] = median(rates)
    out["records_appended"] = n
    out["flash_bytes_programmed_per_record"] = bd.bytes_written / n
    out["erases_per_record"] = bd.erases / n
    out["store_bytes_per_min_record_avg"] = seg_min / (minutes * len(STATIONS))
    out["store_bytes_per_channel_minute"] = seg_min / (minutes * N_CHANNELS)
    out["fs_bytes_used_after"] = (fs[2] - fs[3]) * fs[0]
    budget = st.max_bytes
    per_day_min = seg_min / minutes * 1440
    per_day_hour = seg_hour / max(1, minutes // 60) * 24
    per_day_day = per_day_hour / 24 * 1.0  # one day record per station is about one hour record
    out["store_budget_bytes"] = budget
    out["days_of_minute_hour_day_data"] = budget / (per_day_min + per_day_hour + per_day_day)
    out["days_of_hour_day_data_only"] = budget / (per_day_hour + per_day_day)

    # 2. Realtime records with the center acking each one (cursor saved per ack): amplification.
    bd = fresh()
    st = Store("/b/s", links)
    n = 0
    for k in range(120 if quick else 360):
        for s in STATIONS:
            ref = st.append(stat_record("rtd", s, T0 + 30 * k, k))
            st.ack("national/" + s[0], ref)
            n += 1
    out["rtd_acked_flash_bytes_programmed_per_record"] = bd.bytes_written / n
    out["rtd_acked_erases_per_record"] = bd.erases / n

    # 3. Backlog drain: the center was down for the stored period; stream pending and ack.
    bd = fresh()
    st = Store("/b/s", links)
    backlog = 240 if quick else 720
    for m in range(backlog):
        st.append(stat_record("min", STATIONS[0], T0 + 60 * m, m))
    gc.collect()
    before = gc.mem_alloc()
    st2 = Store("/b/s", links)
    gc.collect()
    out["heap_bytes_open_store"] = gc.mem_alloc() - before
    del st2
    for sync, label in ((True, "drain_records_per_s_cursor_saved_each_ack"),
                        (False, "drain_records_per_s_cursor_saved_every_10")):
        rates = []
        for _ in range(REPEATS):
            link = "national/boiler"
            st.cursors[link] = {}
            n = 0
            t_start = time.ticks_ms()
            for ref, _rec in st.pending(link):
                st.ack(link, ref, sync=sync)
                n += 1
                if not sync and n % 10 == 0:
                    st.save_cursor(link)
            st.save_cursor(link)
            dt = time.ticks_diff(time.ticks_ms(), t_start)
            rates.append(n * 1000 / max(dt, 1))
        out[label] = median(rates)
    out["drain_backlog_records"] = n
    blockdev.umount("/b")
    os.remove(img)
    print(json.dumps(out))


def main():
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    cmd = [exe, "-X", "heapsize=256k", os.path.abspath(__file__), "--child", root]
    if "--quick" in sys.argv:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit(1)
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["note"] = ("MicroPython unix port on the host CPU; rates are relative. Flash bytes are what "
                       "LittleFS programmed through the block device (read/prog size 32, 4 KiB blocks).")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    if MPY and "--child" in sys.argv:
        child(sys.argv[sys.argv.index("--child") + 1], "--quick" in sys.argv)
    else:
        main()
