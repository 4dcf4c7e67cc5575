"""HIL harness fixtures: the real firmware (MicroPython unix port, heap HIL_HEAP) against emulated buses and
the real platform receiver, on a scaled clock (host_tools.simulate.Simulation).

`run_sim(scenario_name, until_offset_s, scale)` starts a simulation, waits (on received frames and the
sim clock, never fixed sleeps) until the scenario offset is reached, asks the firmware for its counters
and stops everything; the Simulation object keeps received frames, emulator logs and firmware stats.
"""

import pytest
from hil_helpers import load_scenario, reference_site

from host_tools import REPO_ROOT
from host_tools.emulators.firmware_proc import HIL_HEAP
from host_tools.simulate import Simulation

FIRMWARE_MAIN = REPO_ROOT / "firmware" / "main.py"
HEAP = HIL_HEAP


def pytest_collection_modifyitems(config, items):
    if FIRMWARE_MAIN.exists():
        return
    skip = pytest.mark.skip(reason="firmware/main.py is missing: the HIL tests need the firmware")
    for item in items:
        if item.path.parent.name == "hil_tests" and item.path.name.startswith("test_hil_"):
            item.add_marker(skip)


@pytest.fixture
def run_sim(tmp_path):
    sims = []

    def run(scenario_name, until_offset_s, scale, wait_for=None, lead_s=90.0, site=None):
        scn = load_scenario(scenario_name)
        sim = Simulation(site or reference_site(), scn, tmp_path / scenario_name, time_scale=scale,
                         heap=HEAP, lead_s=lead_s)
        sims.append(sim)
        sim.start()
        end = scn.start + until_offset_s
        real = (until_offset_s + lead_s) / scale
        reached = sim.wait_until(end, timeout=real * 2 + 60)
        if reached and wait_for is not None:
            sim.wait_for(wait_for, timeout=real + 60)
        if sim.fw.alive():
            sim.fw.request_stats(10.0)
        sim.stop()
        assert not sim.fw.safe_mode(), "firmware in safe mode:\n" + sim.fw.log_tail(40)
        assert reached, "firmware stopped before sim offset %d s:\n%s" % (until_offset_s, sim.fw.log_tail(40))
        return sim

    yield run
    for sim in sims:
        sim.stop()
