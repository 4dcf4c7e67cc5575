"""Emulated instruments on ptys, read by two independent Modbus masters (minimalmodbus and pymodbus).

Expected values come from the scenario generators (engineering values) and the template text, never
from the emulator's own encoder, so the emulator and the firmware cannot share an encoding bug.
"""

import json
import math
import struct
import time

import minimalmodbus
import pytest
from pymodbus.client import ModbusSerialClient

from host_tools import REPO_ROOT
from host_tools.emulators.bus import EmulatedBus, build_buses, char_time
from host_tools.emulators.instruments import Instrument, load_template
from host_tools.emulators.scenario import Scenario, ScenarioError, SimClock, parse_start

START = 1714492800  # 2024-05-01T00:00:00+08:00 is 1714492800 (by hand: 2024-04-30T16:00:00Z)

SCN = {
    "start": START,
    "seed": 7,
    "devices": {
        "cems": {"points": {"so2": {"base": 35, "amp": 8, "period_s": 120, "noise": 1.5},
                            "no": {"steps": [[0, 20.5], [100000, 31.25]]}, "o2": 6.5, "no2": 3.75,
                            "nox": 40}},
        "dust": {"points": {"wind_speed": 3.4, "temperature": -7.3, "pm25": 41, "tsp": 180, "noise": 55.5}},
        "power": {"points": {"u1": 230.5, "power": 12.5, "freq": 50.0}},
        "damper": {"points": {"di1": 1, "di3": 1}},
        "voc": {"points": {"nmhc": {"base": 12, "amp": 3, "period_s": 50}, "ch4": 2.5}},
    },
}


def f32(v):
    return struct.unpack(">f", struct.pack(">f", v))[0]


@pytest.fixture
def scenario():
    return Scenario(json.loads(json.dumps(SCN)))


@pytest.fixture
def clock():
    # Scale 1 and a start in the middle of a second leave plenty of time to stay inside one tick.
    return SimClock(START + 1000, 1.0)


def make_bus(scenario, clock, specs, **kw):
    insts = [Instrument(name, tpl, addr, scenario.device(name), scenario.start) for name, tpl, addr in specs]
    return EmulatedBus("test", insts, clock, **kw)


def mm(path, address, timeout=0.3):
    inst = minimalmodbus.Instrument(path, address)
    inst.serial.baudrate = 9600
    inst.serial.timeout = timeout
    inst.clear_buffers_before_each_transaction = True
    return inst


def tick(clock):
    return int(math.floor(clock.now())) - START


def read_in_one_tick(clock, fn):
    """Runs fn() and returns (tick offset, result), retrying if a second boundary fell inside."""
    for _ in range(5):
        k0 = tick(clock)
        out = fn()
        if tick(clock) == k0:
            return k0, out
    raise AssertionError("could not read within one sim second")


def test_minimalmodbus_reads_scenario_values(scenario, clock):
    gen = scenario.device("cems").points
    with make_bus(scenario, clock, [("cems", "scs900uv", 1), ("dust", "cwt_uwd", 5)]) as bus:
        m = mm(bus.path, 1)
        k, so2 = read_in_one_tick(clock, lambda: m.read_float(12, functioncode=3))
        assert so2 == pytest.approx(f32(gen["so2"].value(k)), rel=1e-7)
        assert m.read_float(14) == f32(20.5)
        assert m.read_float(16) == 6.5
        assert m.read_float(18) == 3.75
        d = mm(bus.path, 5)
        # cwt_uwd: u16 x 0.1 at 500, s16 x 0.1 at 505, plain u16 at 507 and 514 (template text)
        assert d.read_register(500, number_of_decimals=1) == pytest.approx(3.4)
        assert d.read_register(505, number_of_decimals=1, signed=True) == pytest.approx(-7.3)
        assert d.read_register(507) == 41
        assert d.read_register(514) == 180
        assert d.read_register(506, number_of_decimals=1) == pytest.approx(55.5)
        # unmapped word inside the device's block reads 0; outside it is exception 2
        assert d.read_register(510) == 0
        with pytest.raises(minimalmodbus.IllegalRequestError):
            d.read_register(600)
        assert len(bus.entries("cems")) >= 4
        assert all(e["reply"] == "ok" for e in bus.entries("cems"))


def test_pymodbus_reads_scenario_values(scenario, clock):
    gen = scenario.device("voc").points
    with make_bus(scenario, clock, [("voc", "nmhc_fid", 1), ("power", "sdm630", 2),
                                    ("damper", "di4", 4)]) as bus:
        c = ModbusSerialClient(bus.path, baudrate=9600, timeout=0.5, retries=0)
        assert c.connect()
        try:
            def read_nmhc():
                rr = c.read_input_registers(2, count=2, device_id=1)
                return c.convert_from_registers(rr.registers, data_type=c.DATATYPE.FLOAT32)

            k, nmhc = read_in_one_tick(clock, read_nmhc)
            assert nmhc == pytest.approx(f32(gen["nmhc"].value(k)), rel=1e-7)
            rr = c.read_input_registers(6, count=2, device_id=1)
            assert c.convert_from_registers(rr.registers, data_type=c.DATATYPE.FLOAT32) == 2.5
            rr = c.read_input_registers(0, count=2, device_id=2)
            assert c.convert_from_registers(rr.registers, data_type=c.DATATYPE.FLOAT32) == 230.5
            # sdm630 power: f32 with scale 0.001 (W on the wire, kW after scaling) -> 12500 W raw
            rr = c.read_input_registers(52, count=2, device_id=2)
            assert c.convert_from_registers(rr.registers, data_type=c.DATATYPE.FLOAT32) == 12500.0
            rr = c.read_discrete_inputs(0, count=4, device_id=4)
            assert rr.bits[:4] == [True, False, True, False]
        finally:
            c.close()


def test_unknown_address_gets_silence(scenario, clock):
    with make_bus(scenario, clock, [("cems", "scs900uv", 1)]) as bus:
        with pytest.raises(minimalmodbus.NoResponseError):
            mm(bus.path, 9, timeout=0.1).read_register(10)
        assert bus.counters["unknown_address"] == 1
        assert bus.log == []
        assert mm(bus.path, 1).read_register(11) == 0


def fault_scenario(kind, **extra):
    data = json.loads(json.dumps(SCN))
    w = {"from": 0, "to": 10 ** 6, "kind": kind}
    w.update(extra)
    data["devices"]["cems"]["faults"] = [w]
    return Scenario(data)


@pytest.mark.parametrize("kind,error", [
    ("silent", minimalmodbus.NoResponseError),
    ("crc", minimalmodbus.InvalidResponseError),
    ("exception", minimalmodbus.SlaveReportedException),
    ("wrong_address", minimalmodbus.InvalidResponseError),
    ("garbage", minimalmodbus.ModbusException),
])
def test_faults_break_the_reply_and_are_logged(kind, error, clock):
    scenario = fault_scenario(kind)
    with make_bus(scenario, clock, [("cems", "scs900uv", 1)]) as bus:
        with pytest.raises(error):
            mm(bus.path, 1, timeout=0.15).read_float(16)
        assert [e["fault"] for e in bus.entries("cems")] == [kind]


def test_chunked_reply_still_reads(clock):
    scenario = fault_scenario("chunked", chunks=3, gap_ms=10)
    with make_bus(scenario, clock, [("cems", "scs900uv", 1)]) as bus:
        assert mm(bus.path, 1).read_float(16) == 6.5
        assert bus.entries(fault="chunked")


def test_late_reply_misses_timeout_then_arrives(clock):
    scenario = fault_scenario("late", delay_ms=150)
    with make_bus(scenario, clock, [("cems", "scs900uv", 1)]) as bus:
        m = mm(bus.path, 1, timeout=0.05)
        m.clear_buffers_before_each_transaction = False
        with pytest.raises(minimalmodbus.NoResponseError):
            m.read_float(16)
        assert bus.wait_for(lambda b: b.counters["tx_bytes"] >= 9, 5)
        assert bus.entries(fault="late")


def test_every_nth_request_is_faulted(clock):
    scenario = fault_scenario("crc", every=2)
    with make_bus(scenario, clock, [("cems", "scs900uv", 1)]) as bus:
        m = mm(bus.path, 1, timeout=0.15)
        results = []
        for _ in range(4):
            try:
                results.append(m.read_float(16))
            except minimalmodbus.InvalidResponseError:
                results.append("crc")
        assert results == ["crc", 6.5, "crc", 6.5]
        assert [e["fault"] for e in bus.entries()] == ["crc", None, "crc", None]


def test_status_flags_and_over_range_from_scenario(clock):
    data = json.loads(json.dumps(SCN))
    data["devices"]["cems"]["status"] = [{"from": 0, "to": 10 ** 6, "flag": "D"}]
    data["devices"]["cems"]["overrides"] = [{"from": 0, "to": 10 ** 6, "point": "so2", "value": 650}]
    data["devices"]["voc"]["status"] = [{"from": 0, "to": 10 ** 6, "flag": "M"}]
    scenario = Scenario(data)
    with make_bus(scenario, clock, [("cems", "scs900uv", 1), ("voc", "nmhc_fid", 2)]) as bus:
        m = mm(bus.path, 1)
        # scs900uv: D <- alarm byte (register 10 high byte, mask 0xFF00): lowest bit 0x0100
        assert m.read_register(10) == 0x0100
        assert m.read_float(12) == 650.0
        # nmhc_fid: M <- status bit 2 (mask 4) of input register 0
        assert mm(bus.path, 2).read_register(0, functioncode=4) == 4


def test_pacing_costs_at_least_the_wire_time(scenario, clock):
    with make_bus(scenario, clock, [("cems", "scs900uv", 1)], pacing=True) as bus:
        m = mm(bus.path, 1)
        t0 = time.monotonic()
        for _ in range(3):
            m.read_registers(10, 12)
        elapsed = time.monotonic() - t0
    # request 8 bytes + reply 5 + 24 bytes at 10 bits per character, 9600 baud
    wire = 3 * (8 + 29) * 10 / 9600.0
    assert char_time(9600) == 10 / 9600.0
    assert elapsed >= wire


def test_build_buses_from_reference_site(scenario, clock):
    site = json.loads((REPO_ROOT / "sites" / "reference.json").read_text())
    buses = build_buses(site, scenario, clock)
    try:
        assert sorted(buses) == [1, 2]
        assert sorted(buses[2].instruments) == [1, 2, 3, 4, 5]
        assert buses[1].path != buses[2].path
    finally:
        for b in buses.values():
            b.stop()


def test_scenario_generators_and_errors():
    assert parse_start("2024-05-01T00:00:00+08:00") == START
    with pytest.raises(ScenarioError):
        parse_start("2024-05-01T00:00:00")
    s = Scenario(json.loads(json.dumps(SCN)))
    cems = s.device("cems")
    assert cems.value("no", 99999) == 20.5 and cems.value("no", 100000) == 31.25
    # sine: base + amp * sin(2 pi k / period) + noise * u, |u| <= 1
    for k in (0, 30, 77):
        v = cems.value("so2", k)
        assert abs(v - (35 + 8 * math.sin(2 * math.pi * k / 120))) <= 1.5
    assert cems.value("so2", 5) == Scenario(json.loads(json.dumps(SCN))).device("cems").value("so2", 5)
    assert cems.value("unknown", 5) == 0
    with pytest.raises(ScenarioError):
        Scenario({"devices": {"x": {"faults": [{"from": 0, "to": 5, "kind": "smoke"}]}}})
    with pytest.raises(ScenarioError):
        Scenario({"devices": {"x": {"status": [{"from": 5, "to": 5, "flag": "C"}]}}})


def test_bundled_scenarios_load_and_name_site_devices():
    site = json.loads((REPO_ROOT / "sites" / "reference.json").read_text())
    names = {d["name"] for b in site["buses"] for d in b["devices"]}
    files = sorted((REPO_ROOT / "scenarios").glob("*.json"))
    assert files
    for path in files:
        s = Scenario.load(path)
        assert set(s.devices) <= names, path.name
        for dev in s.devices.values():
            tpl = next(load_template(d["template"]) for b in site["buses"] for d in b["devices"]
                       if d["name"] == dev.name)
            assert set(dev.points) <= set(tpl["points"]), (path.name, dev.name)


# ---- emlog simulate inputs and the host reference ---------------------------------------------------------
def test_parse_duration_forms():
    from host_tools.errors import UserError
    from host_tools.simulate import parse_duration

    assert parse_duration("1h") == 3600
    assert parse_duration("90m") == 5400
    assert parse_duration("3600s") == 3600
    assert parse_duration("3600") == 3600
    assert parse_duration("1h30m") == 5400
    for bad in ("", "1x", "h", "-5m", "0"):
        with pytest.raises(UserError):
            parse_duration(bad)


def test_simulate_user_mistakes_exit_2_without_traceback(tmp_path, capsys, monkeypatch):
    from host_tools import cli

    # only this command: the others belong to other modules and are tested there
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["host_tools.simulate"])
    main = cli.main

    assert main(["simulate", "--out", str(tmp_path), "--duration", "ten minutes"]) == 2
    err = capsys.readouterr().err
    assert "duration" in err and "Traceback" not in err
    assert main(["simulate", "--out", str(tmp_path), "--site", str(tmp_path / "nope.json")]) == 2
    assert "no such site file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"devices": {"cems": {"faults": [{"from": 0, "to": 9, "kind": "fire"}]}}}')
    assert main(["simulate", "--out", str(tmp_path), "--scenario", str(bad)]) == 2
    assert "fault kind" in capsys.readouterr().err


def test_period_flag_rule():
    from host_tools.reference_stats import period_flag

    assert period_flag(45, 60, 0.75, {"C": 15}) == "N"  # exactly 75 %
    assert period_flag(44, 60, 0.75, {"C": 16}) == "C"
    assert period_flag(40, 60, 0.75, {"M": 10, "T": 10}) == "M"  # tie: M before T
    assert period_flag(0, 60, 0.75, {"B": 30, "D": 30}) == "D"  # tie: D first


def test_reference_minute_by_hand():
    from host_tools.reference_stats import Reference

    site = {"site": {"utc_offset_min": 480},
            "logger": {"sample_s": 1, "min_interval_min": 1, "valid_fraction": 0.75, "o2_guard": 19.0},
            "buses": [{"name": "b", "uart": 1, "devices": [
                {"name": "cems", "template": "scs900uv", "address": 1},
                {"name": "flue", "template": "flue_params", "address": 2}]}],
            "stations": [{"name": "s", "channels": [
                {"code": "a21026", "source": "cems.so2", "o2_ref": 3.5},
                {"code": "a19001", "source": "cems.o2", "o2": True},
                {"code": "a00000", "source": "flue.flow", "flow": True}]}]}
    # so2 40 for 30 s then 60 (exact in float32), o2 7.0, flow 20; calibration during the last 10 s
    scn = Scenario({"start": START, "devices": {
        "cems": {"points": {"so2": {"steps": [[0, 40], [30, 60]]}, "o2": 7.0},
                 "status": [{"from": 50, "to": 60, "flag": "C"}]},
        "flue": {"points": {"flow": 20.0}}}})
    rec = Reference(site, scn).period(site["stations"][0], "min", START, START + 60)
    v = dict(rec["values"])
    so2 = v["a21026"]
    # valid samples: 30 x 40 + 20 x 60 (the 10 calibration samples excluded); 50 >= 45 -> N
    assert so2["Flag"] == "N"
    assert so2["Min"] == 40 and so2["Max"] == 60
    assert so2["Avg"] == pytest.approx((30 * 40 + 20 * 60) / 50.0)
    assert so2["ZsAvg"] == pytest.approx(so2["Avg"] * 17.5 / 14.0)
    assert so2["Cou"] == pytest.approx((30 * 40 + 20 * 60) * 20 * 1e-6)
    assert v["a00000"]["Cou"] == pytest.approx(60 * 20.0)
    assert "Cou" not in v["a19001"]
    # local-time alignment: 00:00:30 Beijing belongs to the minute starting at START
    assert Reference(site, scn).align(START + 30, 60) == START
