"""Waiting on an emulator's condition variable for something a test or the simulator cares about."""

import time


def wait_on(cond, check, timeout, recheck_s, give_up=None):
    """Waits on `cond` (a threading.Condition the emulator notifies) until check() is truthy, at most
    `timeout` real seconds, re-checking every `recheck_s` too; stops early when give_up() is true.
    Returns check()'s last value."""
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            ok = check()
            if ok:
                return ok
            left = deadline - time.monotonic()
            if left <= 0 or (give_up is not None and give_up()):
                return check()
            cond.wait(min(left, recheck_s))
