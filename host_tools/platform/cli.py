"""`emlog platform serve | send | list | export`: the HJ 212 platform receiver on the command line."""

import csv
import json
import os
import re
import socket
import sqlite3
import sys
import time

from host_tools.errors import UserError

DEFAULT_LISTEN = "0.0.0.0:8212"
DEFAULT_ADMIN = "127.0.0.1:8213"
DEFAULT_DB = "emlog-platform.db"

HISTORY_CNS = {"minute": "2051", "hour": "2061", "day": "2031"}
MIN_INTERVALS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)  # Table 9, CN 1063/1064


def register(subparsers):
    p = subparsers.add_parser(
        "platform",
        help="HJ 212 platform receiver: serve, send commands, export data",
        description="An HJ 212 platform (上位机) for commissioning and tests.",
    )
    sub = p.add_subparsers(dest="platform_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = sub.add_parser("serve", help="receive HJ 212 from many loggers; store in SQLite; live table")
    s.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="address loggers connect to (default %(default)s)",
    )
    s.add_argument("--db", default=DEFAULT_DB, metavar="FILE", help="SQLite file (default %(default)s)")
    s.add_argument(
        "--devices",
        metavar="FILE",
        help="registered loggers, JSON or TOML (MN, PW, ST, version); without it every MN is "
        "accepted (commissioning mode)",
    )
    s.add_argument(
        "--admin",
        default=DEFAULT_ADMIN,
        metavar="HOST:PORT",
        help="loopback control channel for `emlog platform send` (default %(default)s)",
    )
    s.add_argument("--no-admin", action="store_true", help="do not open the control channel")
    s.add_argument("--center", default="platform", help="name recorded with every frame")
    s.add_argument("--max-connections", type=int, default=256, metavar="N")
    s.add_argument(
        "--idle-timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="close a connection silent this long (default %(default)s s)",
    )
    s.add_argument(
        "--no-fsync",
        action="store_true",
        help="faster commits (synchronous=NORMAL): an OS crash may lose acknowledged records",
    )
    s.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (tests, demos)")
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser(
        "send",
        help="send a command to a connected logger and print its replies",
        description="COMMAND is one of: "
        + ", ".join(sorted(COMMANDS))
        + ", or a 4-digit CN followed by KEY=VALUE items (e.g. `1062 RtdInterval=30`).",
    )
    c.add_argument("mn", metavar="MN")
    c.add_argument("command", metavar="COMMAND")
    c.add_argument("args", nargs="*", metavar="ARG")
    c.add_argument("--admin", default=DEFAULT_ADMIN, metavar="HOST:PORT")
    c.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="give up when the logger is silent this long (HJ 212 OverTime, default %(default)s)",
    )
    c.add_argument("--json", action="store_true", help="print the raw JSON events")
    c.set_defaults(func=cmd_send)

    ls = sub.add_parser("list", help="connected loggers of a running server")
    ls.add_argument("--admin", default=DEFAULT_ADMIN, metavar="HOST:PORT")
    ls.set_defaults(func=cmd_list)

    e = sub.add_parser("export", help="export stored records (CSV: one row per record, one column per field)")
    e.add_argument("--db", required=True, metavar="FILE")
    e.add_argument("--mn", metavar="MN", help="only this logger")
    e.add_argument(
        "--cn", metavar="CN", help="only this CN (2011 realtime, 2051 minute, 2061 hour, 2031 day)"
    )
    e.add_argument(
        "--from", dest="begin", metavar="TIME", help="DataTime >= TIME (YYYYMMDD[hh[mm[ss]]] or ISO)"
    )
    e.add_argument("--to", dest="end", metavar="TIME", help="DataTime < TIME")
    e.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    e.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    e.set_defaults(func=cmd_export)


# -- helpers -------------------------------------------------------------------------------------------


def parse_hostport(text, option):
    m = re.fullmatch(r"\[?([^\[\]]*?)\]?:(\d{1,5})", text or "")
    if not m or int(m.group(2)) > 65535:
        raise UserError("%s %r is not HOST:PORT; write e.g. %s 0.0.0.0:8212" % (option, text, option))
    host = m.group(1) or "0.0.0.0"
    return host, int(m.group(2))


def parse_time_arg(text, option):
    """'20240315', '2024031510', '2024-03-15 10:30' ... -> 'YYYYMMDDhhmmss'."""
    digits = re.sub(r"[-:T ]", "", text or "")
    if not digits.isdigit() or len(digits) not in (8, 10, 12, 14):
        raise UserError(
            "%s %r is not a time; use YYYYMMDD[hh[mm[ss]]] or YYYY-MM-DD hh:mm:ss" % (option, text)
        )
    digits = digits.ljust(14, "0")
    try:
        time.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise UserError("%s %r is not a valid date/time" % (option, text)) from None
    return digits


def beijing_now():
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + 8 * 3600))


# -- serve ---------------------------------------------------------------------------------------------


def cmd_serve(args):
    import asyncio

    from host_tools.platform.registry import Registry
    from host_tools.platform.store import Store, check_db_path

    host, port = parse_hostport(args.listen, "--listen")
    admin = None if args.no_admin else parse_hostport(args.admin, "--admin")
    if admin is not None:
        from host_tools.platform.admin import is_loopback

        if not is_loopback(admin[0]):
            raise UserError(
                "--admin %s is not a loopback address; the control channel only listens on "
                "127.0.0.1 or ::1" % args.admin
            )
    problem = check_db_path(args.db)
    if problem:
        raise UserError("cannot use --db %s: %s; pass a writable location" % (args.db, problem))
    registry = Registry.load(args.devices) if args.devices else Registry()
    try:
        store = Store(args.db, durable=not args.no_fsync)
    except sqlite3.Error as exc:
        raise UserError("cannot open --db %s as SQLite: %s" % (args.db, exc)) from None
    try:
        return asyncio.run(_serve(args, host, port, admin, store, registry))
    finally:
        store.close()


async def _serve(args, host, port, admin, store, registry):
    import asyncio
    import collections

    from host_tools.platform import live
    from host_tools.platform.admin import AdminServer
    from host_tools.platform.server import PlatformServer

    tty = sys.stdout.isatty()
    recent = collections.deque(maxlen=8)

    def log(msg):
        line = time.strftime("%H:%M:%S ") + msg
        if tty:
            recent.append(line)
        else:
            print(line, flush=True)

    server = PlatformServer(
        host,
        port,
        store,
        registry,
        center=args.center,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        log=log,
    )
    try:
        await server.start()
    except OSError as exc:
        raise UserError(
            "cannot listen on %s: %s; choose another --listen" % (args.listen, exc.strerror or exc)
        ) from None
    admin_server = None
    if admin is not None:
        try:
            admin_server = await AdminServer(server, *admin).start()
        except OSError as exc:
            await server.stop()
            raise UserError(
                "cannot open the control channel on %s: %s; choose another --admin or --no-admin"
                % (args.admin, exc.strerror or exc)
            ) from None
    print(
        "emlog platform: listening on %s:%d, database %s%s"
        % (
            server.host,
            server.port,
            os.path.abspath(args.db),
            ", control channel %s:%d" % (admin_server.host, admin_server.port) if admin_server else "",
        ),
        flush=True,
    )
    if registry.open_mode:
        print(
            "!" * 78
            + "\n!! COMMISSIONING MODE: no --devices file, every MN and password is accepted.\n"
            + "!" * 78,
            flush=True,
        )
    else:
        print("emlog platform: %d registered loggers" % len(registry.devices), flush=True)

    async def view():
        if tty:
            while True:
                lines = live.render(server)
                sys.stdout.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n\n" + "\n".join(recent) + "\n")
                sys.stdout.flush()
                await asyncio.sleep(1.0)
        else:
            await live.run(server, sys.stdout, tty=False)

    viewer = asyncio.ensure_future(view())
    stop = asyncio.Event()
    try:
        import signal

        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):
        pass  # Windows: Ctrl-C ends the run through KeyboardInterrupt
    try:
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except TimeoutError:
            pass
    finally:
        viewer.cancel()
        if admin_server is not None:
            await admin_server.stop()
        await server.stop()
        print(
            "emlog platform: stopped; frames %d, records %d, duplicates %d, bad %d"
            % (
                server.stats["frames"],
                server.stats["records"],
                server.stats["duplicates"],
                server.stats["bad"],
            )
        )
    return 0


# -- send / list -------------------------------------------------------------------------------------------


def _int_arg(text, name, lo, hi):
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise UserError("%s must be a whole number from %d to %d, not %r" % (name, lo, hi, text))
    return str(int(text))


def _nargs(args, n, usage):
    if len(args) not in (n if isinstance(n, tuple) else (n,)):
        raise UserError("usage: emlog platform send MN " + usage)


def _time_get(a):
    _nargs(a, (0, 1), "time-get [POLID]")
    return "1011", [("PolId", a[0])] if a else []


def _time_set(a):
    _nargs(a, (0, 1), "time-set [YYYYMMDDhhmmss]   (default: now, Beijing time)")
    return "1012", [("SystemTime", parse_time_arg(a[0], "time") if a else beijing_now())]


def _rtd_interval(a):
    _nargs(a, 1, "rtd-interval SECONDS   (30..3600)")
    return "1062", [("RtdInterval", _int_arg(a[0], "RtdInterval", 30, 3600))]


def _min_interval(a):
    _nargs(a, 1, "min-interval MINUTES   (one of %s)" % ", ".join(map(str, MIN_INTERVALS)))
    if not a[0].isdigit() or int(a[0]) not in MIN_INTERVALS:
        raise UserError(
            "MinInterval must be one of %s minutes, not %r" % (", ".join(map(str, MIN_INTERVALS)), a[0])
        )
    return "1064", [("MinInterval", str(int(a[0])))]


def _password(a):
    _nargs(a, 1, "password NEWPW   (6 characters)")
    if len(a[0]) != 6 or not a[0].isascii() or any(c in a[0] for c in ";,=&"):
        raise UserError("the new password must be 6 ASCII characters without ; , = &")
    return "1072", [("NewPW", a[0])]


def _history(a):
    _nargs(a, 3, "history minute|hour|day BEGIN END")
    if a[0] not in HISTORY_CNS:
        raise UserError("history kind must be minute, hour or day, not %r" % a[0])
    begin, end = parse_time_arg(a[1], "BEGIN"), parse_time_arg(a[2], "END")
    if end < begin:
        raise UserError("END %s is before BEGIN %s" % (end, begin))
    return HISTORY_CNS[a[0]], [("BeginTime", begin), ("EndTime", end)]


def _timeouts(a):
    _nargs(a, 2, "timeouts OVERTIME RECOUNT   (seconds 1..99, retries 1..99)")
    return "1000", [
        ("OverTime", _int_arg(a[0], "OverTime", 1, 99)),
        ("ReCount", _int_arg(a[1], "ReCount", 1, 99)),
    ]


def _info(a):
    _nargs(a, (2, 4), "info POLID INFOID [BEGIN END]")
    cp = [("PolId", a[0]), ("InfoId", a[1])]
    if len(a) == 4:
        cp += [("BeginTime", parse_time_arg(a[2], "BEGIN")), ("EndTime", parse_time_arg(a[3], "END"))]
    return "3020", cp


def _fixed(cn):
    def make(a):
        _nargs(a, 0, "(no arguments)")
        return cn, []

    return make


COMMANDS = {
    "time-get": _time_get,
    "time-set": _time_set,
    "rtd-interval-get": _fixed("1061"),
    "rtd-interval": _rtd_interval,
    "min-interval-get": _fixed("1063"),
    "min-interval": _min_interval,
    "password": _password,
    "history": _history,
    "timeouts": _timeouts,
    "info": _info,
    "rtd-start": _fixed("2011"),
    "rtd-stop": _fixed("2012"),
}


def build_command(command, args):
    """(cn, [(key, value)...]) for `emlog platform send MN COMMAND ARGS...`."""
    if re.fullmatch(r"\d{4}", command):
        cp = []
        for item in args:
            key, sep, value = item.partition("=")
            if not sep or not key or any(c in item for c in ";,&"):
                raise UserError("raw CP item %r must be KEY=VALUE without ; , &" % item)
            cp.append((key, value))
        return command, cp
    maker = COMMANDS.get(command)
    if maker is None:
        raise UserError(
            "unknown command %r; use one of %s, or a 4-digit CN with KEY=VALUE items"
            % (command, ", ".join(sorted(COMMANDS)))
        )
    return maker(args)


def _admin_request(admin_text, request, timeout):
    host, port = parse_hostport(admin_text, "--admin")
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as exc:
        raise UserError(
            "no emlog platform server control channel at %s (%s); start `emlog platform serve` "
            "or pass its --admin address" % (admin_text, exc.strerror or exc)
        ) from None
    sock.settimeout(timeout + 30)
    sock.sendall(json.dumps(request).encode() + b"\n")
    return sock, sock.makefile("rb")


def cmd_send(args):
    cn, cp = build_command(args.command, args.args)
    sock, stream = _admin_request(
        args.admin, {"op": "send", "mn": args.mn, "cn": cn, "cp": cp, "timeout": args.timeout}, args.timeout
    )
    result = None
    with sock:
        for line in stream:
            event = json.loads(line)
            if args.json:
                print(json.dumps(event, ensure_ascii=False), flush=True)
            kind = event.get("event")
            if kind == "error":
                raise UserError("server: %s" % event.get("message"))
            if kind == "sent" and not args.json:
                print("> " + event["frame"], flush=True)
            elif kind == "reply" and not args.json:
                print("< " + event["frame"], flush=True)
            elif kind == "done":
                result = event.get("result")
                break
    if result is None:
        raise UserError("the server closed the control channel before the command finished")
    if not args.json:
        print("result: %s" % result)
    return 0 if result in ("ExeRtn=1", "9013") else 1


def cmd_list(args):
    sock, stream = _admin_request(args.admin, {"op": "list"}, 5)
    with sock:
        event = json.loads(stream.readline() or b"{}")
    if event.get("event") != "connections":
        raise UserError("unexpected answer from the server: %r" % (event,))
    rows = event["connections"]
    if not rows:
        print("no loggers connected")
    for row in rows:
        print(
            "%-24s %-21s frames %-6d bad %-4d last %s"
            % (row["mn"] or "?", row["peer"], row["frames"], row["bad"], row["datatime"] or "-")
        )
    return 0


# -- export --------------------------------------------------------------------------------------------


def cmd_export(args):
    from host_tools.platform.store import Store

    if not os.path.isfile(args.db):
        raise UserError("--db %s does not exist; pass the file `emlog platform serve --db` wrote" % args.db)
    begin = parse_time_arg(args.begin, "--from") if args.begin else None
    end = parse_time_arg(args.end, "--to") if args.end else None
    try:
        store = Store.open_readonly(args.db)
        records = store.records(args.mn, args.cn, begin, end)
    except sqlite3.Error as exc:
        raise UserError("--db %s is not an emlog platform database: %s" % (args.db, exc)) from None
    if args.out:
        try:
            out = open(args.out, "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise UserError("cannot write --out %s: %s" % (args.out, exc.strerror or exc)) from None
    else:
        out = sys.stdout
    try:
        write_export(records, out, args.format)
    finally:
        if args.out:
            out.close()
    if args.out:
        print("exported %d records to %s" % (len(records), args.out), file=sys.stderr)
    return 0


def write_export(records, out, fmt):
    if fmt == "jsonl":
        for mn, cn, dt, frame_id, values in records:
            out.write(
                json.dumps(
                    {"mn": mn, "cn": cn, "datatime": dt, "frame_id": frame_id, "values": values},
                    ensure_ascii=False,
                    sort_keys=True,
                )
                + "\n"
            )
        return
    columns = sorted({key for rec in records for key in rec[4]})
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["mn", "cn", "datatime", "frame_id"] + columns)
    for mn, cn, dt, frame_id, values in records:
        writer.writerow([mn, cn, dt, frame_id] + [values.get(c, "") for c in columns])


def main(argv=None):
    """`python -m host_tools.platform.cli ARGS` runs `emlog platform ARGS` on its own (child processes)."""
    import argparse

    parser = argparse.ArgumentParser(prog="emlog")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["platform"] + list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args) or 0
    except UserError as exc:
        print("emlog: error: %s" % exc, file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
