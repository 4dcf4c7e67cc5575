"""firmware/app/console.py: the technician's line console (what `emlog monitor` talks to), on MicroPython."""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from app import log
from app.console import Console

INTERPRETERS = ("micropython",)


class FakeApp:
    def __init__(self):
        self.stopped = False

    def status(self):
        return {"mode": "normal", "links": {"national/boiler": "up"}}

    def stop(self):
        self.stopped = True


def console():
    out = []
    return Console(FakeApp(), out=out.append), out


def test_status_lines_are_sorted_key_value():
    con, out = console()
    lines = con.handle("STATUS")
    assert lines == ['links: {"national/boiler": "up"}', "mode: normal"]
    assert out == lines  # what is returned is what the technician saw


def test_unknown_command_and_blank_line():
    con, _out = console()
    assert con.handle("   ") == []
    assert con.handle("reboot now") == ["unknown command 'reboot'; type help"]


def test_log_level_is_set_by_name_and_rejects_unknown_levels():
    con, _out = console()
    try:
        assert con.handle("log debug") == ["log level DEBUG"] and log.level == log.DEBUG
        assert con.handle("log loud") == ["unknown log level 'loud'; use DEBUG, INFO, WARN or ERROR"]
        assert log.level == log.DEBUG  # a bad name changes nothing
        assert con.handle("log WARN") == ["log level WARN"] and log.level == log.WARN
    finally:
        log.set_level("info")


def test_feed_runs_complete_lines_and_survives_a_failing_command():
    con, out = console()
    con.app.status = None  # status() now raises TypeError inside handle
    assert con.feed("sto") == 0 and not con.app.stopped  # no line end yet
    assert con.feed("p\r\nstatus\n") == 2
    assert con.app.stopped
    assert out[0] == "stopping" and out[1].startswith("ERROR console: TypeError")
