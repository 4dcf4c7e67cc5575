"""Acceptance: `emlog platform serve` (a real child process) with 50 emulated loggers connected at once
plus fuzzed hostile connections: every valid frame stored exactly once, every 9014 correct, hostile
frames answered or dropped without disturbing the others, the server's memory bounded.

Participants are coroutines `(host, port) -> Outcome`. LIGHT senders come from host_tools.platform.load;
real-firmware loggers are added by appending factories to FIRMWARE_LOGGERS (each returns an Outcome with
the MN it used and how many distinct records it uploaded); the light senders fill up to N_LOGGERS.
"""

import asyncio
import sqlite3

from host_tools.platform.load import ServeProcess, make_mn, minute_frames, run_hostile, run_sender

N_LOGGERS = 50
FRAMES_PER_ROUND = 60
RESENT = 5  # each sender re-sends its first frames (as after a lost 9014): stored once
N_HOSTILE = 3
HOSTILE_ROUNDS = 40

# Factories for real-firmware participants: async def f(host, port, round_no) -> Outcome.
FIRMWARE_LOGGERS = []


class Outcome:
    def __init__(self, mn, records, frames_sent, ok, detail=""):
        self.mn = mn
        self.records = records  # distinct records expected in the store after this round
        self.frames_sent = frames_sent  # valid frames sent (including re-sends)
        self.ok = ok
        self.detail = detail


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
        frames_sent = 0
        for round_no in range(2):
            outcomes, hostile_replies = asyncio.run(one_round("127.0.0.1", server.port, round_no, people))
            bad = [(o.mn, o.detail) for o in outcomes if not o.ok]
            assert not bad, bad
            for o in outcomes:
                expected[o.mn] = expected.get(o.mn, 0) + o.records
                frames_sent += o.frames_sent
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
    good_frames = con.execute(
        "SELECT COUNT(*) FROM frames WHERE error IS NULL AND direction = 'in'"
    ).fetchone()[0]
    assert good_frames == frames_sent
    acked = con.execute("SELECT COUNT(*) FROM frames WHERE reply = '9014'").fetchone()[0]
    assert acked == frames_sent
    crc_errors = con.execute("SELECT COUNT(*) FROM frames WHERE error = 'crc' AND reply = '9011'").fetchone()[
        0
    ]
    assert crc_errors >= 2 * N_HOSTILE * HOSTILE_ROUNDS // 5
    # bounded memory: the second round (same load, new data) must not grow the server noticeably
    assert rss[1] - rss[0] < 8 * 1024, (rss_start, rss)
    assert rss[1] - rss_start < 48 * 1024, (rss_start, rss)
