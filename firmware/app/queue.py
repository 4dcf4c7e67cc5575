"""Bounded record queue of one uplink: records wait here until the center acknowledges them.

Items are `[kind, t, body]` where body is the encoded CP data area (a str; far smaller than the record
dict). They leave in the order they were produced, so after an outage each CN's DataTime increases.
Bounded by bytes and by count; when full the oldest realtime record goes first, then the oldest minute
record, then the oldest of anything else. RAM only: the flash store replaces this in the next issue.
"""

# Drop order when full: these kinds first (oldest of the kind), then the oldest item of any kind.
DROP_ORDER = ("rtd", "min")
# Bytes charged per item on top of its body: list + str headers + t on a 32-bit port, roughly.
ITEM_OVERHEAD = 48


class RecordQueue:
    def __init__(self, max_bytes=16384, max_items=256, name=""):
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.name = name
        self.items = []
        self.nbytes = 0
        self.drops = {}  # kind -> count
        self.dropped = 0
        self.high_water = 0
        self.on_drop = None  # callable(item) for logging

    def __len__(self):
        return len(self.items)

    def put(self, kind, t, body):
        """Appends a record; returns the list of items dropped to make room (possibly the new one)."""
        item = [kind, t, body]
        size = len(body) + ITEM_OVERHEAD
        dropped = []
        if size > self.max_bytes:
            self._count_drop(item)
            return [item]
        while self.items and (self.nbytes + size > self.max_bytes or len(self.items) >= self.max_items):
            dropped.append(self._drop_one())
        self.items.append(item)
        self.nbytes += size
        if len(self.items) > self.high_water:
            self.high_water = len(self.items)
        return dropped

    def _drop_one(self):
        idx = 0
        for kind in DROP_ORDER:
            found = -1
            for i in range(len(self.items)):
                if self.items[i][0] == kind:
                    found = i
                    break
            if found >= 0:
                idx = found
                break
        item = self.items.pop(idx)
        self.nbytes -= len(item[2]) + ITEM_OVERHEAD
        self._count_drop(item)
        return item

    def _count_drop(self, item):
        self.drops[item[0]] = self.drops.get(item[0], 0) + 1
        self.dropped += 1
        if self.on_drop is not None:
            self.on_drop(item)

    def head(self):
        return self.items[0] if self.items else None

    def done(self, item):
        """Removes an acknowledged item (by identity: it may have been dropped meanwhile)."""
        for i in range(len(self.items)):
            if self.items[i] is item:
                self.items.pop(i)
                self.nbytes -= len(item[2]) + ITEM_OVERHEAD
                return True
        return False

    def depth_by_kind(self):
        out = {}
        for it in self.items:
            out[it[0]] = out.get(it[0], 0) + 1
        return out
