"""Lines on the console: leveled log lines `LEVEL module: text t=<sim epoch s>`, and `PREFIX {json}` reports.

The line starts with the level so a technician (or the HIL harness) can grep `^ERROR `. The last few
warnings/errors are kept so the console can show why the logger is unhappy (e.g. in safe mode).
"""

import sys

from micropython import const

DEBUG = 10
INFO = 20
WARN = 30
ERROR = 40
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARN: "WARN", ERROR: "ERROR"}

level = INFO
_clock = None  # callable -> sim epoch seconds, set by main once the clock exists
_sink = None  # callable(line); default print
recent = []  # last warnings/errors, newest last
_RECENT_MAX = const(8)


def setup(clock=None, sink=None, min_level=None):
    global _clock, _sink, level
    if clock is not None:
        _clock = clock
    if sink is not None:
        _sink = sink
    if min_level is not None:
        level = min_level


def set_level(name):
    """Sets the lowest level shown from its name (DEBUG, INFO, WARN, ERROR; any case); False if unknown."""
    global level
    for lvl, n in _NAMES.items():
        if n == str(name).upper():
            level = lvl
            return True
    return False


def _emit(lvl, module, text):
    if lvl < level:
        return
    t = None
    if _clock is not None:
        try:
            t = int(_clock())
        except Exception:
            t = None
    line = (
        "%s %s: %s" % (_NAMES[lvl], module, text)
        if t is None
        else "%s %s: %s t=%d" % (_NAMES[lvl], module, text, t)
    )
    if lvl >= WARN:
        recent.append(line)
        if len(recent) > _RECENT_MAX:
            recent.pop(0)
    if _sink is not None:
        _sink(line)
    else:
        print(line)


def debug(module, text):
    _emit(DEBUG, module, text)


def info(module, text):
    _emit(INFO, module, text)


def warn(module, text):
    _emit(WARN, module, text)


def error(module, text):
    _emit(ERROR, module, text)


def print_json(prefix, d):
    """One line `prefix + JSON` (STATS, COUNTERS), serialised straight to stdout: no multi-KB string (heap
    fragments)."""
    import json

    out = sys.stdout
    out.write(prefix)
    json.dump(d, out)
    out.write("\n")
