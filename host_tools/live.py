"""Live progress of `emlog simulate`: sim time, latest value and flag per channel, alarms, link state.

On a terminal a compact status block is redrawn in place (ANSI cursor-up + clear) at most every
`min_redraw_s` real seconds; otherwise (CI logs, pipes) one plain line every `plain_every_s` sim seconds.

    view = LiveView(sys.stdout, offset_min=480, start=t0, end=t1)
    view.observe(records)                    # the received records so far (list; only new ones are read)
    view.update(now, stats=fw_stats, alarms=warn_lines, platform_down={"national": False})
    view.finish(now, ...)                    # last block / line, cursor left below it
    update_from_sim(view, sim)               # the same from a host_tools.simulate.Simulation
"""

import shutil
import sys
import time

from host_tools.report import NAMES, is_pollutant

CSI = "\x1b["


def _clock_text(t, offset_min):
    return "%04d-%02d-%02d %02d:%02d:%02d" % time.gmtime(t + 60 * offset_min)[:6]


def _num(v):
    if isinstance(v, float):
        return "%.4g" % v
    return str(v)


class LiveView:
    def __init__(self, stream=None, tty=None, offset_min=480, start=None, end=None, plain_every_s=300.0,
                 min_redraw_s=0.25, clock=time.monotonic, width=None):
        self.stream = stream or sys.stdout
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.offset_min = offset_min
        self.start = start
        self.end = end
        self.plain_every_s = float(plain_every_s)
        self.min_redraw_s = min_redraw_s
        self.clock = clock
        self.width = width
        self.latest = {}  # station -> {code: (t, value, flag)}
        self.frames = {}  # cn -> count
        self.n_seen = 0
        self._drawn = 0  # lines of the block on screen
        self._last_draw = None
        self._next_plain = None

    # ---- input --------------------------------------------------------------------------------------
    def observe(self, records):
        """Reads the records appended since the last call (the list only grows)."""
        for r in records[self.n_seen:]:
            self.frames[r.get("cn")] = self.frames.get(r.get("cn"), 0) + 1
            kind = r.get("kind")
            if kind not in ("rtd", "min") or r.get("error") or r.get("t") is None:
                continue
            per = self.latest.setdefault(r.get("station") or r.get("mn") or "?", {})
            for code, vals in (r.get("values") or {}).items():
                if not isinstance(vals, dict):
                    continue
                v = vals.get("Rtd") if kind == "rtd" else vals.get("Avg")
                old = per.get(code)
                if v is not None and (old is None or r["t"] >= old[0]):
                    per[code] = (r["t"], v, vals.get("Flag"))
        self.n_seen = len(records)

    # ---- rendering ----------------------------------------------------------------------------------
    def _head(self, now, stats):
        parts = ["sim %s" % _clock_text(now, self.offset_min)]
        if self.start is not None:
            done = now - self.start
            if self.end is not None and self.end > self.start:
                frac = max(0.0, min(1.0, done / (self.end - self.start)))
                parts.append("%+ds/%ds %3d%%" % (done, self.end - self.start, frac * 100))
            else:
                parts.append("%+ds" % done)
        total = sum(self.frames.values())
        parts.append("frames %d%s" % (total, " (" + " ".join(
            "%s:%d" % (k, v) for k, v in sorted(self.frames.items(), key=lambda kv: str(kv[0]))) + ")"
            if total else ""))
        lag = (stats or {}).get("lag")
        if lag is not None:
            parts.append("lag %s" % (_num(lag) if not isinstance(lag, dict) else
                                     " ".join("%s=%s" % (k, _num(v)) for k, v in sorted(lag.items()))))
        return "  ".join(parts)

    def _links(self, stats, platform_down):
        centers = dict((stats or {}).get("centers") or {})
        names = sorted(set(centers) | set(platform_down or {}), key=str)
        out = []
        for name in names:
            c = centers.get(name) or {}
            bits = ["platform %s" % ("DOWN" if (platform_down or {}).get(name) else "up")]
            if c:
                bits.append("connected %s q %s dropped %s acked %s" % (
                    c.get("connected"), c.get("queue"), c.get("dropped"), c.get("acked")))
            out.append("%s: %s" % (name, ", ".join(bits)))
        return out

    def _values(self, station, pollutants_only=False):
        out = []
        for code in sorted(self.latest.get(station, {})):
            if pollutants_only and not is_pollutant(code):
                continue
            _t, v, flag = self.latest[station][code]
            out.append("%s%s=%s%s" % (code, "(" + NAMES[code] + ")" if code in NAMES and not pollutants_only
                                      else "", _num(v), "" if flag in (None, "N") else flag))
        return out

    def block(self, now, stats=None, alarms=(), platform_down=None):
        """The terminal status block, as lines no wider than the terminal."""
        width = self.width or shutil.get_terminal_size((120, 24)).columns
        lines = [self._head(now, stats)]
        for station in sorted(self.latest, key=str):
            cur = "  %-7s" % station
            for item in self._values(station):
                if len(cur) + len(item) + 1 > width and cur.strip() != station:
                    lines.append(cur)
                    cur = " " * 9
                cur += " " + item
            lines.append(cur)
        links = self._links(stats, platform_down)
        lines.append("  links   " + ("; ".join(links) if links else "no centers reported yet"))
        alarms = list(alarms)
        lines.append("  alarms  %d%s" % (len(alarms), ("  last: " + alarms[-1]) if alarms else ""))
        return [ln[:width] for ln in lines]

    def plain(self, now, stats=None, alarms=(), platform_down=None):
        """One log line: the head, link state, alarm count and the pollutants' latest values."""
        alarms = list(alarms)
        vals = []
        for station in sorted(self.latest, key=str):
            v = self._values(station, pollutants_only=True)
            if v:
                vals.append("%s %s" % (station, " ".join(v)))
        links = self._links(stats, platform_down)
        return "%s  links %s  alarms %d%s%s" % (
            self._head(now, stats), "; ".join(links) if links else "-", len(alarms),
            "  | " + " | ".join(vals) if vals else "", ("  last alarm: " + alarms[-1][:100]) if alarms else "")

    # ---- output -------------------------------------------------------------------------------------
    def update(self, now, stats=None, alarms=(), platform_down=None, force=False):
        """Draws if due; returns True when something was written."""
        if self.tty:
            t = self.clock()
            if not force and self._last_draw is not None and t - self._last_draw < self.min_redraw_s:
                return False
            self._last_draw = t
            lines = self.block(now, stats, alarms, platform_down)
            out = []
            if self._drawn:
                out.append("%s%dF%sJ" % (CSI, self._drawn, CSI))  # to the block's first line, clear below
            out.append("\n".join(lines) + "\n")
            self.stream.write("".join(out))
            self.stream.flush()
            self._drawn = len(lines)
            return True
        if self._next_plain is None:
            base = self.start if self.start is not None else now
            self._next_plain = base
        if not force and now < self._next_plain:
            return False
        while self._next_plain <= now:
            self._next_plain += self.plain_every_s
        self.stream.write(self.plain(now, stats, alarms, platform_down) + "\n")
        self.stream.flush()
        return True

    def finish(self, now, stats=None, alarms=(), platform_down=None):
        self.update(now, stats, alarms, platform_down, force=True)
        self._drawn = 0  # leave the last block on screen


def sim_inputs(sim):
    """(now, stats, alarms, platform_down) of a running host_tools.simulate.Simulation."""
    fw = sim.fw
    alarms = [ln for ln in fw.log_lines() if ln.startswith(("WARN ", "ERROR "))] if fw is not None else []
    down = dict(sim.platform.down) if sim.platform is not None else {}
    return sim.clock.now(), (fw.stats if fw is not None else None), alarms, down


def update_from_sim(view, sim, force=False):
    view.observe(sim.records())
    now, stats, alarms, down = sim_inputs(sim)
    return view.update(now, stats, alarms, down, force=force)
