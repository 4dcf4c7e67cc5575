"""Instrument models: a Modbus RTU slave whose registers follow a scenario over simulated time.

The register map is the instrument's template (`protocols/templates/<id>.json`); engineering values are
encoded with the same value encoders the firmware decodes with (`protocols.modbus.values`), but the
emulator is checked independently against minimalmodbus and pymodbus (tests/test_emulators.py), so the
two cannot share a bug unnoticed.

`Instrument.handle(request, sim_t)` turns one complete request ADU into a `Reply`: the bytes to send (or
none), extra real delay, how to chunk them, and a log entry. The bus (`host_tools.emulators.bus`) owns
timing and the pty.
"""

import json
import math
import random
import struct

from host_tools import REPO_ROOT
from protocols.modbus import rtu, values
from protocols.modbus.crc import crc_ok
from protocols.modbus.host import BROADCAST
from protocols.modbus.slave import bits_response, echo_response, exception_response, parse_request, registers_response

TEMPLATE_DIR = REPO_ROOT / "protocols" / "templates"
TABLES = ("holding", "input", "coil", "discrete")
FC_TABLE = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
_INT_RANGE = {
    "u16": (0, 0xFFFF), "s16": (-0x8000, 0x7FFF), "u32": (0, 0xFFFFFFFF), "s32": (-0x80000000, 0x7FFFFFFF),
    "u64": (0, (1 << 64) - 1), "s64": (-(1 << 63), (1 << 63) - 1),
}


def load_template(template_id):
    path = TEMPLATE_DIR / (template_id + ".json")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def point_table(template, point):
    return point.get("table", template.get("table", "holding"))


def encode_raw(point, value):
    """The raw register value an instrument stores for engineering `value` (scale/offset undone)."""
    kind = point["type"]
    scale = point.get("scale", 1)
    offset = point.get("offset", 0)
    raw = (value - offset) / scale if (scale != 1 or offset != 0) else value
    if kind == "bit":
        return 1 if raw else 0
    if kind[0] == "f":
        raw = float(raw)
        if kind == "f32":
            raw = struct.unpack(">f", struct.pack(">f", max(-3.4e38, min(3.4e38, raw))))[0]
        return raw
    lo, hi = _INT_RANGE[kind]
    raw = int(math.floor(raw + 0.5)) if not isinstance(raw, int) else raw
    return max(lo, min(hi, raw))


def presented_value(point, value):
    """What a reader gets back for `value` after the instrument's encoding (float32, integer scaling)."""
    raw = encode_raw(point, value)
    if point["type"] == "bit":
        return raw
    return values.scaled(raw, point.get("scale", 1), point.get("offset", 0))


class Reply:
    __slots__ = ("data", "delay_s", "chunks", "gap_s", "entry")

    def __init__(self, data, entry, delay_s=0.0, chunks=1, gap_s=0.0):
        self.data = data
        self.entry = entry
        self.delay_s = delay_s
        self.chunks = chunks
        self.gap_s = gap_s


class Instrument:
    """One Modbus slave: `name` (device name in the site), template, address, scenario of the device."""

    def __init__(self, name, template, address, device_scenario, scenario_start, seed=0):
        if isinstance(template, str):
            template = load_template(template)
        self.name = name
        self.template = template
        self.address = address
        self.scn = device_scenario
        self.start = scenario_start
        self.rng = random.Random("%s:%s" % (seed, name))
        self.points = template.get("points", {})
        self.order = template.get("order", "ABCD")
        self._fault_counts = {}
        self.requests = 0
        # Readable hull per table: a request outside it gets exception 2, inside it unmapped words read 0.
        self.hull = {}
        for pt in self.points.values():
            table = point_table(template, pt)
            n = 1 if pt["type"] == "bit" else values.register_count(pt["type"])
            lo, hi = self.hull.get(table, (pt["address"], pt["address"] + n))
            self.hull[table] = (min(lo, pt["address"]), max(hi, pt["address"] + n))
        # flag -> (status point, lowest bit of its mask)
        self.status_bits = {}
        for flag, point, mask in template.get("status", []):
            if flag not in self.status_bits:
                self.status_bits[flag] = (point, mask & -mask)

    def tick(self, sim_t):
        """Scenario offset k of the tick a request served at sim_t belongs to."""
        return int(math.floor(sim_t)) - self.start

    def raw_point(self, name, k):
        """Raw register value of a point at tick offset k, including status bits."""
        pt = self.points[name]
        raw = encode_raw(pt, self.scn.value(name, k))
        state = self.scn.state(k)
        if state is not None and state in self.status_bits and self.status_bits[state][0] == name:
            raw = int(raw) | self.status_bits[state][1]
        return raw

    def value(self, name, k):
        """Engineering value a correct reader gets for point `name` at tick offset k."""
        pt = self.points[name]
        raw = self.raw_point(name, k)
        if pt["type"] == "bit":
            return raw
        return values.scaled(raw, pt.get("scale", 1), pt.get("offset", 0))

    def registers(self, table, k):
        """{address: 16-bit word} (or {address: bit} for coil/discrete) of `table` at tick offset k."""
        words = {}
        for name, pt in self.points.items():
            if point_table(self.template, pt) != table:
                continue
            raw = self.raw_point(name, k)
            if pt["type"] == "bit":
                if table in ("coil", "discrete"):
                    words[pt["address"]] = raw
                else:
                    bit = pt.get("bit", 0)
                    words[pt["address"]] = words.get(pt["address"], 0) | (raw << bit)
                continue
            regs = values.to_registers(raw, pt["type"], pt.get("order", self.order))
            for i, r in enumerate(regs):
                words[pt["address"] + i] = words.get(pt["address"] + i, 0) | r
        return words

    def _read(self, fc, start, count, k):
        table = FC_TABLE[fc]
        lo, hi = self.hull.get(table, (0, 0))
        if count < 1 or start < lo or start + count > hi:
            return exception_response(self.address, fc, 2)
        words = self.registers(table, k)
        data = [words.get(a, 0) for a in range(start, start + count)]
        if fc in (1, 2):
            return bits_response(self.address, fc, data)
        return registers_response(self.address, fc, data)

    def _fault_for(self, k):
        w = self.scn.fault(k)
        if w is None:
            return None
        every = int(w.get("every", 1))
        key = id(w)
        n = self._fault_counts.get(key, 0)
        self._fault_counts[key] = n + 1
        return w if n % every == 0 else None

    def handle(self, request, sim_t, real_t=0.0):
        """Reply to one complete request addressed to this slave (address checked by the bus)."""
        self.requests += 1
        k = self.tick(sim_t)
        slave, fc, start, count = parse_request(request)
        entry = {"sim_t": round(sim_t, 3), "real_t": real_t, "k": k, "device": self.name, "address": slave,
                 "fc": fc, "start": start, "count": count, "fault": None, "reply": "ok"}
        if fc in FC_TABLE:
            data = self._read(fc, start, count, k)
        elif fc in (5, 6, 15, 16):
            data = echo_response(request)
        else:
            data = exception_response(self.address, fc, 1)
        if data[1] & 0x80:
            entry["reply"] = "exception"
        if slave == BROADCAST:
            entry["reply"] = "none"
            return Reply(None, entry)
        w = self._fault_for(k)
        if w is None:
            return Reply(data, entry)
        kind = w["kind"]
        entry["fault"] = kind
        if kind == "silent":
            entry["reply"] = "none"
            return Reply(None, entry)
        if kind == "late":
            return Reply(data, entry, delay_s=w.get("delay_ms", 100) / 1000.0)
        if kind == "chunked":
            chunks = max(2, int(w.get("chunks", 3)))
            return Reply(data, entry, chunks=chunks, gap_s=w.get("gap_ms", 5) / 1000.0)
        if kind == "crc":
            bad = bytearray(data)
            i = 3 if len(bad) > 5 else 1
            bad[i] ^= 0x5A  # the value changes too: accepting this frame would accept a wrong value
            entry["reply"] = "bad-crc"
            return Reply(bytes(bad), entry)
        if kind == "exception":
            entry["reply"] = "exception"
            return Reply(exception_response(self.address, fc, int(w.get("code", 4))), entry)
        if kind == "garbage":
            n = int(w.get("length", len(data)))
            while True:
                junk = bytes(self.rng.randrange(256) for _ in range(n))
                if not crc_ok(junk):
                    break
            entry["reply"] = "garbage"
            return Reply(junk, entry)
        if kind == "wrong_address":
            other = int(w.get("address", (self.address % 247) + 1))
            bad = bytearray(data)
            bad[0] = other
            for i in range(3, len(bad) - 2):
                bad[i] = 0x7F  # poisoned values: huge in every type, so accepting them shows
            entry["reply"] = "wrong-address"
            return Reply(rtu.adu(other, bytes(bad[1:-2])), entry)
        return Reply(data, entry)
