"""Acceptance: `emlog platform serve` (a real child process) with 50 emulated loggers connected at once
plus fuzzed hostile connections: every valid frame stored exactly once, every 9014 correct, hostile
frames answered or dropped without disturbing the others, the server's memory bounded.

Participants are coroutines `(host, port, round_no) -> Outcome`. LIGHT senders come from
host_tools.platform.load; FIRMWARE_LOGGERS run the real firmware (MicroPython unix port, emulated
instruments: host_tools.simulate.Simulation) with its center pointed at the serve process through a
FrameTap, which counts on the logger's side what it sent (frames, distinct records) and the 9014s it got
back; the light senders fill up to N_LOGGERS. The serve process runs in commissioning mode (no --devices):
every MN is accepted.
"""

import asyncio
import sqlite3
import tempfile

from host_tools.platform.load import FrameTap, ServeProcess, make_mn, minute_frames, run_hostile, run_sender

N_LOGGERS = 50
FRAMES_PER_ROUND = 60
RESENT = 5  # each sender re-sends its first frames (as after a lost 9014): stored once
N_HOSTILE = 3
HOSTILE_ROUNDS = 40

# Real-firmware participants: a small fast site (one CEMS on one 115200-baud bus), one center, minute
# records every sim minute, FW_SPAN_S sim seconds per round at x FW_SCALE.
N_FIRMWARE = 3
FW_SITE = "nothing-lost"
FW_SCENARIO = "nothing_lost"
FW_SCALE = 60.0
FW_LEAD_S = 10.0
FW_SPAN_S = 240.0


class Outcome:
    def __init__(self, mn, records, frames_sent, ok, detail="", acks_wanted=None):
        self.mn = mn
        self.records = records  # distinct records expected in the store after this round
        self.frames_sent = frames_sent  # valid frames sent (including re-sends)
        self.acks_wanted = frames_sent if acks_wanted is None else acks_wanted  # frames owed a 9014
        self.ok = ok
        self.detail = detail


def _firmware_site(mn):
    from hil_helpers import load_site

    site = load_site(FW_SITE)
    site["centers"] = site["centers"][:1]
    site["logger"]["min_interval_min"] = 1
    site["stations"][0]["mn"] = mn
    return site


def _run_firmware(mn, tap, out_dir):
    """One logger for FW_SPAN_S sim seconds (blocking; run in a thread). Returns (ok, detail, final stats)."""
    from hil_helpers import load_scenario

    from host_tools.simulate import Simulation

    site = _firmware_site(mn)
    scenario = load_scenario(FW_SCENARIO)
    center = site["centers"][0]["name"]
    sim = Simulation(site, scenario, out_dir, time_scale=FW_SCALE, lead_s=FW_LEAD_S,
                     centers={center: ("127.0.0.1", tap.port)})
    sim.start()
    try:
        end = scenario.start + FW_SPAN_S
        reached = sim.wait_until(end, timeout=(FW_SPAN_S + FW_LEAD_S) / FW_SCALE * 3 + 30)
        # let the last upload be acknowledged (the logger's own view is then complete)
        sim.fw.wait_for(lambda f: tap.idle(), 10)
    finally:
        sim.stop()
    safe = sim.fw.safe_mode()
    ok = reached and not safe and sim.fw.stats is not None
    detail = "reached %s, safe mode %s, exit %s, errors %s, tail:\n%s" % (
        reached, safe, sim.fw.returncode, sim.firmware_lines("ERROR")[-5:], sim.fw.log_tail(15))
    return ok, detail, sim.fw.stats or {}


def firmware_logger(k):
    async def run(host, port, round_no):
        # A fresh logger (new flash) each round, so its own MN: the serve process sets its clock to real
        # time (1013 -> 1012), so two rounds of one MN would upload the same minutes.
        mn = make_mn(0xF1000000 + 16 * round_no + k)
        tap = await FrameTap.open(host, port)
        try:
            with tempfile.TemporaryDirectory(prefix="emlog-load-fw-") as out:
                ok, detail, stats = await asyncio.to_thread(_run_firmware, mn, tap, out)
        finally:
            await tap.close()
        kinds = {}
        for _, cn, _ in tap.records:
            kinds[cn] = kinds.get(cn, 0) + 1
        # The firmware's own count of acknowledged records; the last 9014 may reach it after it stopped.
        fw_acked = sum(link.get("acked", 0) for link in (stats.get("links") or {}).values())
        records = len(tap.records)
        ok = (
            ok
            and tap.bad == 0
            and tap.acks == tap.acks_wanted
            and all(r[0] == mn for r in tap.records)
            and kinds.get("2081") == 1  # the restart notice of its boot
            and kinds.get("2051", 0) >= FW_SPAN_S // 60 - 1  # a minute record per sim minute
            and records - 1 <= fw_acked <= records
        )
        detail = "records %s, frames %d (%s), bad %d, 9014 %d of %d, firmware acked %d; %s" % (
            kinds, tap.frames, tap.cns, tap.bad, tap.acks, tap.acks_wanted, fw_acked, detail)
        return Outcome(mn, records, tap.frames, ok, detail, acks_wanted=tap.acks_wanted)

    return run


FIRMWARE_LOGGERS = [firmware_logger(k) for k in range(N_FIRMWARE)]


def light_logger(i):
    mn = make_mn(i)

    async def run(host, port, round_no):
        frames = minute_frames(mn, FRAMES_PER_ROUND, start=round_no * FRAMES_PER_ROUND)
        res = await run_sender(host, port, mn, frames + frames[:RESENT], window=1)
        ok = res.error is None and res.bad_acks == 0 and res.acked == len(frames) + RESENT
        return Outcome(
            mn, FRAMES_PER_ROUND, res.sent, ok, "%s acked %d bad %d" % (res.error, res.acked, res.bad_acks)
        )

    return run


def participants():
    light = [light_logger(i) for i in range(N_LOGGERS - len(FIRMWARE_LOGGERS))]
    return list(FIRMWARE_LOGGERS) + light


async def one_round(host, port, round_no, people):
    jobs = [p(host, port, round_no) for p in people]
    jobs += [
        run_hostile(host, port, seed=100 * round_no + k, rounds=HOSTILE_ROUNDS) for k in range(N_HOSTILE)
    ]
    results = await asyncio.wait_for(asyncio.gather(*jobs), 300)
    return results[: len(people)], results[len(people) :]


def test_fifty_loggers_and_hostile_connections(tmp_path):
    db = tmp_path / "platform.db"
    server = ServeProcess(db)
    people = participants()
    try:
        rss_start = server.rss_kib()
        rss = []
        expected = {}
        frames_sent = {}
        acks_wanted = {}
        for round_no in range(2):
            outcomes, hostile_replies = asyncio.run(one_round("127.0.0.1", server.port, round_no, people))
            bad = [(o.mn, o.detail) for o in outcomes if not o.ok]
            assert not bad, bad
            for o in outcomes:
                expected[o.mn] = expected.get(o.mn, 0) + o.records
                frames_sent[o.mn] = frames_sent.get(o.mn, 0) + o.frames_sent
                acks_wanted[o.mn] = acks_wanted.get(o.mn, 0) + o.acks_wanted
            # each hostile connection sends HOSTILE_ROUNDS/5 CRC-broken frames with a readable header
            assert all(n >= HOSTILE_ROUNDS // 5 for n in hostile_replies), hostile_replies
            rss.append(server.rss_kib())
    finally:
        output = server.stop()
    assert server.proc.returncode == 0, output
    assert "Traceback" not in output

    con = sqlite3.connect(str(db))
    per_mn = dict(con.execute("SELECT mn, COUNT(*) FROM records GROUP BY mn"))
    assert per_mn == expected  # every record exactly once, nothing from hostile connections
    dupes = con.execute(
        "SELECT COUNT(*) FROM (SELECT mn, cn, datatime FROM records GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)"
    ).fetchone()[0]
    assert dupes == 0
    good_frames = dict(
        con.execute("SELECT mn, COUNT(*) FROM frames WHERE error IS NULL AND direction = 'in' GROUP BY mn")
    )
    assert good_frames == frames_sent
    acked = dict(con.execute("SELECT mn, COUNT(*) FROM frames WHERE reply = '9014' GROUP BY mn"))
    assert acked == acks_wanted
    crc_errors = con.execute("SELECT COUNT(*) FROM frames WHERE error = 'crc' AND reply = '9011'").fetchone()[
        0
    ]
    assert crc_errors >= 2 * N_HOSTILE * HOSTILE_ROUNDS // 5
    # bounded memory: the second round (same load, new data) must not grow the server noticeably
    assert rss[1] - rss[0] < 8 * 1024, (rss_start, rss)
    assert rss[1] - rss_start < 48 * 1024, (rss_start, rss)
