"""Scenarios: what every emulated instrument measures over simulated time, and when it misbehaves.

A scenario file (JSON) is the single source of truth for a HIL run: the emulators serve its values and
`host_tools.reference_stats` computes the expected records from the same values, independently of the
firmware.

```json
{
  "name": "reference",
  "start": "2024-05-01T00:00:00+08:00",      // sim instant of offset 0 (ISO with offset, or epoch seconds)
  "seed": 1,
  "devices": {
    "cems": {
      "points": {
        "so2": {"base": 35, "amp": 8, "period_s": 900, "noise": 1.5, "min": 0},
        "o2":  {"base": 6.0, "amp": 0.8, "period_s": 1200},
        "no":  {"steps": [[0, 20], [1800, 30]]},
        "maintain": 0
      },
      "status": [{"from": 600, "to": 660, "flag": "C"}],
      "overrides": [{"from": 900, "to": 930, "point": "so2", "value": 650}],
      "faults": [{"from": 300, "to": 420, "kind": "silent"},
                 {"from": 0, "to": 3600, "kind": "crc", "every": 3}]
    }
  }
}
```

Times (`from`, `to`, steps) are seconds relative to `start`; windows are half-open `[from, to)`. The value
of a point at sim time t is the value for tick `k = floor(t)`. Point generators: a number (constant),
`steps` (piecewise constant), or `base + amp * sin(2 pi (k + phase_s) / period_s) + noise * u(k)` with a
deterministic pseudo-random `u` in [-1, 1] from (seed, device, point, k), clipped to `min`/`max`.
`status` windows put the instrument in a state whose HJ 212 flag is `flag` (C calibration, M maintenance,
D fault): the emulator raises the status bit the template maps to that flag. `overrides` force a value
(e.g. above the measuring range, flag T). Fault kinds: `silent` (no reply), `late` (reply after
`delay_ms` real milliseconds), `chunked` (reply in `chunks` pieces `gap_ms` apart), `crc` (a data byte
corrupted, CRC left as it was), `exception` (exception `code`, default 4), `garbage` (random bytes instead
of the reply), `wrong_address` (a valid reply, with poisoned values, from another address). `platform_down`
windows (optionally with `center`) stop the platform receiver. `"extends": "other.json"` starts from
another scenario file (see `merge`). A fault
applies to every request in its window unless `every: n` (each n-th request of that device, counted from
its first request in the window) is given.
"""

import json
import math
import time
import zlib
from datetime import datetime
from pathlib import Path

FAULT_KINDS = ("silent", "late", "chunked", "crc", "exception", "garbage", "wrong_address")
STATUS_FLAGS = ("C", "M", "D")


class ScenarioError(ValueError):
    pass


def parse_start(value):
    """Sim epoch seconds (UTC) from an ISO-8601 string with an offset, or a number."""
    if isinstance(value, (int, float)):
        return int(value)
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ScenarioError("start %r is not an ISO date-time like 2024-05-01T00:00:00+08:00"
                            % (value,)) from exc
    if dt.tzinfo is None:
        raise ScenarioError("start %r needs a UTC offset, e.g. +08:00" % (value,))
    return int(dt.timestamp())


def _unit_noise(seed, device, point, k):
    # Deterministic and cheap; both the emulator and the reference use it, so runs are reproducible.
    h = zlib.crc32(("%d:%s:%s:%d" % (seed, device, point, k)).encode())
    return (h / 2147483647.5) - 1.0


class PointGen:
    __slots__ = ("const", "steps", "base", "amp", "period", "phase", "noise", "lo", "hi", "seed", "dev", "pt")

    def __init__(self, spec, seed, dev, pt):
        self.seed = seed
        self.dev = dev
        self.pt = pt
        self.const = None
        self.steps = None
        if isinstance(spec, (int, float)):
            self.const = spec
            return
        if not isinstance(spec, dict):
            raise ScenarioError("%s.%s: a point is a number or an object, got %r" % (dev, pt, spec))
        if "steps" in spec:
            steps = sorted((float(t), v) for t, v in spec["steps"])
            if not steps:
                raise ScenarioError("%s.%s: steps is empty" % (dev, pt))
            self.steps = steps
        self.base = float(spec.get("base", 0.0))
        self.amp = float(spec.get("amp", 0.0))
        self.period = float(spec.get("period_s", 3600.0))
        self.phase = float(spec.get("phase_s", 0.0))
        self.noise = float(spec.get("noise", 0.0))
        self.lo = spec.get("min")
        self.hi = spec.get("max")
        if self.period <= 0:
            raise ScenarioError("%s.%s: period_s must be > 0" % (dev, pt))

    def value(self, k):
        """Value at tick offset k (integer seconds from the scenario start)."""
        if self.const is not None:
            return self.const
        if self.steps is not None:
            v = self.steps[0][1]
            for t, sv in self.steps:
                if k >= t:
                    v = sv
                else:
                    break
            return v
        v = self.base
        if self.amp:
            v += self.amp * math.sin(2.0 * math.pi * (k + self.phase) / self.period)
        if self.noise:
            v += self.noise * _unit_noise(self.seed, self.dev, self.pt, k)
        if self.lo is not None and v < self.lo:
            v = self.lo
        if self.hi is not None and v > self.hi:
            v = self.hi
        return v


def _windows(dev, items, what):
    out = []
    for w in items or []:
        if not isinstance(w, dict) or "from" not in w or "to" not in w:
            raise ScenarioError("%s: each %s entry needs from and to (seconds from start)" % (dev, what))
        if w["to"] <= w["from"]:
            raise ScenarioError("%s: %s window %r ends before it starts" % (dev, what, w))
        out.append(w)
    return out


class DeviceScenario:
    """Values, states and faults of one instrument (by device name in the site config)."""

    def __init__(self, name, spec, seed):
        self.name = name
        self.points = {}
        for pt, ps in (spec.get("points") or {}).items():
            self.points[pt] = PointGen(ps, seed, name, pt)
        self.status = _windows(name, spec.get("status"), "status")
        for w in self.status:
            if w.get("flag") not in STATUS_FLAGS:
                raise ScenarioError("%s: status flag must be one of C M D, got %r" % (name, w.get("flag")))
        self.overrides = _windows(name, spec.get("overrides"), "overrides")
        self.faults = _windows(name, spec.get("faults"), "faults")
        for w in self.faults:
            if w.get("kind") not in FAULT_KINDS:
                raise ScenarioError("%s: fault kind must be one of %s, got %r"
                                    % (name, " ".join(FAULT_KINDS), w.get("kind")))

    def value(self, point, k):
        for w in self.overrides:
            if w.get("point") == point and w["from"] <= k < w["to"]:
                return w["value"]
        gen = self.points.get(point)
        return 0 if gen is None else gen.value(k)

    def state(self, k):
        """The status flag (C/M/D) active at tick offset k, or None."""
        for w in self.status:
            if w["from"] <= k < w["to"]:
                return w["flag"]
        return None

    def fault(self, k):
        """The fault window active at tick offset k (first listed wins), or None."""
        for w in self.faults:
            if w["from"] <= k < w["to"]:
                return w
        return None

    def answers(self, k):
        """False when no valid reply can be obtained for tick k (a fault that hits every request).

        A chunked reply is still a whole, valid reply: only its bytes arrive in pieces."""
        w = self.fault(k)
        return w is None or w.get("kind") == "chunked" or int(w.get("every", 1)) > 1


def merge(base, over):
    """`over` applied to `base`: top-level keys replace, devices merge (points by name, lists replace)."""
    out = dict(base)
    for key, val in over.items():
        if key not in ("devices", "extends"):
            out[key] = val
    devices = {k: dict(v) for k, v in (base.get("devices") or {}).items()}
    for name, spec in (over.get("devices") or {}).items():
        d = devices.setdefault(name, {})
        for key, val in spec.items():
            if key == "points":
                pts = dict(d.get("points") or {})
                pts.update(val)
                d["points"] = pts
            else:
                d[key] = val
    out["devices"] = devices
    return out


class Scenario:
    def __init__(self, data, source="<scenario>"):
        if not isinstance(data, dict):
            raise ScenarioError("%s: a scenario is a JSON object" % source)
        self.source = source
        self.name = data.get("name", Path(str(source)).stem)
        self.start = parse_start(data.get("start", "2024-05-01T00:00:00+08:00"))
        self.seed = int(data.get("seed", 0))
        self.platform_down = _windows("platform", data.get("platform_down"), "platform_down")
        self.devices = {}
        for dev, spec in (data.get("devices") or {}).items():
            self.devices[dev] = DeviceScenario(dev, spec, self.seed)
        self.data = data

    @classmethod
    def load(cls, path):
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScenarioError("cannot read scenario %s: %s" % (path, exc.strerror)) from exc
        except ValueError as exc:
            raise ScenarioError("scenario %s is not valid JSON: %s" % (path, exc)) from exc
        if isinstance(data, dict) and data.get("extends"):
            base = cls.load(path.parent / data["extends"]).data
            data = merge(base, data)
        return cls(data, str(path))

    def with_seed(self, seed):
        data = dict(self.data)
        data["seed"] = seed
        return Scenario(data, self.source)

    def device(self, name):
        d = self.devices.get(name)
        if d is None:
            d = DeviceScenario(name, {}, self.seed)
            self.devices[name] = d
        return d


class SimClock:
    """The harness clock of the env contract: sim = start + (time_ns() - t0_ns) * scale / 1e9."""

    def __init__(self, sim_start, scale=1.0, t0_ns=None):
        self.sim_start = float(sim_start)
        self.scale = float(scale)
        self.t0_ns = time.time_ns() if t0_ns is None else int(t0_ns)

    def now(self):
        return self.sim_start + (time.time_ns() - self.t0_ns) * self.scale / 1e9

    def real_at(self, sim_t):
        """Wall-clock seconds (time.time()) at which sim time reaches sim_t."""
        return (self.t0_ns + (sim_t - self.sim_start) / self.scale * 1e9) / 1e9

    def real_delay(self, sim_t):
        return max(0.0, self.real_at(sim_t) - time.time())
