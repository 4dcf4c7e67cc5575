"""firmware/app/main.py wiring: config -> store, uplinks, rules, commands; records and events into the store,
rate-limited events kept but not sent, relays, the store's drop alarm reaching every link, audit entries.

Runs the real modules under the MicroPython unix port with a stand-in HAL (no buses are polled here: the
acquisition is driven through `tick` with the devices as they are before any poll, flag B).
"""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

import json
import os
import time

from app import commands, log
from app import main as appmain
from app.cp import encode_cp

INTERPRETERS = ("micropython",)
MICROPYTHON_HEAP = "2m"  # compiles main, config, rules, store, uplink ... from source; the device loads .mpy

T0 = 1710469800  # 2024-03-15 10:30:00 Beijing
MN = "31000000123456789ABCDEF0"

log.setup(sink=lambda line: None)


class Port:
    gap_us = 4011
    min_silence_ms = 5

    def write(self, data):
        pass

    async def read(self, buf, timeout_ms):
        return 0

    def drain(self, buf):
        return 0


class Hal:
    def __init__(self, root):
        self.root = root
        self.t = T0
        self.relay_calls = []

    def now(self):
        return self.t

    async def sleep_until(self, t):
        pass

    def uart(self, *args):
        return Port()

    def fs_root(self):
        return self.root

    def relay(self, name, on):
        self.relay_calls.append((name, on))


class Clock:
    def __init__(self, hal):
        self.now = hal.now
        self.sleep_until = hal.sleep_until

    async def sleep(self, s):
        pass


def _config(store=None):
    cfg = {
        "schema": 1,
        "site": {"name": "t", "utc_offset_min": 480},
        "logger": {"sample_s": 1, "rtd_interval_s": 30, "min_interval_min": 1},
        "buses": [{"name": "bus1", "uart": 1, "tx": 17, "rx": 16,
                   "devices": [{"name": "cems", "template": "scs900uv", "address": 1}]}],
        "stations": [{"name": "boiler", "mn": MN, "st": "31",
                      "channels": [{"code": "a21003", "source": "cems.no"}, {"code": "a19001", "source": "cems.o2"}]}],
        "centers": [{"name": "nat", "host": "127.0.0.1", "port": 9, "stations": {"boiler": {"pw": "123456"}}},
                    {"name": "prov", "host": "127.0.0.1", "port": 9, "realtime": False,
                     "stations": {"boiler": {"pw": "654321"}}}],
        "rules": {"wire": {"gap_s": 60, "burst": 2},
                  "list": [{"name": "no-high", "type": "limit", "channel": "boiler/a21003", "limit": 100,
                            "window": "rolling", "minutes": 1, "relay": "relay1"}]},
    }
    if store:
        cfg["store"] = store
    return cfg


_n = [0]


def _app(store=None):
    _n[0] += 1
    root = "/tmp/emlog-main-%d-%d" % (time.ticks_us() & 0xFFFFFF, _n[0])
    os.mkdir(root)
    with open(root + "/config.json", "w") as f:
        json.dump(_config(store), f)
    hal = Hal(root)
    cfg, errors = appmain.load_config(root)
    assert errors is None, errors
    return appmain.build(hal, Clock(hal), {}, root, T0, cfg), hal


def _seal(root, data):
    import binascii
    import hashlib

    with open(root + "/config.sha256", "w") as f:
        f.write(binascii.hexlify(hashlib.sha256(data).digest()).decode() + "\n")


def test_a_sealed_config_skips_the_validator_and_one_edited_after_the_build_is_validated():
    _n[0] += 1
    root = "/tmp/emlog-seal-%d-%d" % (time.ticks_us() & 0xFFFFFF, _n[0])
    os.mkdir(root)
    cfg = _config()
    cfg["buses"][0]["devices"][0]["address"] = 0  # the validator refuses it: proof that it did not run
    data = json.dumps(cfg).encode()
    with open(root + "/config.json", "wb") as f:
        f.write(data)
    _seal(root, data)
    got, errors = appmain.load_config(root)
    assert errors is None and got == cfg
    # the same bytes with one more character (a hand edit): the seal no longer matches, the validator runs
    with open(root + "/config.json", "wb") as f:
        f.write(data + b" ")
    got, errors = appmain.load_config(root)
    assert got is None and [e for e in errors if e.startswith("buses[0].devices[0].address")], errors
    # a good config with a wrong seal is validated and taken
    with open(root + "/config.json", "w") as f:
        json.dump(_config(), f)
    got, errors = appmain.load_config(root)
    assert errors is None and got["logger"]["valid_fraction"] == 0.75  # defaults filled: the validator ran


def _min(t, v):
    return {"kind": "min", "station": "boiler", "t": t,
            "values": [["a21003", {"Min": v, "Avg": v, "Max": v, "Flag": "N"}], ["a19001", {"Avg": 9.5, "Flag": "N"}]]}


def test_validators_are_unloaded_and_the_app_runs_on_the_store():
    app, hal = _app()
    assert "app.config" not in sys.modules and "app.rules.check" not in sys.modules
    assert app.mode == "run" and app.config_summary()[0].startswith("site t")
    assert [u.name for u in app.links] == ["nat/boiler", "prov/boiler"]
    assert app.store.root == hal.root + "/store"
    assert app.commands.history is app.store and app.commands.rules is app.rules
    # a record is stored once, pending for both centers; a realtime record only for the realtime one
    app.on_record(_min(T0, 5.5))
    app.on_record({"kind": "rtd", "station": "boiler", "t": T0, "values": [["a21003", {"Rtd": 5.5, "Flag": "N"}]]})
    assert [app.store.pending_count(u.name) for u in app.links] == [2, 1]
    got = [rec for ref, rec in app.store.pending("prov/boiler")]
    assert got[0]["kind"] == "min" and got[0]["values"][0] == ["a21003", {"Min": 5.5, "Avg": 5.5, "Max": 5.5,
                                                                           "Flag": "N"}]
    # a connected link is handed the record at once (live), a disconnected one finds it later
    app.links[0].link.connected = True
    app.on_record(_min(T0 + 60, 6.5))
    assert len(app.links[0].backlog.live) == 1 and app.links[1].backlog.live == []
    snap = json.loads(json.dumps(app.snapshot()))
    assert snap["links"]["nat/boiler"]["queue"] == 4  # 3 stored + the 2081 notice
    assert snap["store"]["appended"] == 3 and snap["rules"]["level"] == "none"
    assert app.store_view()["pending"] == {"nat/boiler": 3, "prov/boiler": 2}
    # links hold the record's CP text, not the record: encoded once (from the values as produced, not
    # the store's f32 copies), one object shared by the station's links
    app.links[1].link.connected = True
    rec = _min(T0 + 120, 0.1234565)  # prints 0.123456; its f32 copy in the store 0.123457
    app.on_record(rec)
    held = [u.backlog.live[-1] for u in app.links]
    assert held[0][3] == encode_cp(rec, 480 * 60).encode() and held[0][3] is held[1][3]
    assert held[0][1:3] == ("min", T0 + 120)


def test_events_are_all_stored_floods_thinned_on_the_wire_only():
    app, hal = _app()
    for k in range(4):  # burst 2: the third and fourth start of the same alarm are not sent
        app.on_event({"t": T0 + k, "rule": "no-high", "type": "limit", "station": "boiler", "state": "start",
                      "evidence": {"value": 120 + k}, "text": "limit no-high %d" % k, "code": "a21003"})
    hal.t = T0 + 10
    app.on_event({"t": None, "rule": "alert", "type": "alert", "station": None, "state": "level",
                  "evidence": {}, "text": "alert level none -> red (platform)"})
    evts = [rec["data"] for ref, rec in app.store.pending("nat/boiler") if rec["kind"] == "evt"]
    assert [e.get("wire", 1) for e in evts] == [1, 1, 0, 0, 1]
    assert evts[-1]["t"] == T0 + 10  # a level event without a time gets the clock's
    assert app.rules.snapshot()["wire_suppressed"] == 2
    # the uplink turns them into 3020 uploads (CP text held as bytes), skipping the thinned ones
    up = app.links[0]
    cps = [up._held(ref, rec)[3] for ref, rec in app.store.pending("nat/boiler") if rec["kind"] == "evt"]
    assert [cp is None for cp in cps] == [False, False, True, True, False]
    assert cps[0] == b"DataTime=20240315103000;PolId=a21003;i11001-Info=//limit no-high 0//;i12003-Info=1"
    assert cps[4] == b"DataTime=20240315103010;i11001-Info=//alert level none -> red (platform)//"


def test_relays_follow_the_rules_and_change_only_on_edges():
    app, hal = _app()
    state = {"relay1": True}
    app.rules.relays = lambda: dict(state)
    app.apply_relays()
    app.apply_relays()
    state["relay1"] = False
    app.apply_relays()
    assert hal.relay_calls == [("relay1", True), ("relay1", False)]
    assert app.snapshot()["rules"]["relays"] == {"relay1": False}


def test_store_drop_alarm_reaches_every_link_and_audit_is_stored():
    app, hal = _app(store={"max_bytes": 16384, "seg_bytes": 1024})
    for up in app.links:
        up.backlog.done = True  # idle links, nothing left in their last pass
    vals = [["a%05d" % k, {"Rtd": 1.5 + k, "Flag": "N"}] for k in range(20)]
    k = 0
    while app.store.dropped == 0 and k < 2000:
        app.on_record({"kind": "rtd", "station": "boiler", "t": T0 + 30 * k, "values": vals})
        k += 1
    assert app.store.dropped > 0
    assert [up.backlog.done for up in app.links] == [False, False]  # told to look at the store again
    alarms = [rec["data"] for ref, rec in app.store.pending("prov/boiler") if rec["kind"] == "evt"]
    assert alarms and alarms[0]["alarm"] == "store_drop" and alarms[0]["dropped"]["rtd"] > 0
    assert app.links[1]._held(None, {"kind": "evt", "t": T0, "data": alarms[0]})[3].startswith(
        b"DataTime=20240315103000;i11001-Info=//store_drop: record store full, ")
    commands.audit("console", "RtdInterval", 30, 60)
    auds = [r["data"] for r in app.store.query("aud", "", T0, T0)]
    assert auds[-1] == ["console", "RtdInterval", "30", "60"]
