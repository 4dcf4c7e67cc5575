"""Runtime parameters changed by platform commands, kept across reboots in `params.json`.

config.json is the site's intent (written by `emlog build`); params.json holds what the platforms changed
since: per center+station `pw` (CN 1072), `overtime_s`/`recount` (1000), `realtime` (2011/2012), `status`
(2021/2022), and logger-wide `rtd_interval_s` (1062) and `min_interval_min` (1064): one acquisition serves
every center, so its intervals cannot differ per center. Stored values override the config at boot.

Writes go to `params.json.new`, then replace the old file by rename, so a power cut leaves either the old
or the new file, never half of one. Values read back are range-checked again: a damaged file must not
smuggle in an interval or password the validator would have refused (bad entries are ignored, logged).
"""

import json

from micropython import const

from app import log

_FILE = const("params.json")
MIN_INTERVALS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_WIRE_BAD = ";,=&\r\n"


def valid_pw(v):
    if not isinstance(v, str) or not 1 <= len(v) <= 32:
        return False
    for ch in v:
        if ch in _WIRE_BAD or not (32 < ord(ch) < 127):
            return False
    return True


def _int_in(lo, hi):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_bool(v):
    return v is True or v is False


LINK_CHECKS = {
    "pw": valid_pw,
    "overtime_s": _int_in(1, 99),
    "recount": _int_in(1, 99),
    "realtime": _is_bool,
    "status": _is_bool,
}
LOGGER_CHECKS = {
    "rtd_interval_s": _int_in(30, 3600),
    "min_interval_min": lambda v: v in MIN_INTERVALS and not isinstance(v, bool),
}


def _join(root, name):
    return (root.rstrip("/") + "/" + name) if root else name


class Params:
    def __init__(self, fs_root=""):
        self.path = _join(fs_root, _FILE)
        self.logger = {}
        self.links = {}  # "center/station" -> {key: value}
        self.load()

    def load(self):
        data = None
        for path in (self.path, self.path + ".new"):  # .new alone: a cut between write and rename
            try:
                with open(path) as f:
                    data = json.load(f)
                break
            except OSError:
                continue
            except ValueError as exc:
                log.error("params", "%s unreadable (%s); using config values" % (path, exc))
        if not isinstance(data, dict):
            return
        lg = data.get("logger")
        if isinstance(lg, dict):
            for k, v in lg.items():
                if k in LOGGER_CHECKS and LOGGER_CHECKS[k](v):
                    self.logger[k] = v
                else:
                    log.warn("params", "ignored stored logger.%s=%r" % (k, v))
        links = data.get("links")
        if isinstance(links, dict):
            for name, vals in links.items():
                if not isinstance(vals, dict):
                    continue
                good = {}
                for k, v in vals.items():
                    if k in LINK_CHECKS and LINK_CHECKS[k](v):
                        good[k] = v
                    else:
                        log.warn("params", "ignored stored %s.%s" % (name, k))
                self.links[name] = good

    def save(self):
        import os

        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            json.dump({"logger": self.logger, "links": self.links}, f)
        try:
            os.rename(tmp, self.path)
        except OSError:
            # Ports whose rename does not replace (FAT): remove then rename; load() reads .new meanwhile.
            try:
                os.remove(self.path)
            except OSError:
                pass
            os.rename(tmp, self.path)

    # -- logger-wide ---------------------------------------------------------------------------------

    def get_logger(self, key, default=None):
        return self.logger.get(key, default)

    def set_logger(self, key, value):
        if not LOGGER_CHECKS[key](value):
            raise ValueError("%s=%r out of range" % (key, value))
        self.logger[key] = value
        self.save()

    def overlay(self, cfg):
        """Applies stored logger-wide values onto a validated config (before acquisition starts)."""
        lg = cfg.setdefault("logger", {})
        for k, v in self.logger.items():
            lg[k] = v
        return cfg

    # -- per center + station ------------------------------------------------------------------------

    def get_link(self, center, station, key, default=None):
        return self.links.get(center + "/" + station, {}).get(key, default)

    def set_link(self, center, station, key, value):
        if not LINK_CHECKS[key](value):
            raise ValueError("%s out of range" % key)
        self.links.setdefault(center + "/" + station, {})[key] = value
        self.save()

    def link_values(self, center, station):
        return dict(self.links.get(center + "/" + station, {}))
