"""Device reader: an instrument template (protocols/templates/<id>.json) turned into planned reads.

One poll sends every planned read through the bus owner and decodes the values in place
(raw * scale + offset, by protocols.modbus.plan). All reads must succeed, otherwise the poll gives
flag B and none of its values are used (a half-updated set could mix two instants). On success the
instrument flag is the first status rule [flag, point, mask] whose `point & mask` is non-zero, else N.
Range (T) is applied per value by the channels, which may override the template's range.
"""

import json

from app import log
from app.bus import BusTimeout
from protocols.modbus.plan import plan_reads


def templates_dir():
    try:
        import protocols

        path = protocols.__file__
        return path[: path.rfind("/")] + "/templates"
    except Exception:
        return "protocols/templates"


def load_template(name, folder=None):
    with open((folder or templates_dir()) + "/" + name + ".json") as f:
        return json.load(f)


class Device:
    """One instrument on a bus. After poll(): `flag` ("B" when it did not answer) and `values`."""

    def __init__(self, cfg, template, bus):
        self.name = cfg["name"]
        self.address = cfg["address"]
        self.poll_s = cfg.get("poll_s", 1)
        self.bus = bus
        pts = template["points"]
        self.plan = plan_reads(pts, template.get("table", "holding"), template.get("order", "ABCD"),
                               max_gap=template.get("max_gap", 0))
        names = self.plan.names
        self.index = {}
        for i in range(len(names)):
            self.index[names[i]] = i
        self.requests = self.plan.requests(self.address)
        self.values = [None] * len(names)
        self._scratch = [None] * len(names)
        self.units = [pts[n].get("unit") for n in names]
        self.ranges = [pts[n].get("range") for n in names]
        self.status = [(s[0], self.index[s[1]], s[2]) for s in template.get("status", ())]
        self.flag = "B"
        self.t = None  # tick of the last poll attempt
        self.ok = 0  # successful polls
        self.late = 0  # polls that completed after their tick's second: not used
        self.missed = 0  # due ticks with no poll started in time
        self.link = bus.link(self.name, self.address)

    def point(self, name):
        i = self.index.get(name)
        if i is None:
            raise ValueError("device %s has no point %r" % (self.name, name))
        return i

    def compact(self):
        """Drops what only channel set-up needs (names, units, ranges, plan bookkeeping): RAM matters."""
        self.index = None
        self.units = None
        self.ranges = None
        self.plan.compact()

    def due(self, t):
        return t % self.poll_s == 0

    def miss(self, t):
        """The tick passed without a poll (bus too slow): B until the next poll."""
        self.t = t
        self.flag = "B"
        self.missed += 1
        self._lost(t, "missed")

    def _lost(self, t, why):
        # DEBUG: one line per tick without a usable sample, with why, so a technician (or the HIL harness)
        # can tell a loaded bus or host (missed, late) from a device that fails (offline, timeout, error)
        if log.level <= log.DEBUG:
            log.debug("acq", "lost sample dev=%s tick=%d (%s)" % (self.name, t, why))

    async def poll(self, t, now=None, deadline=None):
        """Polls every read for tick t; True on success. `now()` (sim) against `deadline`: a reply that
        completes at or after the deadline may hold the next second's value and is not used."""
        self.t = t
        self.flag = "B"
        bus = self.bus
        link = self.link
        if not bus.begin(link, t):
            self._lost(t, "offline")
            return False
        raw = self._scratch
        plan = self.plan
        reqs = self.requests
        try:
            for i in range(len(reqs)):
                frame = await bus.transact(link, reqs[i])
                plan.decode(i, frame, raw)  # before any await: the frame is the bus's buffer
        except BusTimeout:
            bus.end(link, False, True, t)
            self._lost(t, "timeout")
            return False
        except Exception:  # counted by the bus (or a decode surprise): nothing from this poll is used
            bus.end(link, False, False, t)
            self._lost(t, "error")
            return False
        bus.end(link, True, False, t)
        if deadline is not None and now is not None and now() >= deadline:
            self.late += 1
            self._lost(t, "late")
            return False
        self._scratch = self.values
        self.values = raw
        self.flag = self._status_flag(raw)
        self.ok += 1
        return True

    def _status_flag(self, v):
        for flag, i, mask in self.status:
            x = v[i]
            if x is not None and int(x) & mask:
                return flag
        return "N"

    def state(self):
        return {"polls_ok": self.ok, "late": self.late, "missed": self.missed, "flag": self.flag}
