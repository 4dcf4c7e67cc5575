"""`emlog init` and `emlog check` as a technician runs them (separate processes).

Bad inputs: each gives exit code 2, no traceback and one line `FILE:LINE: path: what is wrong; the fix`;
the line numbers are found here by searching the edited file, not taken from the tool. Summary figures
(record sizes, retention) are worked out by hand from firmware/STORE.md's record format, and checked
against the figures STORE.md reports from bench/bench_store.py for the reference site.
Other bad inputs of issue 6 live in tests/test_build.py (board fit) and hil_tests/test_flash_esp32.py
(port missing, wrong chip, image too large).
"""

import json
import re
import tomllib

import pytest
from emlog_cli import MN, edit, emlog, fill

from host_tools import REPO_ROOT

TEMPLATES = ("boiler-nox", "construction-dust", "voc-line")


def init_site(tmp_path, template="voc-line", filled=True):
    path = tmp_path / (template + ".toml")
    proc = emlog("init", "--template", template, "--out", path.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    if filled:
        path.write_text(fill(path.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def error_lines(proc):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    head, *rest = proc.stderr.rstrip("\n").split("\n")
    assert head.startswith("emlog: error: %d problem(s) in the site file:" % len(rest)), proc.stderr
    return [line.strip() for line in rest]


# ---- init + check for every template -----------------------------------------------------------------
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_passes_check_once_its_placeholders_are_filled(tmp_path, template):
    path = init_site(tmp_path, template, filled=False)
    text = path.read_text(encoding="utf-8")
    placeholder_lines = [i + 1 for i, ln in enumerate(text.split("\n")) if '"CHANGE' in ln.split("#")[0]]
    assert len(placeholder_lines) == 3  # MN, platform host, password
    problems = error_lines(emlog("check", path.name, cwd=tmp_path))
    assert [int(p.split(":")[1]) for p in problems] == placeholder_lines
    assert all(p.startswith(path.name + ":") and p.endswith("still the template's placeholder; put the real "
                                                             "value here") for p in problems)

    path.write_text(fill(text), encoding="utf-8")
    proc = emlog("check", path.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    site = tomllib.loads(path.read_text(encoding="utf-8"))
    codes = json.loads((REPO_ROOT / "protocols" / "codes.json").read_text(encoding="utf-8"))["codes"]
    for bus in site["buses"]:  # instruments per bus, with address and template
        assert re.search(r"(?m)^bus %s: UART%d " % (bus["name"], bus["uart"]), out)
        for dev in bus["devices"]:
            assert re.search(r"(?m)^  @%-3d %-12s %s " % (dev["address"], dev["name"], dev["template"]), out), dev
    for station in site["stations"]:
        assert "MN %s ST %s" % (MN, station["st"]) in out
        for ch in station["channels"]:  # code, its name and unit
            unit = ch.get("unit") or ("mg/m3" if ch.get("nox_from") else None)
            line = next(ln for ln in out.split("\n") if ln.startswith("  %-7s " % ch["code"]))
            assert codes[ch["code"]]["name"] in line
            if unit:
                assert " %s " % unit in line
    center = site["centers"][0]
    assert "center %s: 10.1.2.3:%d HJ 212-%d" % (center["name"], center["port"], center["version"]) in out
    assert "storage retention (estimate" in out
    assert out.rstrip().endswith("OK: %s is valid" % path.name)
    if "rules" in site:
        assert "limits: %d" % sum(1 for r in site["rules"]["list"] if r["type"] == "limit") in out
    else:
        assert "limits: none configured" in out


def test_init_refuses_to_overwrite_and_unknown_template(tmp_path):
    init_site(tmp_path)
    proc = emlog("init", "--template", "voc-line", "--out", "voc-line.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("emlog: error: voc-line.toml already exists; choose another --out or add --force "
                           "to overwrite it\n")
    proc = emlog("init", "--template", "voc-lne", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'voc-lne'" in proc.stderr
    for name in TEMPLATES:
        assert name in proc.stderr
    assert not (tmp_path / "site.toml").exists()


# ---- bad inputs ---------------------------------------------------------------------------------------------
def test_typo_in_a_key_names_the_line_and_the_right_key(tmp_path):
    path = init_site(tmp_path)
    line = edit(path, "poll_s = 1", "pol_s = 1")
    assert error_lines(emlog("check", path.name, cwd=tmp_path)) == [
        "voc-line.toml:%d: buses[0].devices[0].pol_s: unknown key 'pol_s'; did you mean 'poll_s'? "
        "(expected one of name, template, address, poll_s)" % line]
    path = init_site(tmp_path, "boiler-nox")
    line = edit(path, "rtd_interval_s = 30", "rtd_intervall_s = 30")
    problems = error_lines(emlog("check", path.name, cwd=tmp_path))
    assert problems[0].startswith("boiler-nox.toml:%d: logger.rtd_intervall_s: unknown key 'rtd_intervall_s'; "
                                  "did you mean 'rtd_interval_s'?" % line)


def test_unknown_template_suggests_the_closest(tmp_path):
    path = init_site(tmp_path)
    line = edit(path, 'template = "nmhc_fid"', 'template = "nmhc-fid"')
    known = ", ".join(sorted(p.stem for p in (REPO_ROOT / "protocols" / "templates").glob("*.json")))
    assert error_lines(emlog("check", path.name, cwd=tmp_path)) == [
        "voc-line.toml:%d: buses[0].devices[0].template: unknown template 'nmhc-fid'; did you mean 'nmhc_fid'? "
        "expected one of %s (files in protocols/templates/)" % (line, known)]


def test_unknown_code_suggests_the_closest(tmp_path):
    path = init_site(tmp_path)
    line = edit(path, 'code = "a24088"', 'code = "a24O88"')  # letter O for zero
    problems = error_lines(emlog("check", path.name, cwd=tmp_path))
    assert problems[0] == ("voc-line.toml:%d: stations[0].channels[0].code: unknown HJ 212 code 'a24O88'; "
                           "did you mean 'a24088'?" % line)


def test_two_devices_with_one_address_on_a_bus(tmp_path):
    path = init_site(tmp_path)
    line = edit(path, "address = 3", "address = 2")
    assert error_lines(emlog("check", path.name, cwd=tmp_path)) == [
        "voc-line.toml:%d: buses[0].devices[2].address: address 2 is already used by buses[0].devices[1].address; "
        "expected each address once" % line]


def test_a_pin_used_twice(tmp_path):
    path = init_site(tmp_path)
    line = edit(path, "de = 4", "de = 17")
    assert error_lines(emlog("check", path.name, cwd=tmp_path)) == [
        "voc-line.toml:%d: buses[0].de: pin 17 is already used by buses[0].tx; expected each pin once" % line]


def test_a_rule_error_names_its_line_and_the_rule(tmp_path):
    path = init_site(tmp_path)
    line = edit(path, 'station = "rto"                    # whose', 'station = "paint"                    # whose')
    assert error_lines(emlog("check", path.name, cwd=tmp_path)) == [
        "voc-line.toml:%d: rules.list[1](damper-open).station: unknown station 'paint'; expected one of rto "
        "(its links report this rule's events)" % line]


def test_several_problems_are_reported_together_in_file_order(tmp_path):
    path = init_site(tmp_path)
    l1 = edit(path, "address = 3", "address = 1")
    l2 = edit(path, 'code = "a05002"', 'code = "a05OO2"')
    problems = error_lines(emlog("check", path.name, cwd=tmp_path))
    assert sorted(int(p.split(":")[1]) for p in problems) == [l1, l2]


def test_missing_file_says_how_to_make_one(tmp_path):
    proc = emlog("check", "nope.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("emlog: error: nope.toml: no such file; create one with "
                           "`emlog init --template boiler-nox --out nope.toml`\n")


# ---- summary: limits and storage -------------------------------------------------------------------------
def test_limits_show_source_and_verified_marks_from_the_preset_files(tmp_path):
    path = init_site(tmp_path, "boiler-nox")
    out = emlog("check", path.name, cwd=tmp_path).stdout
    site = tomllib.loads(path.read_text(encoding="utf-8"))
    for rule in site["rules"]["list"]:
        block = out.split("  %-14s " % rule["name"], 1)[1].split("\n")[:3]
        if "preset" in rule:
            fname, key = rule["preset"].split("/")
            data = json.loads((REPO_ROOT / "protocols" / "limits" / (fname + ".json")).read_text(encoding="utf-8"))
            preset = data["presets"][key]
            assert "<= %s %s" % (preset["limit"], preset["unit"]) in block[0]
            assert block[1].strip().startswith("source: %s (%s): %s" % (data["standard"], rule["preset"],
                                                                        preset["source"]))
            for field, mark in preset["marks"].items():
                want = "%s verified" % field if mark == "V" else "%s NOT VERIFIED [%s]" % (field, mark)
                assert want in block[2], (want, block[2])
            # and the firmware's own report of unverified preset values is printed as a warning
            assert re.search(r"(?m)^  rules\.list\[\d\]\(%s\): .* NOT VERIFIED: " % rule["name"], out)
        else:
            assert "<= %s mg/m3" % rule["limit"] in block[0]
            assert "source: the site file (no preset)" in block[1]


def _record(n_fields_per_channel):
    # STORE.md: type u8 | length u16 | seq u32 | t u32 | body | CRC32; body per channel: index u8, mask u8,
    # flag u8, f32 per field.
    return 11 + sum(3 + 4 * n for n in n_fields_per_channel) + 4


def _days(out, label):
    m = re.search(r"%s ([\d.]+) days" % re.escape(label), out)
    assert m, (label, out)
    return float(m.group(1))


def test_storage_estimate_follows_the_store_record_format(tmp_path):
    path = init_site(tmp_path)  # voc-line: 2 channels (NMHC, CH4), no flow, no O2 reference, realtime on
    out = emlog("check", path.name, cwd=tmp_path).stdout
    rtd, period = _record([1, 1]), _record([3, 3])  # Rtd; Min/Avg/Max
    assert (rtd, period) == (29, 45)
    assert "rtd %d B, min %d B, hour %d B, day %d B" % (rtd, period, period, period) in out
    per_day = {"rtd": 86400 / 30 * rtd, "min": 144 * period, "hour": 24 * period, "day": period}
    budget = 1536 * 1024
    # within 1 %: the estimate also counts each segment's code-table record
    assert _days(out, ": all kinds") == pytest.approx(budget / sum(per_day.values()), rel=0.01)
    assert _days(out, "; hour+day") == pytest.approx(budget / (per_day["hour"] + per_day["day"]), rel=0.01)


def test_storage_estimate_matches_the_store_benchmark_for_the_reference_site(tmp_path):
    # STORE.md (bench/bench_store.py, measured on the MicroPython store): ~2.7 days of minute + hour + day
    # data and ~159 days of hour + day data in the 1.5 MiB budget for the reference site.
    out = emlog("check", REPO_ROOT / "sites" / "reference.json", cwd=tmp_path).stdout
    assert _days(out, "; minute+hour+day") == pytest.approx(2.7, abs=0.1)
    assert _days(out, "; hour+day") == pytest.approx(159, abs=3)
