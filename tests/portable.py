"""Helpers for test modules that run on both CPython and the MicroPython unix port.

Keep this file MicroPython-compatible: no typing, no f-string debugging specifiers, no pytest.
"""


class raises:
    """Context manager: the body must raise `exc_type`; the exception is kept in `.value`."""

    def __init__(self, exc_type, match=None):
        self.exc_type = exc_type
        self.match = match
        self.value = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise AssertionError("expected %s, nothing was raised" % self.exc_type.__name__)
        if not issubclass(exc_type, self.exc_type):
            return False  # let the unexpected exception propagate
        if self.match is not None and self.match not in str(exc):
            raise AssertionError("%r does not contain %r" % (str(exc), self.match))
        self.value = exc
        return True


def approx(a, b, rel=1e-9, abs_tol=1e-9):
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_tol)
