"""Where each value of a TOML file is: maps config paths such as `buses[1].devices[0].address` to lines.

tomllib gives values without positions; validation errors must name the line, so this scanner follows the
table headers and `key = value` lines of the subset of TOML that site files use (tables, arrays of tables,
dotted keys, inline values). Anything it cannot place falls back to the nearest enclosing table's line.
"""

import re

_KEY = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=')


def _parts(dotted):
    return [p.strip().strip('"') for p in dotted.split(".")]


def line_map(text):
    """Returns {path: line number (1-based)} for every table header and key in `text`."""
    lines = {}
    last_index = {}  # plain dotted name of an array of tables -> index of its latest element
    counts = {}  # resolved path of an array of tables -> elements seen
    current = ""
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        is_array = stripped.startswith("[[")
        if stripped.startswith("["):
            name = stripped.strip("[]").split("#")[0].strip().rstrip("]").strip()
            parts = _parts(name)
            resolved = []
            for depth, part in enumerate(parts):
                plain = ".".join(parts[: depth + 1])
                resolved.append(part)
                if depth < len(parts) - 1 and plain in last_index:
                    resolved[-1] = "%s[%d]" % (part, last_index[plain])
            path = ".".join(resolved)
            if is_array:
                index = counts.get(path, 0)
                counts[path] = index + 1
                last_index[".".join(parts)] = index
                # a new element resets the indices of arrays nested below it
                for nested in [k for k in last_index if k.startswith(".".join(parts) + ".")]:
                    del last_index[nested]
                path = "%s[%d]" % (path, index)
            current = path
            lines.setdefault(current, number)
            continue
        match = _KEY.match(raw)
        if match:
            key = ".".join(_parts(match.group(1)))
            lines.setdefault(current + "." + key if current else key, number)
    return lines


def line_of(lines, path):
    """Line of `path`, or of its closest enclosing table/key that the file spells out; None if unknown.
    A rule's name in the checker's path (`rules.list[1](damper-open).for_s`) is not part of the TOML's."""
    path = re.sub(r"\]\([^)]*\)", "]", path)
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None
