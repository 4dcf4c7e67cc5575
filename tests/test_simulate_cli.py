"""`emlog simulate` command line: user mistakes end with one line and exit 2 (no traceback), the default
output directory, scenario names, --outage syntax and the seeded power-cut instants."""

import json

import pytest

from host_tools import REPO_ROOT, simulate
from host_tools.cli import main
from host_tools.errors import UserError


def _run(capsys, *argv):
    code = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, needle", [
    (["--scenario", "no_such_scenario"], "unknown scenario"),
    (["--scenario", "missing/file.json"], "no such file"),
    (["--outage", "backup"], "CENTER=START-END"),
    (["--outage", "backup=6h"], "CENTER=START-END"),
    (["--outage", "backup=6x-7h"], "not understood"),
    (["--outage", "backup=12h-6h"], "end must come after the start"),
    (["--outage", "nowhere=1h-2h"], "no center 'nowhere'"),
    (["--outage", "backup=2h-3h", "--duration", "1h"], "starts after the end"),
    (["--duration", "ten minutes"], "duration"),
    (["--duration", "0"], "must be positive"),
    (["--power-cuts", "-1"], "0 or more"),
    (["--time-scale", "0"], "--time-scale"),
])
def test_mistakes_exit_2_with_one_line_and_no_traceback(capsys, tmp_path, argv, needle):
    code, out, err = _run(capsys, "--out", str(tmp_path / "o"), *argv)
    assert code == 2
    assert err.startswith("emlog: error: ") and needle in err, err
    assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing started


def test_unknown_scenario_lists_the_bundled_ones(capsys):
    names = sorted(p.stem for p in (REPO_ROOT / "scenarios").glob("*.json"))
    assert {"reference", "rules_voc", "nothing_lost"} <= set(names)
    code, _, err = _run(capsys, "--scenario", "refrence")
    assert code == 2
    for name in names:
        assert name in err
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in names)


def test_scenario_by_name_or_file(tmp_path):
    assert simulate.resolve_scenario("platform_down") == REPO_ROOT / "scenarios" / "platform_down.json"
    assert simulate.resolve_scenario(None) == REPO_ROOT / "scenarios" / "reference.json"
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"name": "mine"}), encoding="utf-8")
    assert simulate.resolve_scenario(str(own)) == own


@pytest.mark.parametrize("text, expected", [
    ("backup=6h-12h", ("backup", 6 * 3600, 12 * 3600)),
    ("national=0-90m", ("national", 0, 5400)),
    ("a=90-150", ("a", 90, 150)),
    (" b = 1h30m - 2h ", ("b", 5400, 7200)),
])
def test_outage_syntax(text, expected):
    o = simulate.parse_outage(text)
    assert (o["center"], o["from"], o["to"]) == expected


@pytest.mark.parametrize("text", ["b=", "=1h-2h", "b=1h-", "b:1h-2h", "b=1h-1h", "b=-1h-2h"])
def test_bad_outage_syntax(text):
    with pytest.raises(UserError):
        simulate.parse_outage(text)


def test_power_cut_instants_are_seeded_sorted_inside_the_run_and_apart():
    day = 86400.0
    a = simulate.power_cut_offsets(50, day, 7)
    assert a == simulate.power_cut_offsets(50, day, 7)
    assert a != simulate.power_cut_offsets(50, day, 8)
    assert len(a) == 50 and a == sorted(a)
    assert 0.02 * day <= a[0] and a[-1] <= 0.98 * day
    assert min(y - x for x, y in zip(a, a[1:])) >= 0.02 * day / 50 - 1e-6
    assert simulate.power_cut_offsets(0, day, 7) == []


def test_parser_defaults_out_to_the_gitignored_out_folder():
    from host_tools.cli import build_parser

    args = build_parser().parse_args(["simulate"])
    assert args.out is None and args.power_cuts == 0 and args.outage is None and args.scenario is None
    assert simulate.DEFAULT_OUT == REPO_ROOT / "out" / "simulate"
    ignored = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "out/" in ignored or "/out/" in ignored


def test_default_out_is_used_and_the_report_path_printed_last(capsys, tmp_path, monkeypatch):
    """A short real run (firmware under MicroPython) without --out writes to the default directory."""
    out = tmp_path / "default-out"
    monkeypatch.setattr(simulate, "DEFAULT_OUT", out)
    (out / "fs").mkdir(parents=True)
    (out / "fs" / "stale-store-file").write_text("from an earlier run", encoding="utf-8")
    code, stdout, err = _run(capsys, "--site", str(REPO_ROOT / "sites" / "nothing-lost.json"),
                             "--scenario", "nothing_lost", "--duration", "20m", "--time-scale", "120",
                             "--outage", "b=5m-12m")
    assert code == 0, stdout + err
    last = stdout.strip().splitlines()[-1]
    assert last == "report: %s" % (out / "report.html")
    assert (out / "report.html").exists() and (out / "received.jsonl").exists()
    assert not (out / "fs" / "stale-store-file").exists()  # a fresh logger, not the old store
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    start = summary["sim_start"]
    assert summary["outages"] == [{"center": "b", "from": start + 300, "to": start + 720}]
    assert [(e["center"], e["up"]) for e in summary["platform_events"]] == [("b", False), ("b", True)]
    assert summary["power_cuts"]["done"] == 0


def test_a_budget_too_small_says_so_and_fails(capsys, tmp_path):
    # 32K beside the ROMFS image cannot even hold the app's objects at start-up: the logger answers in
    # safe mode (never a boot loop), and simulate names the cause and the budget that works.
    code, out, err = _run(capsys, "--out", str(tmp_path / "o"), "--duration", "10s", "--heap", "32K")
    assert code == 1
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "MemoryError" in summary["safe_mode"] and summary["romfs_image_bytes"] > 0
    assert "the logger went into safe mode: " in err and "MemoryError" in err
    assert "ran out of heap with a budget of 32K" in err and "--heap %s" % simulate.HIL_HEAP in err
