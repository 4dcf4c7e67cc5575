"""Registered loggers (MN, PW, ST, protocol version) and the check every received frame goes through.

File format (`--devices FILE`), JSON or TOML:

    {"devices": [{"mn": "31000000123456789ABCDEF0", "pw": "123456", "st": "31", "version": "2017"}]}

    [[devices]]
    mn = "31000000123456789ABCDEF0"
    pw = "123456"
    st = "31"          # optional: any ST accepted when absent
    version = "2017"   # optional: "2005", "2017" or "2025"
"""

import json
import tomllib
from pathlib import Path

from host_tools.errors import UserError

# Versions a device may declare (compared with Packet.version, i.e. the Flag version bits).
VERSIONS = ("2005", "2017", "2025")

# QnRtn codes (HJ 212-2017 Table 7) used by the platform when rejecting a frame.
QNRTN_PW = 3
QNRTN_MN = 4
QNRTN_ST = 5
QNRTN_FLAG = 6


class Device:
    __slots__ = ("mn", "pw", "st", "version")

    def __init__(self, mn, pw, st=None, version=None):
        self.mn = mn
        self.pw = pw
        self.st = st
        self.version = version

    def __repr__(self):
        return "Device(%r, pw=%r, st=%r, version=%r)" % (self.mn, self.pw, self.st, self.version)


class Registry:
    """Devices by MN. An empty registry with `open_mode=True` accepts every frame (commissioning)."""

    def __init__(self, devices=(), open_mode=None):
        self.devices = {}
        for dev in devices:
            self.add(dev)
        self.open_mode = (not self.devices) if open_mode is None else open_mode

    def add(self, device):
        self.devices[device.mn] = device
        self.open_mode = False

    def get(self, mn):
        return self.devices.get(mn)

    def check(self, packet):
        """QnRtn for a frame from a logger that fails registration, or None when it is accepted.

        Order follows the logger-side order of hj212.md §5.2 for the fields the platform knows: ST, PW, MN
        are checked as MN (unknown device) first because PW and ST only mean something for a known MN.
        """
        if self.open_mode:
            return None
        dev = self.devices.get(packet.mn)
        if dev is None:
            return QNRTN_MN
        if dev.pw is not None and packet.pw != dev.pw:
            return QNRTN_PW
        # Replies (ST=91) carry the system ST, not the station's.
        if dev.st is not None and packet.st not in (dev.st, "91"):
            return QNRTN_ST
        if dev.version is not None and packet.version != int(dev.version):
            return QNRTN_FLAG
        return None

    def set_password(self, mn, new_pw):
        dev = self.devices.get(mn)
        if dev is not None:
            dev.pw = new_pw

    @classmethod
    def load(cls, path):
        """Read a registry file; every problem is a UserError naming the file and the fix."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(
                "cannot read devices file %s: %s; pass an existing JSON or TOML file"
                % (path, exc.strerror or exc)
            ) from None
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise UserError(
                "devices file %s is not valid %s: %s"
                % (path, "TOML" if path.suffix.lower() == ".toml" else "JSON", exc)
            ) from None
        items = data.get("devices") if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise UserError('devices file %s: expected a non-empty list under "devices"' % path)
        devices = []
        seen = set()
        for i, item in enumerate(items):
            where = "devices file %s, device #%d" % (path, i + 1)
            if not isinstance(item, dict):
                raise UserError("%s: expected a table/object with mn and pw" % where)
            mn = _text(item, "mn", where, required=True)
            pw = _text(item, "pw", where, required=True)
            if len(pw) != 6:
                raise UserError("%s: pw %r must be 6 characters (HJ 212 PW is C6)" % (where, pw))
            st = _text(item, "st", where)
            version = _text(item, "version", where)
            if version is not None and version not in VERSIONS:
                raise UserError(
                    "%s: version %r unknown; use one of %s" % (where, version, ", ".join(sorted(VERSIONS)))
                )
            unknown = set(item) - {"mn", "pw", "st", "version", "name"}
            if unknown:
                raise UserError(
                    "%s: unknown key(s) %s; allowed: mn, pw, st, version, name"
                    % (where, ", ".join(sorted(unknown)))
                )
            if mn in seen:
                raise UserError("%s: MN %s listed twice" % (where, mn))
            seen.add(mn)
            devices.append(Device(mn, pw, st, version))
        return cls(devices)


def _text(item, key, where, required=False):
    value = item.get(key)
    if value is None:
        if required:
            raise UserError("%s: %r is missing" % (where, key))
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise UserError("%s: %r must be a non-empty string" % (where, key))
    return value
