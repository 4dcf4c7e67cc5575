"""`emlog hj212 check|decode|encode`: look at HJ 212 frames from a file or stdin.

Input is one frame per line (one segment per line for `encode`). A line's CRLF is optional, and a
literal `\\r\\n` at its end, as printed in documents, is accepted too. Blank lines and lines starting
with `# ` (hash, space) are comments.
"""

import json
import sys
from pathlib import Path

from host_tools.errors import UserError
from protocols import hj212

# Reasons raised before the CRC is looked at (so the CRC's state is unknown).
_FRAMING = ("header", "truncated", "length", "too-long", "no-crlf")


def register(sub):
    p = sub.add_parser("hj212", help="check, decode or encode HJ 212 frames",
                       description="Check, decode or encode HJ 212 frames, one per line (CRLF optional).")
    cmds = p.add_subparsers(dest="hj212_command", metavar="ACTION")
    frames_help = "file with one frame per line, or - for stdin (default)"

    c = cmds.add_parser("check", help="print OK or ERR <reason> for each frame; exit 0 only if all are OK")
    c.add_argument("file", nargs="?", default="-", help=frames_help)
    c.set_defaults(func=cmd_check)

    c = cmds.add_parser("decode", help="print each frame as one JSON object (header, CP fields, crc_ok)")
    c.add_argument("file", nargs="?", default="-", help=frames_help)
    c.set_defaults(func=cmd_decode)

    c = cmds.add_parser("encode", help="frame data segments (QN=...;...;CP=&&...&&): add length, CRC")
    c.add_argument("file", nargs="?", default="-", help="file with one segment per line, or - for stdin")
    c.add_argument("--crlf", action="store_true", help="write raw frames ending in CRLF, not text lines")
    c.set_defaults(func=cmd_encode)

    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser):
    parser.print_help()
    return 2


def _read(name):
    if name == "-":
        return sys.stdin.buffer.read()
    path = Path(name)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError("%s: no such file; give a file with one frame per line, or - to read stdin"
                        % name) from None
    except IsADirectoryError:
        raise UserError("%s is a directory; give a file with one frame per line" % name) from None
    except OSError as exc:
        raise UserError("cannot read %s: %s" % (name, exc.strerror or exc)) from None


def lines(data):
    """(line number, bytes without line end) for every non-comment line."""
    out = []
    for n, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if line.endswith(b"\\r\\n"):
            line = line[:-4]
        if not line.strip() or line.startswith(b"# ") or line == b"#":
            continue
        out.append((n, line))
    return out


def _frames(args):
    items = lines(_read(args.file))
    if not items:
        print("emlog: no frames in %s" % ("stdin" if args.file == "-" else args.file), file=sys.stderr)
    return items


def cmd_check(args):
    items = _frames(args)
    bad = 0
    for n, line in items:
        try:
            p = hj212.parse(line + b"\r\n")
        except hj212.Hj212Error as exc:
            bad += 1
            print("ERR %s line %d: %s" % (exc.reason, n, exc))
        else:
            print("OK line %d: CN=%s QN=%s" % (n, p.cn, p.qn or "-"))
    print("%d frames: %d OK, %d bad" % (len(items), len(items) - bad, bad), file=sys.stderr)
    return 0 if items and not bad else 1


def packet_json(p):
    return {
        "qn": p.qn, "st": p.st, "cn": p.cn, "pw": p.pw, "mn": p.mn, "flag": p.flag,
        "pnum": p.pnum, "pno": p.pno,
        "version": p.version, "ack_wanted": p.ack_wanted, "is_split": p.is_split,
        "cp": [[[k, v] for k, v in group] for group in p.cp], "fields": p.fields(),
    }


def cmd_decode(args):
    items = _frames(args)
    bad = 0
    for n, line in items:
        raw = line + b"\r\n"
        out = {"line": n}
        try:
            p = hj212.parse(raw)
        except hj212.Hj212Error as exc:
            bad += 1
            out.update({"ok": False, "error": exc.reason, "detail": str(exc), "qn_rtn": exc.qn_rtn,
                        "crc_ok": None if exc.reason in _FRAMING else exc.reason != "crc"})
            if exc.packet is not None:
                out.update(packet_json(exc.packet))
        else:
            out.update({"ok": True, "error": None, "crc_ok": True, "length": len(raw) - 12})
            out.update(packet_json(p))
        print(json.dumps(out, ensure_ascii=False))
    return 0 if items and not bad else 1


def cmd_encode(args):
    items = lines(_read(args.file))
    bad = 0
    for n, line in items:
        try:
            hj212.parse_segment(line)  # refuse what a receiver could not read back
            raw = hj212.frame(line)
        except hj212.Hj212Error as exc:
            bad += 1
            print("emlog: line %d: ERR %s: %s" % (n, exc.reason, exc), file=sys.stderr)
            continue
        if args.crlf:
            sys.stdout.flush()
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
        else:
            print(raw[:-2].decode("utf-8"))
    if not items:
        print("emlog: no segments in %s" % ("stdin" if args.file == "-" else args.file), file=sys.stderr)
    return 0 if items and not bad else 1
