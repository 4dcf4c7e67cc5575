"""Live view of connected loggers for `emlog platform serve`.

On a terminal the table is redrawn in place at most once a second; otherwise (log file, CI) one plain
summary line plus one line per logger is printed every `plain_interval` seconds, only when something
changed.
"""

import asyncio
import time

# Shown when present in the latest record; realtime value first, period mean otherwise.
DEFAULT_CODES = ("a21002", "a21026", "a34013", "a19001", "a00000", "a24088")


def latest_value(fields, code):
    for suffix in ("Rtd", "Avg", "Data"):
        value = fields.get(code + "-" + suffix)
        if value is not None:
            flag = fields.get(code + "-Flag")
            return value + (flag if flag and flag != "N" else "")
    return ""


def render(server, codes=DEFAULT_CODES, now=None, width=None):
    """The table as a list of text lines."""
    now = time.time() if now is None else now
    rows = server.snapshot()
    s = server.stats
    lines = [
        "%s %s:%s  loggers %d  frames %d  records %d  dup %d  bad %d  rejected %d  refused %d"
        % (
            server.center,
            server.host,
            server.port,
            len(rows),
            s["frames"],
            s["records"],
            s["duplicates"],
            s["bad"],
            s["rejected"],
            s["refused"],
        )
    ]
    header = ["MN", "peer", "age", "frames", "bad", "DataTime"] + list(codes)
    table = [header]
    for row in rows:
        table.append(
            [
                row["mn"] or "?",
                row["peer"],
                "%ds" % max(0, now - row["last_at"]),
                str(row["frames"]),
                str(row["bad"]),
                row["datatime"] or "",
            ]
            + [latest_value(row["latest"], c) for c in codes]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        line = "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
        lines.append(line[:width] if width else line)
    return lines


async def run(server, stream, tty, plain_interval=10.0, codes=DEFAULT_CODES):
    """Redraw until cancelled."""
    last_key = None
    drawn = 0
    while True:
        if tty:
            lines = render(server, codes)
            import shutil

            width = shutil.get_terminal_size((120, 40)).columns
            out = ["\x1b[H\x1b[J"] + [line[:width] + "\n" for line in lines]
            stream.write("".join(out))
            stream.flush()
            drawn += 1
            await asyncio.sleep(1.0)
        else:
            key = (server.stats["frames"], len(server.connections))
            if key != last_key:
                last_key = key
                stream.write(time.strftime("%H:%M:%S ") + "\n".join(render(server, codes)) + "\n")
                stream.flush()
            await asyncio.sleep(plain_interval)
