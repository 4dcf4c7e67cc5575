"""Alarm state machine (debounce on both edges) and the wire rate limiter. See firmware/RULES.md."""


class Alarm:
    """Idle/active with debounce: raises after `on_s` of continuous `on`, clears after `off_s` of
    continuous `off`. Callers pass separate on/off conditions so hysteresis lives in the rule; None
    (condition unknown, e.g. no valid data) changes nothing, so a data gap neither raises nor clears."""

    def __init__(self, on_s=0, off_s=0):
        self.on_s = on_s
        self.off_s = off_s
        self.active = False
        self.since = None  # when the pending edge condition began
        self.t0 = None  # when the alarm became active

    def step(self, t, on, off):
        """Returns "start", "end" or None."""
        if not self.active:
            if on is None:
                return None
            if not on:
                self.since = None
                return None
            if self.since is None:
                self.since = t
            if t - self.since >= self.on_s:
                self.active = True
                self.since = None
                self.t0 = t
                return "start"
            return None
        if off is None:
            return None
        if not off:
            self.since = None
            return None
        if self.since is None:
            self.since = t
        if t - self.since >= self.off_s:
            self.active = False
            self.since = None
            return "end"
        return None


class WireLimiter:
    """Token bucket per alarm key: at most `burst` events at once, then one per `gap_s`. An "end" is
    sent exactly when its "start" was sent, so the platform never sees a dangling alarm."""

    def __init__(self, gap_s=60, burst=5):
        self.gap_s = gap_s
        self.burst = burst
        self.buckets = {}  # key -> [tokens, last_t, start_sent]
        self.suppressed = 0

    def allow(self, key, t, state):
        b = self.buckets.get(key)
        if b is None:
            b = [float(self.burst), t, False]
            self.buckets[key] = b
        if state == "end":
            ok = b[2]
            b[2] = False
            if not ok:
                self.suppressed += 1
            return ok
        if self.gap_s > 0:
            b[0] = min(float(self.burst), b[0] + (t - b[1]) / self.gap_s)
        else:
            b[0] = float(self.burst)
        b[1] = t
        if b[0] >= 1.0:
            b[0] -= 1.0
            if state == "start":
                b[2] = True
            return True
        self.suppressed += 1
        return False
