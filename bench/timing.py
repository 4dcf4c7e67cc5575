"""Timing helpers shared by the benchmarks; runs on CPython and MicroPython (benches run themselves on both).

Each figure is the median of REPEATS runs; nothing here passes or fails on timing."""

REPEATS = 7

try:
    from time import ticks_diff, ticks_us
except ImportError:
    from time import perf_counter

    def ticks_us():
        return int(perf_counter() * 1000000)

    def ticks_diff(a, b):
        return a - b


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _rate(fn, n, units=1):
    """Median of REPEATS runs of n calls of fn, as units per second."""
    rates = []
    for _ in range(REPEATS):
        t0 = ticks_us()
        for _ in range(n):
            fn()
        dt = ticks_diff(ticks_us(), t0)
        rates.append(n * units * 1000000 / max(dt, 1))
    return _median(rates)
