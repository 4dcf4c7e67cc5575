"""Site files for people (TOML with comments) -> the device config JSON (firmware/CONFIG.md).

The schema checks themselves live in the firmware (`firmware/app/config.py`), which runs them again at
boot; the host runs the same code under CPython, adds what only the host knows (the HJ 212 code table,
template placeholders left unfilled, spelling suggestions) and points every error at its file and line.
"""

import difflib
import importlib.util
import json
import tomllib
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.errors import UserError
from host_tools.tomlmap import line_map, line_of

TEMPLATES_DIR = REPO_ROOT / "sites" / "templates"
CODES = json.loads((REPO_ROOT / "protocols" / "codes.json").read_text(encoding="utf-8"))["codes"]
PLACEHOLDER = "CHANGE"


def firmware_module(relpath, name=None):
    """A firmware module loaded by path under CPython (no `app` package import, no device HAL)."""
    name = name or "emlog_fw_" + relpath.replace("/", "_").replace(".py", "")
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "firmware" / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _device_validator():
    return firmware_module("app/config.py", "emlog_device_config")


class SiteError(UserError):
    """All problems of one site file, each as 'FILE:LINE: what is wrong; how to fix it'."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("%d problem(s) in the site file:\n  " % len(problems) + "\n  ".join(problems))


def init_templates():
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.toml"))


def _placeholders(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _placeholders(value, path + "." + key if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _placeholders(value, "%s[%d]" % (path, i))
    elif isinstance(node, str) and node.startswith(PLACEHOLDER):
        yield path


def _host_checks(site):
    """Checks only the host can make: codes against the HJ 212 table, unfilled template placeholders."""
    problems = []
    for path in _placeholders(site):
        problems.append((path, "still the template's placeholder; put the real value here"))
    for s, station in enumerate(site.get("stations") or []):
        for c, channel in enumerate(station.get("channels") or []):
            code = channel.get("code") if isinstance(channel, dict) else None
            if isinstance(code, str) and code not in CODES:
                near = difflib.get_close_matches(code, CODES, n=1)
                hint = "did you mean %r?" % near[0] if near else "see protocols/codes.json for the known codes"
                where = "stations[%d].channels[%d].code" % (s, c)
                problems.append((where, "unknown HJ 212 code %r; %s" % (code, hint)))
    return problems


def load_site(path, allow_placeholders=False):
    """Reads and validates a site file; returns the device config dict (defaults filled in)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "create one with `emlog init --template boiler-nox --out %s`" % path
        raise UserError("%s: no such file; %s" % (path, hint)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError("%s: cannot read it (%s)" % (path, exc)) from None
    if path.suffix == ".json":  # an already compiled device config (what `emlog build` writes)
        try:
            site = json.loads(text)
        except ValueError as exc:
            raise UserError("%s: not valid JSON: %s" % (path, exc)) from None
        lines = {}
    else:
        try:
            site = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError("%s: not valid TOML: %s" % (path, exc)) from None
        lines = line_map(text)
    if isinstance(site, dict):
        site.setdefault("schema", 1)
    problems = [p for p in _host_checks(site) if not (allow_placeholders and "placeholder" in p[1])]
    validator = _device_validator()
    config = None
    try:
        config = validator.validate(site, folder=str(REPO_ROOT / "protocols" / "templates"))
    except validator.ConfigError as exc:
        # device messages read "path: what is wrong; expected ..."
        reported = {where for where, _ in problems}
        for line in exc.errors:
            where, _, message = line.partition(": ")
            if where not in reported:  # a placeholder already explains this value
                problems.append((where, _hint(where, message)))
    if problems:
        raise SiteError(_located(path, lines, problems))
    return config


def device_validated(config):
    """What the device's validator makes of `config` (defaults filled, presets expanded: what `emlog build`
    writes and seals), or None when it refuses it."""
    import copy

    validator = _device_validator()
    try:
        return validator.validate(copy.deepcopy(config), folder=str(REPO_ROOT / "protocols" / "templates"))
    except Exception:  # ConfigError, or a config too malformed for the checks: the logger validates it
        return None


def _hint(where, message):
    """Adds a spelling suggestion to the device checker's 'unknown key' and 'unknown template' messages."""
    key = where.rsplit(".", 1)[-1]
    if message.startswith("unknown key; expected one of "):
        options = [o.strip() for o in message[len("unknown key; expected one of "):].split(",")]
        near = difflib.get_close_matches(key, options, n=1)
        if near:
            return "unknown key %r; did you mean %r? (expected one of %s)" % (key, near[0], ", ".join(options))
    elif message.startswith("unknown template "):
        name = message.split("'")[1] if "'" in message else ""
        known = sorted(p.stem for p in (REPO_ROOT / "protocols" / "templates").glob("*.json"))
        near = difflib.get_close_matches(name, known, n=1)
        return "unknown template %r; %sexpected one of %s (files in protocols/templates/)" % (
            name, "did you mean %r? " % near[0] if near else "", ", ".join(known))
    return message


def locator(path):
    """where -> 'FILE:LINE' for config paths of the site file at `path` (host checks made after load_site)."""
    path = Path(path)
    try:
        lines = line_map(path.read_text(encoding="utf-8")) if path.suffix != ".json" else {}
    except OSError:
        lines = {}

    def where(config_path):
        return "%s:%s" % (path, line_of(lines, config_path) or "?")

    return where


def _located(path, lines, problems):
    out = []
    for where, message in problems:
        line = line_of(lines, where)
        out.append("%s:%s: %s: %s" % (path, line if line else "?", where, message))
    return out

