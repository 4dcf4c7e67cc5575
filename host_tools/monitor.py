"""`emlog monitor`: the logger's serial console with levels, colour, STATS summaries and commands.

The firmware prints `LEVEL module: text t=<sim s>` log lines, `STATS {json}` lines and plain reply lines
for its console commands (firmware/app/console.py). A reply has no end marker, so a reply is taken as
finished when the line has been quiet for `--quiet` seconds after its first line.
"""

import json
import re
import sys
import threading
import time

from host_tools.errors import UserError

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}
_LEVEL_OF = {"DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40}
LOG_RE = re.compile(r"^(DEBUG|INFO|WARN|ERROR) ([^\s:]+): ")
COMMANDS = ("status", "counters", "config", "log", "clear", "stop", "help")

RED = "\x1b[31m"
YELLOW = "\x1b[33m"
GREEN = "\x1b[32m"
CYAN = "\x1b[36m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"


def _kib(n):
    return "%.1f" % (n / 1024.0)


def _duration(s):
    s = int(s)
    if s < 60:
        return "%ds" % s
    if s < 3600:
        return "%dm%02ds" % (s // 60, s % 60)
    return "%dh%02dm" % (s // 3600, (s % 3600) // 60)


def summarize_stats(d):
    """One short line for a STATS/COUNTERS dict; unknown or missing keys are skipped, never fatal."""
    parts = []
    if "up_s" in d:
        parts.append("up " + _duration(d["up_s"]))
    if d.get("mode"):
        parts.append("mode " + str(d["mode"]))
    if d.get("safe_reason"):
        parts.append("SAFE: " + str(d["safe_reason"]))
    recs = d.get("records")
    if isinstance(recs, dict) and recs:
        parts.append("records " + " ".join("%s=%s" % (k, recs[k]) for k in sorted(recs, key=str)))
    if "mem_alloc" in d:
        heap = "heap " + _kib(d["mem_alloc"])
        if "mem_free" in d:
            heap += "/" + _kib(d["mem_alloc"] + d["mem_free"])
        heap += " KiB"
        if d.get("heap_peak"):
            heap += " (peak " + _kib(d["heap_peak"]) + ")"
        parts.append(heap)
    links = d.get("links")
    if isinstance(links, dict) and links:
        items = []
        for name in sorted(links):
            s = links[name] if isinstance(links[name], dict) else {}
            items.append(
                "%s %s q=%s acked=%s dropped=%s"
                % (
                    name,
                    "up" if s.get("connected") else "down",
                    s.get("queue", "?"),
                    s.get("acked", "?"),
                    s.get("dropped", "?"),
                )
            )
        parts.append("links: " + ", ".join(items))
    if d.get("acq_error"):
        parts.append("acq error: " + str(d["acq_error"]))
    return "  ".join(parts) if parts else "(empty)"


class Formatter:
    """Turns one console line into the text to show (None: filtered out)."""

    def __init__(self, min_level=10, color=False, raw_stats=False):
        self.min_level = min_level
        self.color = color
        self.raw_stats = raw_stats

    def _paint(self, text, code):
        return code + text + RESET if self.color else text

    def level_of(self, line):
        m = LOG_RE.match(line)
        return _LEVEL_OF[m.group(1)] if m else None

    def format(self, line):
        lvl = self.level_of(line)
        if lvl is not None:
            if lvl < self.min_level:
                return None
            if lvl >= 40:
                return self._paint(line, RED)
            if lvl >= 30:
                return self._paint(line, YELLOW)
            if lvl <= 10:
                return self._paint(line, DIM)
            return line
        for prefix in ("STATS ", "COUNTERS "):
            if line.startswith(prefix):
                try:
                    d = json.loads(line[len(prefix) :])
                except ValueError:
                    return line
                if not isinstance(d, dict):
                    return line
                label = prefix.strip() + (" (final)" if d.get("final") else "")
                text = self._paint(label, CYAN) + " " + summarize_stats(d)
                return text + "\n" + line if self.raw_stats else text
        if line.startswith("SAFE MODE"):
            return self._paint(line, RED)
        if line.startswith(("HEALTHY", "READY")):
            return self._paint(line, GREEN)
        return line


class Session:
    """Reads lines from `ser`, prints them through `fmt`, and sends queued commands one at a time."""

    def __init__(self, ser, fmt, out, commands=(), quiet_s=0.5, reply_timeout_s=5.0):
        self.ser = ser
        self.fmt = fmt
        self.out = out
        self.pending = list(commands)
        self.quiet_s = quiet_s
        self.reply_timeout_s = reply_timeout_s
        self.current = None
        self.sent_at = 0.0
        self.last_reply = None
        self.unanswered = []
        self.answered = []
        self._buf = bytearray()
        self._lock = threading.Lock()

    def queue(self, cmd):
        with self._lock:
            self.pending.append(cmd)

    def busy(self):
        with self._lock:
            return self.current is not None or bool(self.pending)

    def _emit(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def _is_reply(self, line):
        if line.startswith("STATS "):
            return False
        if self.fmt.level_of(line) is not None:
            return self.current == "log"  # `log` answers with log lines; otherwise they are the live log
        return True

    def _send_next(self, now):
        with self._lock:
            if self.current is not None or not self.pending:
                return
            self.current = self.pending.pop(0)
        self.ser.write((self.current + "\r\n").encode("utf-8"))
        self.ser.flush()
        self.sent_at = now
        self.last_reply = None
        self._emit(self.fmt._paint("> " + self.current, DIM))

    def line(self, line, now):
        if self.current is not None and self._is_reply(line):
            self.last_reply = now
        text = self.fmt.format(line)
        if text is not None:
            self._emit(text)

    def step(self, now):
        """One round: send, read what arrived, end a reply that went quiet. Returns bytes read."""
        self._send_next(now)
        waiting = self.ser.in_waiting
        data = self.ser.read(waiting or 1)
        now = time.monotonic()
        if data:
            self._buf += data
            while True:
                i = self._buf.find(b"\n")
                if i < 0:
                    break
                raw = bytes(self._buf[:i])
                del self._buf[: i + 1]
                self.line(raw.decode("utf-8", "replace").rstrip("\r"), now)
        if self.current is not None:
            if self.last_reply is not None and now - self.last_reply >= self.quiet_s:
                self.answered.append(self.current)
                self.current = None
            elif self.last_reply is None and now - self.sent_at >= self.reply_timeout_s:
                self.unanswered.append(self.current)
                self.current = None
        return len(data)

    def flush_partial(self):
        if self._buf:
            self.line(bytes(self._buf).decode("utf-8", "replace").rstrip("\r\n"), time.monotonic())
            self._buf = bytearray()


def _stdin_reader(session, stop):
    for line in sys.stdin:
        if stop.is_set():
            return
        cmd = line.strip()
        if cmd:
            session.queue(cmd)
    stop.set()


def run(args):
    from host_tools.probe import open_port

    if args.seconds is not None and args.seconds <= 0:
        raise UserError("--seconds %r: give a positive number of seconds" % args.seconds)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    fmt = Formatter(LEVELS[args.level], color, args.raw)
    interactive = not args.command and sys.stdin.isatty() and args.seconds is None
    ser = open_port(args.port, args.baud, "N", 1, timeout=0.05)
    session = Session(ser, fmt, sys.stdout, args.command or (), args.quiet, args.reply_timeout)
    stop = threading.Event()
    print(
        "monitor %s at %d baud; %s"
        % (
            args.port,
            args.baud,
            "type a command (%s) and Enter; Ctrl-C to quit" % ", ".join(COMMANDS)
            if interactive
            else "Ctrl-C to quit",
        ),
        file=sys.stderr,
    )
    if interactive:
        threading.Thread(target=_stdin_reader, args=(session, stop), daemon=True).start()
    start = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if args.seconds is not None and now - start >= args.seconds:
                break
            if args.command and args.seconds is None and not session.busy():
                break  # every reply ended
            try:
                session.step(now)
            except OSError as exc:
                raise UserError(
                    "serial port %s failed: %s; is the logger still connected?" % (args.port, exc)
                ) from None
        session.flush_partial()
    except KeyboardInterrupt:
        session.flush_partial()
        print("monitor closed", file=sys.stderr)
        return 0
    finally:
        stop.set()
        ser.close()
    if session.unanswered:
        raise UserError(
            "no reply to %s within %.0f s on %s at %d baud; check that the logger is running, "
            "the port and the baud rate (the console runs at 115200 on the ESP32)"
            % (", ".join("`%s`" % c for c in session.unanswered), args.reply_timeout, args.port, args.baud)
        )
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "monitor",
        help="serial console of a logger: log with levels, STATS summaries, console commands",
        description="Shows the logger's console (colour on a terminal: ERROR red, WARN yellow), summarises "
        "STATS lines and sends console commands (%s): typed lines on a terminal, or --command to send "
        "them, print the replies and exit." % ", ".join(COMMANDS),
    )
    p.add_argument("--port", required=True, help="the logger's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument(
        "--level",
        choices=("debug", "info", "warn", "error"),
        default="debug",
        help="hide log lines below this level (default: show all)",
    )
    p.add_argument(
        "--command",
        action="append",
        metavar="CMD",
        help="send a console command and print its reply (repeatable); exits after the last reply "
        "unless --seconds is given",
    )
    p.add_argument("--seconds", type=float, help="exit after this many seconds")
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour log levels (auto: when the output is a terminal)",
    )
    p.add_argument("--raw", action="store_true", help="also print STATS lines as received (JSON)")
    p.add_argument(
        "--quiet",
        type=float,
        default=0.5,
        metavar="S",
        help="a reply has ended after S seconds without a reply line (default 0.5)",
    )
    p.add_argument(
        "--reply-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="give up waiting for a reply after S seconds (default 5)",
    )
    p.set_defaults(func=run)
