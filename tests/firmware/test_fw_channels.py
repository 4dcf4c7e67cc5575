"""firmware/app/channels.py: unit conversion, NOx as NO2, Zs with the O2 guard, flags (hand-computed)."""

import sys

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from app.channels import Station, unit_factor, zs
from portable import approx, raises

INTERPRETERS = ("cpython", "micropython")


class FakeDevice:
    def __init__(self, points):  # name -> (unit, range max or None)
        self.names = list(points)
        self.units = [points[n][0] for n in self.names]
        self.ranges = [None if points[n][1] is None else [0, points[n][1]] for n in self.names]
        self.values = [None] * len(self.names)
        self.flag = "B"

    def point(self, name):
        return self.names.index(name)

    def set(self, flag, **values):
        self.flag = flag
        for k in values:
            self.values[self.point(k)] = values[k]


def cems():
    return FakeDevice({"no": ("mg/m3", 500), "no2": ("mg/m3", 200), "o2": ("%", 25), "so2": ("ppm", 400),
                       "pm": ("ug/m3", 1000), "flow": ("m3/s", 100)})


CHANNELS = [
    {"code": "a21003", "source": "cems.no"},
    {"code": "a21004", "source": "cems.no2"},
    {"code": "a21002", "nox_from": ["a21003", "a21004"], "o2_ref": 6, "range": [0, 100]},
    {"code": "a21026", "source": "cems.so2", "unit": "mg/m3", "from_unit": "ppm", "molar_mass": 64.06,
     "o2_ref": 6},
    {"code": "a34013", "source": "cems.pm", "unit": "mg/m3", "from_unit": "ug/m3"},
    {"code": "a19001", "source": "cems.o2", "o2": True},
    {"code": "a00000", "source": "cems.flow", "flow": True},
]


def station(guard=19.0):
    dev = cems()
    return dev, Station({"name": "boiler", "channels": CHANNELS}, {"cems": dev}, guard)


def test_unit_factors():
    assert approx(unit_factor("ppm", "mg/m3", 64.06), 64.06 / 22.414)
    assert unit_factor("ug/m3", "mg/m3") == 0.001
    assert unit_factor(None, "mg/m3") == 1.0
    with raises(ValueError):
        unit_factor("ppm", "mg/m3")
    with raises(ValueError):
        unit_factor("mg/m3", "ppm")


def test_conversions_nox_and_zs_by_hand():
    dev, st = station()
    dev.set("N", no=28.3, no2=2.2, o2=8.9, so2=10.0, pm=320.0, flow=35.27)
    st.sample()
    v = dict(zip(st.codes, st.v))
    z = dict(zip(st.codes, st.z))
    f = dict(zip(st.codes, st.f))
    assert approx(v["a21002"], 45.593333333333334)  # 28.3 * 46 / 30 + 2.2
    assert approx(z["a21002"], 45.593333333333334 * 15 / 12.1)  # (21 - 6) / (21 - 8.9)
    assert approx(v["a21026"], 28.580351566)  # 10 ppm * 64.06 / 22.414
    assert approx(z["a21026"], 28.580351566 * 15 / 12.1, rel=1e-8)
    assert approx(v["a34013"], 0.32)
    assert v["a19001"] == 8.9 and z["a19001"] is None and z["a21003"] is None
    assert f == {c: "N" for c in st.codes}
    assert st.cou == [True, True, True, True, True, False, True]  # pollutants in mg/m3 and the flow


def test_o2_guard_suppresses_zs():
    dev, st = station(guard=19.0)
    dev.set("N", no=10.0, no2=1.0, o2=19.0, so2=1.0, pm=1.0, flow=1.0)
    st.sample()
    assert st.z[2] is None and st.z[3] is None and st.v[2] is not None
    dev.set("N", o2=18.99)
    st.sample()
    assert approx(st.z[2], (10.0 * 46 / 30 + 1.0) * 15 / (21 - 18.99))


def test_flags_b_status_and_over_range():
    dev, st = station()
    st.sample()  # never answered
    assert st.f == ["B"] * 7 and st.v == [None] * 7
    rtd = st.rtd_values()
    assert rtd[0] == ["a21003", {"Flag": "B"}]
    dev.set("N", no=600.0, no2=2.0, o2=5.0, so2=1.0, pm=1.0, flow=1.0)  # NO above its 500 range
    st.sample()
    f = dict(zip(st.codes, st.f))
    assert f["a21003"] == "T" and f["a21004"] == "N"
    assert f["a21002"] == "T"  # worse of T and N
    dev.set("N", no=50.0, no2=30.0)  # NOx = 106.7 above its own channel range 100
    st.sample()
    assert dict(zip(st.codes, st.f))["a21002"] == "T" and st.f[0] == "N"
    dev.set("C", no=600.0)  # the instrument's status wins over range
    st.sample()
    assert st.f[0] == "C" and st.f[2] == "C"
    dev.set("B")
    st.sample()
    assert st.f[2] == "B" and st.v[2] is None


def test_zs_helper():
    assert zs(None, 5.0, 6, 19) is None
    assert zs(10.0, None, 6, 19) is None
    assert approx(zs(10.0, 11.0, 6, 19), 15.0)


def test_device_of_a_channel():
    dev, st = station()
    assert st.device("a21003") is dev and st.device("a00000") is dev
    assert st.device("a21002") is None  # NOx as NO2 is computed, no instrument of its own
    assert st.device("a99999") is None
    assert st.devices() == [dev] * 6
