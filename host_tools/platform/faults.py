"""Emulated platform faults, for HIL tests of the logger's uplink (refused connections, lost, late,
duplicated or garbled acknowledgements, dropped links, half-open sockets, unsolicited commands).

A `PlatformFaults` is passed to `PlatformServer(faults=...)`. The server asks it at three points:
`accept(conn)` when a logger connects, `after_frame(conn)` after each received frame and
`outgoing(conn, data, kind)` for every reply it is about to send. Every injected fault is appended to
`self.log` as (monotonic time, fault name, detail) so a test can prove it happened.
Probabilities use a private seeded `random.Random`, so a run is reproducible.
"""

import random
import time


class PlatformFaults:
    def __init__(
        self,
        seed=0,
        refuse=False,
        refuse_first=0,
        close_after_frames=None,
        drop_mid_frame=False,
        half_open_after=None,
        ack_delay=0.0,
        ack_omit=0.0,
        ack_duplicate=0.0,
        ack_garble=0.0,
        random_commands=None,
    ):
        self.rng = random.Random(seed)
        self.refuse = refuse  # close every connection as soon as it is accepted
        self.refuse_first = refuse_first  # ... or only the first N connections
        self.close_after_frames = close_after_frames  # close a connection after N received frames
        self.drop_mid_frame = drop_mid_frame  # with close_after_frames: send half the reply, then close
        self.half_open_after = half_open_after  # stop reading and writing after N frames, keep socket
        self.ack_delay = ack_delay  # seconds before each 9014
        self.ack_omit = ack_omit  # probability a 9014 is not sent
        self.ack_duplicate = ack_duplicate  # probability a 9014 is sent twice
        self.ack_garble = ack_garble  # probability one byte of a 9014 is flipped
        # (interval_s, [(cn, [(key, value), ...]), ...]): the server sends one at random every interval
        self.random_commands = random_commands
        self.log = []
        self._accepted = 0

    def _note(self, name, detail=""):
        self.log.append((time.monotonic(), name, detail))

    def count(self, name):
        return sum(1 for entry in self.log if entry[1] == name)

    def accept(self, conn):
        self._accepted += 1
        if self.refuse or self._accepted <= self.refuse_first:
            self._note("refuse", conn.peer)
            return False
        return True

    def after_frame(self, conn):
        """None, "close", "drop" (close mid-reply) or "half-open"."""
        n = conn.frames
        if self.half_open_after is not None and n >= self.half_open_after:
            self._note("half-open", conn.peer)
            return "half-open"
        if self.close_after_frames is not None and n >= self.close_after_frames:
            name = "drop" if self.drop_mid_frame else "close"
            self._note(name, conn.peer)
            return name
        return None

    def outgoing(self, conn, data, kind):
        """[(delay_s, bytes), ...] to write in place of `data`; [] omits it. Only 9014 is disturbed."""
        if kind != "9014":
            return [(0.0, data)]
        if self.ack_omit and self.rng.random() < self.ack_omit:
            self._note("ack-omit", conn.peer)
            return []
        if self.ack_garble and self.rng.random() < self.ack_garble:
            buf = bytearray(data)
            i = self.rng.randrange(6, len(buf) - 6)  # inside the segment: CRC check must catch it
            buf[i] = ord("#") if buf[i] != ord("#") else ord("0")
            data = bytes(buf)
            self._note("ack-garble", conn.peer)
        out = [(self.ack_delay, data)]
        if self.ack_delay:
            self._note("ack-delay", conn.peer)
        if self.ack_duplicate and self.rng.random() < self.ack_duplicate:
            out.append((0.0, data))
            self._note("ack-duplicate", conn.peer)
        return out

    def pick_command(self):
        if not self.random_commands:
            return None
        cn, cp = self.rng.choice(self.random_commands[1])
        self._note("random-command", cn)
        return cn, cp
