"""Device config validation (firmware/app/config.py) and the boot counter (firmware/boot.py)."""

import json
import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

import boot
from app import config
from portable import raises

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "256k"  # compiling config.py + rules/check.py from source; the device loads .mpy


def _reference():
    with open("sites/reference.json") as f:
        return json.load(f)


def _small():
    return {
        "schema": 1,
        "site": {"name": "t"},
        "buses": [
            {
                "name": "b1",
                "uart": 1,
                "tx": 17,
                "rx": 16,
                "de": 4,
                "devices": [{"name": "cems", "template": "scs900uv", "address": 1}],
            }
        ],
        "stations": [
            {
                "name": "s1",
                "mn": "31000000123456789ABCDEF0",
                "st": "31",
                "channels": [
                    {"code": "a21003", "source": "cems.no"},
                    {"code": "a21004", "source": "cems.no2"},
                    {"code": "a21002", "nox_from": ["a21003", "a21004"], "o2_ref": 3.5},
                    {"code": "a19001", "source": "cems.o2", "o2": True},
                ],
            }
        ],
        "centers": [{"name": "c1", "host": "127.0.0.1", "port": 9001, "stations": {"s1": {"pw": "123456"}}}],
    }


def _errors(cfg):
    with raises(config.ConfigError) as r:
        config.validate(cfg)
    return r.value.errors


def _has(errors, path, words):
    """One error starts with `path: ` and contains `words`."""
    for e in errors:
        if e.startswith(path + ": ") and words in e:
            return True
    raise AssertionError("no error %r ... %r in %r" % (path, words, errors))


def test_reference_site_is_valid_and_defaults_filled():
    cfg = config.validate(_reference())
    assert cfg["logger"]["min_interval_min"] == 1
    assert cfg["centers"][0]["overtime_s"] == 10
    assert cfg["store"]["max_bytes"] == 1536 * 1024  # default filled
    assert cfg["buses"][1]["devices"][4]["poll_s"] == 1


def test_defaults_of_a_small_config():
    cfg = config.validate(_small())
    assert cfg["site"]["utc_offset_min"] == 480
    lg = cfg["logger"]
    assert (lg["sample_s"], lg["rtd_interval_s"], lg["min_interval_min"]) == (1, 30, 10)
    assert lg["valid_fraction"] == 0.75 and lg["o2_guard"] == 19.0
    bus = cfg["buses"][0]
    assert (bus["baud"], bus["parity"], bus["stop_bits"], bus["timeout_ms"], bus["retries"]) == (
        9600,
        "N",
        1,
        300,
        1,
    )
    assert bus["backoff_s"] == [2, 60] and bus["devices"][0]["poll_s"] == 1
    ce = cfg["centers"][0]
    assert (ce["version"], ce["overtime_s"], ce["recount"], ce["realtime"]) == (2017, 10, 3, True)
    ch = cfg["stations"][0]["channels"]
    assert ch[3]["o2"] is True and ch[0]["o2"] is False and ch[0]["flow"] is False


def test_unknown_keys_are_reported_with_their_path():
    cfg = _small()
    cfg["logger"] = {"sample_s": 1, "sampel_s": 2}
    cfg["buses"][0]["devices"][0]["adress"] = 3
    errs = _errors(cfg)
    _has(errs, "logger.sampel_s", "unknown key")
    _has(errs, "buses[0].devices[0].adress", "unknown key; expected one of name, template, address, poll_s")


def test_types_and_ranges():
    cfg = _small()
    cfg["logger"] = {"min_interval_min": 7, "rtd_interval_s": 20, "valid_fraction": 0, "sample_s": "1"}
    cfg["buses"][0]["devices"][0]["address"] = 0
    cfg["buses"][0]["baud"] = 9601
    cfg["centers"][0]["port"] = True
    errs = _errors(cfg)
    _has(
        errs,
        "logger.min_interval_min",
        "7 is not allowed; expected one of 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30",
    )
    _has(errs, "logger.rtd_interval_s", "20 out of range; expected 30..3600")
    _has(errs, "logger.valid_fraction", "expected a number in (0, 1]")
    _has(errs, "logger.sample_s", "is a string; expected an integer")
    _has(errs, "buses[0].devices[0].address", "0 out of range; expected 1..247")
    _has(errs, "buses[0].baud", "9601 is not allowed")
    _has(errs, "centers[0].port", "is a boolean; expected an integer")


def test_rtd_interval_bounds_are_inclusive():
    for v in (30, 3600):
        cfg = _small()
        cfg["logger"] = {"rtd_interval_s": v}
        assert config.validate(cfg)["logger"]["rtd_interval_s"] == v
    cfg = _small()
    cfg["logger"] = {"rtd_interval_s": 3601}
    _has(_errors(cfg), "logger.rtd_interval_s", "3601 out of range")


def test_sample_period_must_divide_a_minute_and_poll_be_a_multiple():
    cfg = _small()
    cfg["logger"] = {"sample_s": 7}
    _has(_errors(cfg), "logger.sample_s", "does not divide 60")
    cfg = _small()
    cfg["logger"] = {"sample_s": 2}
    cfg["buses"][0]["devices"][0]["poll_s"] = 3
    _has(_errors(cfg), "buses[0].devices[0].poll_s", "not a multiple of logger.sample_s (2)")


def test_unknown_template_and_sources():
    cfg = _small()
    cfg["buses"][0]["devices"].append({"name": "x", "template": "no_such_meter", "address": 2})
    ch = cfg["stations"][0]["channels"]
    ch.append({"code": "a01012", "source": "flue.temperature"})
    ch.append({"code": "a21026", "source": "cems.so3"})
    ch.append({"code": "a01013", "source": "cems"})
    errs = _errors(cfg)
    _has(errs, "buses[0].devices[1].template", "unknown template 'no_such_meter'")
    _has(errs, "stations[0].channels[4].source", "unknown device 'flue'")
    _has(errs, "stations[0].channels[5].source", "unknown point 'so3' of device 'cems'; expected one of")
    _has(errs, "stations[0].channels[6].source", "has no point")


def test_duplicates():
    cfg = _small()
    bus = cfg["buses"][0]
    bus["devices"].append({"name": "cems2", "template": "scs900uv", "address": 1})
    cfg["buses"].append(
        {
            "name": "b1",
            "uart": 1,
            "tx": 17,
            "rx": 26,
            "de": 4,
            "devices": [{"name": "cems", "template": "di4", "address": 1}],
        }
    )
    st = cfg["stations"][0]
    cfg["stations"].append(
        {"name": "s1", "mn": "X1", "st": "31", "channels": [{"code": "a", "source": "cems.o2"}]}
    )
    st["channels"].append({"code": "a21003", "source": "cems.no"})
    cfg["centers"].append({"name": "c1", "host": "h", "port": 1, "stations": {"s1": {"pw": "1"}}})
    errs = _errors(cfg)
    _has(errs, "buses[0].devices[1].address", "address 1 is already used by buses[0].devices[0].address")
    _has(errs, "buses[1].name", "bus name 'b1' is already used")
    _has(errs, "buses[1].uart", "UART 1 is already used by buses[0].uart")
    _has(errs, "buses[1].tx", "pin 17 is already used by buses[0].tx")
    _has(errs, "buses[1].de", "pin 4 is already used by buses[0].de")
    _has(errs, "buses[1].devices[0].name", "device name 'cems' is already used")
    _has(errs, "stations[1].name", "station name 's1' is already used")
    _has(errs, "stations[0].channels[4].code", "code 'a21003' is already used")
    _has(errs, "centers[1].name", "center name 'c1' is already used")
    # the same address on two different buses is fine
    cfg = _small()
    cfg["buses"].append(
        {
            "name": "b2",
            "uart": 2,
            "tx": 25,
            "rx": 26,
            "de": 27,
            "devices": [{"name": "dust", "template": "cwt_uwd", "address": 1}],
        }
    )
    config.validate(cfg)


def test_pin_shared_between_rx_and_de_of_different_buses():
    cfg = _small()
    cfg["buses"].append(
        {
            "name": "b2",
            "uart": 2,
            "tx": 25,
            "rx": 4,
            "de": 27,
            "devices": [{"name": "dust", "template": "cwt_uwd", "address": 1}],
        }
    )
    _has(_errors(cfg), "buses[1].rx", "pin 4 is already used by buses[0].de")


def test_station_without_mn_and_center_without_password():
    cfg = _small()
    del cfg["stations"][0]["mn"]
    cfg["centers"][0]["stations"] = {"s1": {}, "s9": {"pw": "1"}}
    errs = _errors(cfg)
    _has(errs, "stations[0].mn", "missing; expected the station's MN")
    _has(errs, "centers[0].stations.s1.pw", "missing; expected the station's password on this center")
    _has(errs, "centers[0].stations.s9", "unknown station; expected one of s1")


def test_channel_rules():
    cfg = _small()
    ch = cfg["stations"][0]["channels"]
    ch[2]["nox_from"] = ["a21003", "a99999"]
    ch.append({"code": "a21026", "source": "cems.so2", "nox_from": ["a21003", "a21004"]})
    ch.append({"code": "a34002", "source": "cems.no", "from_unit": "ppb"})
    ch.append({"code": "a21005", "source": "cems.no", "from_unit": "ppm"})
    ch.append({"code": "a19002", "source": "cems.o2", "o2": True})
    errs = _errors(cfg)
    _has(errs, "stations[0].channels[2].nox_from", "'a99999' is not a channel with a source")
    _has(errs, "stations[0].channels[4]", "has both; expected exactly one of source or nox_from")
    _has(errs, "stations[0].channels[5].unit", "cannot convert 'ppb' to 'mg/m3'")
    _has(errs, "stations[0].channels[6].molar_mass", "missing")
    _has(errs, "stations[0].channels[7].o2", "second O2 channel (first is stations[0].channels[3])")
    cfg = _small()
    del cfg["stations"][0]["channels"][3]
    _has(_errors(cfg), "stations[0].channels[2].o2_ref", "needs the station's O2 channel")


def test_all_errors_are_collected_and_schema_checked():
    cfg = _small()
    cfg["schema"] = 2
    cfg["centers"][0]["version"] = 2005
    errs = _errors(cfg)
    _has(errs, "schema", "expected 1")
    _has(errs, "centers[0].version", "expected one of 2017")
    assert len(errs) == 2


def test_wire_breaking_characters_rejected():
    cfg = _small()
    cfg["centers"][0]["stations"]["s1"]["pw"] = "a;b"
    _has(_errors(cfg), "centers[0].stations.s1.pw", "contains ';'")


def test_load_missing_and_broken_files():
    with raises(config.ConfigError) as r:
        config.load("/nonexistent/emlog/config.json")
    assert "cannot read" in str(r.value)
    path = "/tmp/emlog-test-fw-config.json"
    with open(path, "w") as f:
        f.write('{"schema": 1,')
    with raises(config.ConfigError) as r:
        config.load(path)
    assert "not valid JSON" in str(r.value)
    with open(path, "w") as f:
        json.dump(_small(), f)
    assert config.load(path)["stations"][0]["name"] == "s1"


def _fresh_root(name):
    import os

    root = "/tmp/emlog-test-" + name
    try:
        os.mkdir(root)
    except OSError:
        pass
    try:
        os.remove(root + "/" + boot.STATE)
    except OSError:
        pass
    return root


def test_boot_counter_enters_safe_mode_after_three_failed_boots():
    root = _fresh_root("boot1")
    for n in range(1, 4):
        st = boot.run(root)
        assert st["failed"] == n and not st["safe"], st
    st = boot.run(root)  # three boots never became healthy before this one
    assert st["safe"] and st["boots"] == 4
    assert boot.read(root)["safe"] == st["safe"]  # persisted
    assert boot.run(root)["safe"]  # stays until cleared
    boot.clear(root)
    st = boot.run(root)
    assert not st["safe"] and st["failed"] == 1


def test_boot_marked_good_resets_the_count():
    root = _fresh_root("boot2")
    for _ in range(10):
        boot.run(root)
        boot.mark_good(root)
    st = boot.run(root)
    assert not st["safe"] and st["failed"] == 1 and st["boots"] == 11


def test_corrupt_boot_state_does_not_stop_the_boot():
    root = _fresh_root("boot3")
    with open(root + "/" + boot.STATE, "w") as f:
        f.write("\x00garbage")
    st = boot.run(root)
    assert st["boots"] == 1 and st["failed"] == 1
