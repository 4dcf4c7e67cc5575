"""Shared driver for the rules-engine scenario tests (MicroPython): an engine over a synthetic tick series,
and the helpers that read its events."""

from app.rules import Rules

T0 = 1704038400  # 2024-01-01 00:00:00 local (UTC+8)
S = 5  # sampling interval of these scenarios (s)


def _engine(rules, sample_s=S, alert=None, wire=None):
    cfg = {"site": {"utc_offset_min": 480}, "logger": {"sample_s": sample_s, "valid_fraction": 0.75},
           "rules": {"list": rules, "alert": alert or {}, "wire": wire or {}}}
    events = []
    return Rules(cfg, events.append), events


def _run(eng, start, end, fn, step=S):
    t = start
    while t < end:
        values, points = fn(t)
        eng.tick(t, values, points)
        t += step


def _states(events, rule=None):
    return [(e["state"], e["t"]) for e in events if rule is None or e["rule"] == rule]


def _near(t, truth, step=S):
    return abs(t - truth) <= step
