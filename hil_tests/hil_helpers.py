"""Helpers shared by the HIL test modules (imported as `hil_helpers`; pytest puts this folder on the path)."""

import json

from host_tools import REPO_ROOT
from host_tools.emulators.scenario import Scenario


def reference_site():
    return json.loads((REPO_ROOT / "sites" / "reference.json").read_text(encoding="utf-8"))


def load_scenario(name):
    return Scenario.load(REPO_ROOT / "scenarios" / (name + ".json"))


def first_records(sim, kind):
    """{(station, t): record} keeping the first frame of each period (a retried frame may come twice)."""
    out = {}
    for r in sim.records(kind=kind):
        if r.get("crc_ok") is False or r.get("error") or "t" not in r:
            continue
        out.setdefault((r["station"], r["t"]), r)
    return out


def find_counters(stats, device):
    """The counters dict of `device` anywhere inside the firmware's stats JSON (None if absent)."""
    if isinstance(stats, dict):
        for key, val in stats.items():
            if key == device and isinstance(val, dict):
                return val
        for val in stats.values():
            found = find_counters(val, device)
            if found is not None:
                return found
    elif isinstance(stats, list):
        for val in stats:
            if isinstance(val, dict) and val.get("name") == device:
                return val
            found = find_counters(val, device)
            if found is not None:
                return found
    return None


def counter(counters, *substrings):
    """Sum of the numeric counters whose name contains one of `substrings`."""
    return sum(v for k, v in counters.items()
               if isinstance(v, (int, float)) and any(s in k.lower() for s in substrings))
