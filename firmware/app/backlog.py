"""Which stored record an uplink sends next, and its acknowledgement in the store (app/store.py).

After (re)connecting, a link drains `store.pending(name)` in time order (a backlog pass). Records produced
meanwhile are handed over at once (`notify`, at most LIVE_MAX held, as their CP text: never the record)
and sent between backlog records, at most one live record after each backlog record (oldest live
first), so live data is not starved while an outage's backlog drains. At most BACKLOG_SLOTS links run a
pass at a time (a pass holds ~20 KB: decoded heads and read batches); the others send their live records
and wait for a slot. Acks are written to the cursor file when the link goes idle, every SAVE_ACKS acks
while draining and at shutdown (a power cut re-sends at most those: duplicates, never losses).
"""

from micropython import const

from app import log

LIVE_MAX = const(4)  # live records held for interleaving; more wait in the store for the pass
SAVE_ACKS = const(16)  # acks between cursor writes while a backlog drains
BACKLOG_SLOTS = const(2)  # links draining a backlog at once


class Slots:
    """Shared by every uplink: at most `free` backlog passes at a time; waiting backlogs are woken."""

    def __init__(self, n):
        self.free = n
        self.waiting = []

    def take(self, b):
        if self.free > 0:
            self.free -= 1
            return True
        if b not in self.waiting:
            self.waiting.append(b)
        return False

    def give(self):
        self.free += 1
        while self.waiting:
            self.waiting.pop(0).ev.set()


SLOTS = Slots(BACKLOG_SLOTS)


def _ref_in(items, ref):
    for i in range(len(items)):
        if items[i][0] == ref:
            return i
    return -1


class Backlog:
    def __init__(self, store, name, c, ev, hold):
        """`store` the app.store.Store (None: nothing stored to send), `name` the link, `c` the uplink's
        counters, `ev` the asyncio.Event the uplink's session waits on when there is nothing to send,
        `hold(ref, rec)` -> what the link sends of a stored record: (ref, kind, t, CP text or None)."""
        self.store = store
        self.name = name
        self.c = c
        self.ev = ev
        self.hold = hold
        self.live = []  # [(ref, kind, t, cp)] produced while connected, not yet sent
        self.done = False  # the last pass found nothing: wait for news
        self._pass = None  # store.pending(name) generator while a pass runs (holds a SLOTS slot)
        self._took_live = False
        self._unsaved = 0  # acks not yet written to the cursor file

    def start(self):
        """A session starts: a new backlog pass is due."""
        self.live = []
        self._pass = None
        self.done = self.store is None
        self._took_live = False

    def stop(self):
        """The session ended: the pass (file positions, decoded records) and live records are let go."""
        self._end_pass()
        if self in SLOTS.waiting:
            SLOTS.waiting.remove(self)
        self.live = []

    def notify(self, item):
        """A record of this link was just stored while connected: `item` = hold(ref, rec)."""
        if len(self.live) >= LIVE_MAX:
            self.done = False  # too many at once: the backlog pass sends the rest in order
        else:
            self.live.append(item)
        self.ev.set()

    def recheck(self):
        """Something was stored without `notify` (the store's own drop alarm): look at the store again."""
        self.done = False
        self.ev.set()

    def count(self):
        return self.store.pending_count(self.name) if self.store is not None else 0

    def next_record(self):
        """(ref, kind, t, cp) to send next: live and backlog records alternate; None when nothing waits."""
        store = self.store
        while True:
            if not self.done and self._pass is None and SLOTS.take(self):
                self._pass = store.pending(self.name)
            backlog = self._pass is not None  # False: drained, or waiting for a slot
            if self.live and (not self._took_live or not backlog):
                item = self.live.pop(0)
                if store.is_acked(self.name, item[0]):
                    continue  # sent from the backlog meanwhile
                self._took_live = True
                self.c["live"] += 1
                return item
            if not backlog:
                return None
            try:
                ref, rec = next(self._pass)
            except StopIteration:
                self._end_pass()
                self.done = True
                continue
            i = _ref_in(self.live, ref)
            if i >= 0:
                self.live.pop(i)
            self._took_live = False
            self.c["backlog"] += 1
            return self.hold(ref, rec)

    def _end_pass(self):
        if self._pass is not None:
            self._pass = None
            SLOTS.give()

    def ack(self, ref):
        if not self.store.ack(self.name, ref, sync=False):
            self.done = False  # acked-ahead set full: it stays pending and is sent again
            return
        self._unsaved += 1
        if self._unsaved >= SAVE_ACKS:
            self.save_cursor()

    def save_cursor(self):
        """Persists the acks so far (called when idle, every SAVE_ACKS acks, and at shutdown)."""
        if self._unsaved and self.store is not None:
            self._unsaved = 0
            try:
                self.store.save_cursor(self.name)
            except OSError as exc:
                log.error("uplink", "%s: cursor not saved (%s)" % (self.name, exc))
