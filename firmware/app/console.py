"""Line console: `status`, `counters`, `config`, `log`, `store`, `rules`, `clear`, `stop`, `help`.

Works in normal and in safe mode (then `app` has no acquisition or uplinks). On the unix port stdin is
polled with select.poll (never a blocking read); on the ESP32 the console shares UART0 with the REPL.
`app` must offer status(), snapshot(), config_summary(), store_view(), rules_view(), clear_boot() and stop().
"""

import json
import sys

from app import log

HELP = (
    "status   mode, uptime, boot count, links, heap",
    "counters bus counters, samples expected/taken, queue depth per center, heap (JSON)",
    "config   configuration summary",
    "log      last warnings and errors; `log LEVEL` shows DEBUG, INFO, WARN or ERROR and above",
    "store    record store: bytes, segments, pending records per link, drops (JSON)",
    "rules    rules engine: alert level, events, per-rule state, relays (JSON)",
    "clear    reset the boot counter and leave safe mode at the next boot",
    "stop     print a final STATS line and end the application (unix/HIL)",
    "help     this list",
)


class Console:
    def __init__(self, app, out=None):
        self.app = app
        self.out = out or print
        self._buf = []

    def handle(self, line):
        """Runs one command line; returns the output lines (also written to `out`)."""
        words = line.strip().split()
        if not words:
            return []
        cmd = words[0].lower()
        if cmd == "status":
            st = self.app.status()
            lines = ["%s: %s" % (k, _show(st[k])) for k in sorted(st)]
        elif cmd == "counters" and self.out is print:
            log.print_json("COUNTERS ", self.app.snapshot())  # streamed: no multi-KB string
            return ["COUNTERS"]
        elif cmd == "counters":
            lines = ["COUNTERS " + json.dumps(self.app.snapshot())]
        elif cmd == "config":
            lines = self.app.config_summary()
        elif cmd == "log" and len(words) > 1:
            if log.set_level(words[1]):
                lines = ["log level %s" % words[1].upper()]
            else:
                lines = ["unknown log level %r; use DEBUG, INFO, WARN or ERROR" % words[1]]
        elif cmd == "log":
            lines = list(log.recent) or ["(no warnings or errors)"]
        elif cmd == "store":
            lines = ["STORE " + json.dumps(self.app.store_view())]
        elif cmd == "rules":
            lines = ["RULES " + json.dumps(self.app.rules_view())]
        elif cmd == "clear":
            lines = [self.app.clear_boot()]
        elif cmd == "stop":
            lines = ["stopping"]
            self.app.stop()
        elif cmd in ("help", "?"):
            lines = list(HELP)
        else:
            lines = ["unknown command %r; type help" % words[0]]
        for ln in lines:
            self.out(ln)
        return lines

    def feed(self, text):
        """Feeds raw characters; runs every complete line. Returns the number of lines run."""
        n = 0
        for ch in text:
            if ch in "\r\n":
                if self._buf:
                    line = "".join(self._buf)
                    self._buf = []
                    n += 1
                    try:
                        self.handle(line)
                    except Exception as exc:  # a console bug must not stop the logger
                        self.out("ERROR console: %s: %s" % (type(exc).__name__, exc))
            elif len(self._buf) < 200:
                self._buf.append(ch)
        return n

    async def run(self, stream=None, period_ms=100):
        """Polls `stream` (default sys.stdin) without blocking the event loop; stops at end of input."""
        import asyncio
        import select

        stream = stream or sys.stdin
        poller = select.poll()
        poller.register(stream, select.POLLIN)
        while True:
            got = False
            for _obj, ev in poller.poll(0):
                if ev & select.POLLIN:
                    ch = stream.read(1)
                    if not ch:
                        log.info("console", "end of input; console closed")
                        return
                    self.feed(ch)
                    got = True
                elif ev & (select.POLLHUP | select.POLLERR):
                    log.info("console", "input closed; console closed")
                    return
            if not got:
                await asyncio.sleep_ms(period_ms)


def _show(v):
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)
