"""The config's `rules` section (app/rules/check.py via app.config.validate): presets, errors naming the rule."""

import json
import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from app import config
from app.rules import check
from portable import raises

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "160k"  # compiling config.py and check.py from source; the device loads .mpy


def _cfg(rules):
    with open("sites/reference.json") as f:
        cfg = json.load(f)
    cfg["rules"] = {"list": rules}
    return cfg


GOOD = [
    {"name": "boiler-nox", "type": "limit", "channel": "boiler/a21002", "preset": "gb13271-2014/gas-new-nox",
     "warn_fraction": 0.8},
    {"name": "dust-pm10", "type": "limit", "channel": "dust/a34002", "preset": "db13-2934-2019/pm10"},
    {"name": "voc-nmhc", "type": "limit", "channel": "voc/a24088", "preset": "db32-4041-2021/nmhc", "limit": 50},
    {"name": "damper", "type": "bypass", "kind": "damper", "input": "damper.di1", "running": "prod_power.power",
     "running_above": 5, "relay": "relay1"},
    {"name": "fan-off", "type": "power", "kind": "not_running", "production": "prod_power.power",
     "treatment": "fan_power.power", "on_kw": 5, "idle_kw": 1},
    {"name": "emergency", "type": "emergency",
     "lines": {"coating": {"point": "prod_power.power", "on_kw": 5}}, "levels": {"orange": {"coating": 0}}},
    {"name": "nox-flat", "type": "quality", "kind": "flatline", "channel": "boiler/a21002", "for_s": 1800},
]


def _errors(rules):
    with raises(config.ConfigError) as r:
        config.validate(_cfg(rules))
    return r.value.errors


def _one(rules, name, words):
    errs = _errors(rules)
    hits = [e for e in errs if "(" + name + ")" in e.split(":")[0] and words in e]
    assert hits, (name, words, errs)


def test_good_rules_validate_presets_merge_and_report_unverified():
    cfg = config.validate(_cfg([dict(r) for r in GOOD]))
    nox = cfg["rules"]["list"][0]
    # GB 13271 gas boiler NOx: 200 mg/m3 at 3.5 % O2, hourly, all from the preset file
    assert nox["limit"] == 200 and nox["o2_ref"] == 3.5 and nox["zs"] is True and nox["window"] == "hour"
    assert "limit=200 [U]" in nox["unverified"] and "o2_ref=3.5 [U]" in nox["unverified"]
    pm10 = cfg["rules"]["list"][1]
    assert pm10["limit"] == 0.08 and pm10["background_cap"] == 0.15 and pm10["daily_max"] == 2
    assert pm10["unverified"] == []  # the Hebei values are all marked verified
    voc = cfg["rules"]["list"][2]
    assert voc["limit"] == 50 and "limit" not in voc["from_preset"]  # the site override wins
    lines = check.report(cfg)
    assert len(lines) == 2 and "boiler-nox" in lines[0] and "NOT VERIFIED" in lines[0]
    assert "voc-nmhc" in lines[1] and "limit=" not in lines[1] and "window=hour [P]" in lines[1]
    again = config.validate(cfg)  # validating the output again gives the same result (idempotent)
    assert again["rules"]["list"][0]["unverified"] == nox["unverified"]
    assert cfg["rules"]["wire"] == {"gap_s": 60, "burst": 5} and cfg["rules"]["alert"]["level"] == "none"


def test_unknown_channel_and_point_name_the_rule():
    _one([{"name": "nox", "type": "limit", "channel": "boiler/a99999", "limit": 100}], "nox", "unknown channel")
    _one([{"name": "nox", "type": "limit", "channel": "stack9/a21002", "limit": 100}], "nox", "unknown station")
    _one([{"name": "dmp", "type": "bypass", "kind": "damper", "input": "damper.di9"}], "dmp", "unknown point")
    _one([{"name": "dmp", "type": "bypass", "kind": "damper", "input": "valve.di1"}], "dmp", "unknown device")


def test_station_of_a_site_wide_rule_must_be_a_configured_one():
    good = dict(GOOD[3], station="voc")
    cfg = config.validate(_cfg([good]))
    assert cfg["rules"]["list"][0]["station"] == "voc"
    _one([dict(GOOD[4], station="paint")], "fan-off", "unknown station 'paint'; expected one of boiler, dust, voc")
    _one([dict(GOOD[5], station=3)], "emergency", "unknown station 3")
    _one([dict(GOOD[0], station="voc")], "boiler-nox", "unknown key")  # a limit's station is its channel's


def test_impossible_thresholds_rejected():
    _one([{"name": "nox", "type": "limit", "channel": "boiler/a21002", "limit": 0}], "nox", "impossible")
    _one([{"name": "nox", "type": "limit", "channel": "boiler/a21002", "limit": -5}], "nox", "impossible")
    _one([{"name": "nox", "type": "limit", "channel": "boiler/a21002", "limit": 100, "warn_fraction": 1.5}],
         "nox", "warn_fraction")
    _one([{"name": "der", "type": "power", "kind": "derate", "production": "prod_power.power",
           "treatment": "fan_power.power", "on_kw": 5, "idle_kw": 10, "rated_kw": 30, "fraction": 0.2}],
         "der", "impossible threshold")
    _one([{"name": "off", "type": "quality", "kind": "offset", "channel": "boiler/a21002", "step": 5, "band": 8}],
         "off", "band < step")
    _one([{"name": "ts", "type": "limit", "channel": "boiler/a21003", "limit": 100, "zs": True}], "ts", "no o2_ref")


def test_missing_power_meter_and_emergency_errors():
    _one([{"name": "fan", "type": "power", "kind": "not_running", "treatment": "fan_power.power", "on_kw": 5,
           "idle_kw": 1}], "fan", "power meter")
    _one([{"name": "em", "type": "emergency", "lines": {"kiln": {"on_kw": 5}}, "levels": {"red": {"kiln": 0}}}],
         "em", "power meter")
    _one([{"name": "em", "type": "emergency", "lines": {"kiln": {"point": "prod_power.power"}},
           "levels": {"red": {"mill": 0}}}], "em", "unknown line")
    _one([{"name": "mf", "type": "bypass", "kind": "main_flow", "input": "boiler/a00000", "below": 2}],
         "mf", "production power")


def test_preset_errors_and_unknown_keys():
    _one([{"name": "so2", "type": "limit", "channel": "boiler/a21026", "preset": "gb13271-2014/gas-new-nox"}],
         "so2", "a limit for a21002")
    _one([{"name": "x", "type": "limit", "channel": "boiler/a21002", "preset": "gb13271-2014/nope"}], "x",
         "no preset")
    _one([{"name": "u", "type": "limit", "channel": "boiler/a21002", "preset": "ultra-low/nox"}], "u",
         "reference O2")  # channel converts to 3.5 %, ultra-low is at 6 %
    _one([{"name": "k", "type": "bypass", "kind": "damper", "input": "damper.di1", "treshold": 3}], "k",
         "unknown key")
    errs = _errors([{"name": "a", "type": "limit", "channel": "boiler/a21002", "limit": 1},
                    {"name": "a", "type": "limit", "channel": "boiler/a21026", "limit": 1}])
    assert [e for e in errs if "already used" in e], errs
