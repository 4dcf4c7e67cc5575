"""Bounded record queue of an uplink (firmware/app/queue.py)."""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from app.queue import RecordQueue

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "64k"

OVERHEAD = 48  # bytes counted per item on top of its body (queue.ITEM_OVERHEAD)


def _body(n):
    return "x" * (n - OVERHEAD)


def test_fifo_and_ack_by_identity():
    q = RecordQueue(max_bytes=10000)
    for t in range(5):
        assert q.put("min", t * 60, "b%d" % t) == []
    assert len(q) == 5 and q.high_water == 5
    head = q.head()
    assert head[1] == 0
    assert q.done(head) and q.head()[1] == 60
    assert not q.done(head)  # already gone
    assert q.nbytes == sum(len("b%d" % t) + OVERHEAD for t in range(1, 5))


def test_full_queue_drops_oldest_realtime_first_then_oldest_minute():
    q = RecordQueue(max_bytes=100 * 6)
    q.put("restart", 0, _body(100))
    q.put("min", 60, _body(100))
    q.put("rtd", 90, _body(100))
    q.put("min", 120, _body(100))
    q.put("rtd", 150, _body(100))
    q.put("hour", 0, _body(100))
    assert q.nbytes == 600
    dropped = q.put("min", 180, _body(100))
    assert [(d[0], d[1]) for d in dropped] == [("rtd", 90)]
    dropped = q.put("min", 240, _body(100))
    assert [(d[0], d[1]) for d in dropped] == [("rtd", 150)]
    dropped = q.put("day", 0, _body(100))
    assert [(d[0], d[1]) for d in dropped] == [("min", 60)]
    # order of what is left is the order of arrival
    assert [(it[0], it[1]) for it in q.items] == [
        ("restart", 0),
        ("min", 120),
        ("hour", 0),
        ("min", 180),
        ("min", 240),
        ("day", 0),
    ]
    assert q.drops == {"rtd": 2, "min": 1} and q.dropped == 3


def test_only_period_records_left_drops_the_oldest():
    q = RecordQueue(max_bytes=200)
    q.put("hour", 0, _body(100))
    q.put("day", 0, _body(100))
    dropped = q.put("hour", 3600, _body(100))
    assert [(d[0], d[1]) for d in dropped] == [("hour", 0)]
    assert [(it[0], it[1]) for it in q.items] == [("day", 0), ("hour", 3600)]


def test_big_record_makes_room_for_itself_and_oversized_is_refused():
    q = RecordQueue(max_bytes=300)
    for t in range(3):
        q.put("min", t, _body(100))
    dropped = q.put("min", 9, _body(250))
    assert len(dropped) == 3 and len(q) == 1 and q.nbytes == 250
    dropped = q.put("hour", 10, _body(301))
    assert len(dropped) == 1 and dropped[0][1] == 10 and len(q) == 1


def test_item_count_limit_and_drop_callback():
    seen = []
    q = RecordQueue(max_bytes=100000, max_items=3)
    q.on_drop = seen.append
    for t in range(5):
        q.put("min", t, "b")
    assert len(q) == 3 and [it[1] for it in q.items] == [2, 3, 4]
    assert [it[1] for it in seen] == [0, 1]


def test_acked_item_dropped_meanwhile_is_harmless():
    q = RecordQueue(max_bytes=200)
    q.put("rtd", 0, _body(100))
    inflight = q.head()
    q.put("min", 60, _body(100))
    q.put("min", 120, _body(100))  # drops the in-flight rtd record
    assert not q.done(inflight)
    assert len(q) == 2 and q.nbytes == 200


def test_bounded_memory_under_churn():
    import gc

    q = RecordQueue(max_bytes=4000)
    gc.collect()
    base = gc.mem_alloc()
    for t in range(2000):
        q.put("rtd" if t % 3 else "min", t, "v=%d" % t)
        if t % 7 == 0:
            q.done(q.head())
    gc.collect()
    assert q.nbytes <= 4000
    used = gc.mem_alloc() - base
    assert used < 3 * 4000, used  # 64-bit unix objects are twice the 32-bit size the budget assumes
    for i in range(1, len(q.items)):
        assert q.items[i - 1][1] < q.items[i][1]
