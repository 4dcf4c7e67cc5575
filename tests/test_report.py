"""report.html and the live view, from synthetic simulate outputs (same formats as host_tools/simulate.py:
received.jsonl lines as decode_frame() writes them, summary.json as Simulation.summary()).

Expectations come from how the fixture was built (which minutes, which values, which flags), never from
the report code: e.g. the SO2 limit test counts the minutes the fixture put above the limit.
"""

import base64
import io
import json
import re
from html.parser import HTMLParser

import pytest

from host_tools import REPO_ROOT
from host_tools.live import LiveView
from host_tools.report import load_run, render_html, write_report

START = 1714492800  # 2024-05-01 00:00 +08:00, the reference scenario's start
MINUTES = 30
# The reference site without its rules: tests that need limits add their own.
SITE = {k: v for k, v in json.loads((REPO_ROOT / "sites" / "reference.json").read_text(encoding="utf-8")).items()
        if k != "rules"}
# Pollutants of the reference site (HJ 212 codes: NO, NO2, NOx, SO2; NMHC, CH4; TSP, PM10, PM2.5).
REFERENCE_POLLUTANTS = {("boiler", "a21003"), ("boiler", "a21004"), ("boiler", "a21002"), ("boiler", "a21026"),
                        ("voc", "a24088"), ("voc", "a05002"),
                        ("dust", "a34001"), ("dust", "a34002"), ("dust", "a34004")}
OUTAGE = (20, 23)  # platform down from +20 min to +23 min
SO2_SPIKE = (25, 26)  # minutes with SO2 Avg 600
SO2_ZS_ONLY = 10  # minute with Avg 80 but ZsAvg 104: above a limit of 100 only on the O2-referenced value
CAL_MINUTE = 15  # CEMS calibration: flag C on the boiler's CEMS channels


def _minute_values(station, m):
    vals = {}
    for ch in next(s for s in SITE["stations"] if s["name"] == station)["channels"]:
        code = ch["code"]
        avg = 10.0 + (m % 7)
        d = {"Avg": avg, "Min": avg - 1.0, "Max": avg + 1.0, "Flag": "N"}
        if station == "boiler" and code == "a21026":
            avg = 600.0 if m in SO2_SPIKE else 80.0 if m == SO2_ZS_ONLY else 35.0
            d = {"Avg": avg, "Min": avg - 2, "Max": avg + 2, "ZsAvg": 104.0 if m == SO2_ZS_ONLY else avg * 1.1,
                 "Flag": "N"}
        if station == "boiler" and m == CAL_MINUTE and code.startswith("a21"):
            d["Flag"] = "C"
        vals[code] = d
    return vals


def _rec(center, station, cn, kind, t, received, values=None, cp=None):
    mn = next(s["mn"] for s in SITE["stations"] if s["name"] == station)
    r = {"center": center, "crc_ok": True, "error": None, "reply": "9014", "received_sim": received,
         "received_real": 0.0, "raw": "##...", "qn": "20240501000000000", "st": "31", "cn": cn, "mn": mn,
         "flag": "5", "station": station, "kind": kind, "t": t, "datatime": "20240501000000",
         "values": values or {}}
    if cp:
        r["cp"] = cp
    return r


def make_records():
    recs = []
    for m in range(MINUTES):
        t = START + 60 * m
        arrive = t + 60 + 1.5
        if OUTAGE[0] * 60 <= arrive - START < OUTAGE[1] * 60:
            arrive = START + OUTAGE[1] * 60 + 5 + (m - OUTAGE[0]) * 2  # queued, sent after the outage
        for station in ("boiler", "voc", "dust"):
            recs.append(_rec("national", station, "2051", "min", t, arrive, _minute_values(station, m)))
        if m < OUTAGE[0] - 1 or m >= OUTAGE[1]:
            recs.append(_rec("national", "boiler", "2011", "rtd", t + 30, t + 31,
                             {"a21026": {"Rtd": 36.0, "Flag": "N"}}))
    # a re-sent minute record (same station and DataTime): counted once per channel
    recs.append(dict(recs[0], received_sim=recs[0]["received_sim"] + 10))
    recs.append(_rec("national", "voc", "3020", None, START + 12 * 60, START + 12 * 60 + 1,
                     {"i12001": {"Info": "bypass open"}}, cp={"PolId": "a24088"}))
    recs.sort(key=lambda r: r["received_sim"])
    return recs


def make_summary(records, limits=None):
    frames = {}
    for r in records:
        frames.setdefault(r["center"], {}).setdefault(r["cn"], 0)
        frames[r["center"]][r["cn"]] += 1
    dev = {"requests": 1800, "ok": 1790, "timeouts": 7, "crc": 3, "exceptions": 0, "wrong_address": 0,
           "garbage": 0, "retries": 10, "offline": 0, "online": True}
    summary = {
        "scenario": "reference", "site": SITE["site"]["name"], "time_scale": 30.0, "heap": "64k",
        "sim_start": START, "sim_end": START + MINUTES * 60 + 5, "sim_seconds": MINUTES * 60 + 5.0,
        "real_seconds": 62.5, "bus_timeouts_ms": {"bus1": 30, "bus2": 30}, "frames": frames,
        "records_received": len(records),
        "samples": {"boiler": {"expected": 1800, "taken": 1795}, "voc": {"expected": 1800, "taken": 1600}},
        "lag": 0.4,
        "bus_counters": {"bus1": {"transactions": 3600, "devices": {"cems": dict(dev), "flue": dict(dev, crc=0)}},
                         "bus2": {"transactions": 9000, "devices": {"voc": dict(dev, timeouts=42)}}},
        "emulator": {}, "peak_heap_bytes": 41234, "peak_heap_raw_bytes": 60000, "safe_mode": None,
        "firmware_cpu_s": 12.25, "firmware_exit": 0, "firmware_stats": None,
        "platform_events": [{"center": "national", "up": False, "sim_t": START + OUTAGE[0] * 60},
                            {"center": "national", "up": True, "sim_t": START + OUTAGE[1] * 60}],
        "firmware_errors": ["ERROR uplink: link national/boiler down t=%d" % (START + OUTAGE[0] * 60 + 3)],
    }
    if limits is not None:
        summary["limits"] = limits
    return summary


def make_run(out_dir, limits=None, site=True):
    """Writes OUT/received.jsonl, OUT/summary.json (and OUT/fs/config.json as the firmware got it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = make_records()
    with open(out_dir / "received.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    summary = make_summary(records, limits)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if site:
        (out_dir / "fs").mkdir(exist_ok=True)
        (out_dir / "fs" / "config.json").write_text(json.dumps(SITE), encoding="utf-8")
    return summary, records


class Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.figures = []
        self.imgs = []
        self.cells = []
        self.data_json = None
        self._in_data = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self.figures.append(a)
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "td" and ("data-cn" in a or "data-key" in a or "data-counter" in a):
            self.cells.append(a)
        elif tag == "script" and a.get("id") == "report-data":
            self._in_data = True

    def handle_data(self, data):
        if self._in_data:
            self.data_json = json.loads(data.replace("<\\/", "</"))
            self._in_data = False


def _cells_text(text):
    """{(attr, value...): text} of the td cells with data-* attributes."""
    out = {}
    for m in re.finditer(r"<td ([^>]*data-[^>]*)>([^<]*)</td>", text):
        attrs = tuple(sorted(re.findall(r"(data-[a-z-]+)='([^']*)'", m.group(1))))
        out[attrs] = m.group(2)
    return out


@pytest.fixture
def run_dir(tmp_path):
    make_run(tmp_path, limits={"boiler": {"a21026": 100}})
    return tmp_path


def test_report_has_one_self_contained_figure_per_reference_pollutant(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    chans = {(f["data-station"], f["data-code"]) for f in page.figures if f.get("class") == "channel"}
    assert chans == REFERENCE_POLLUTANTS
    assert page.imgs and all(src.startswith("data:image/png;base64,") for src in page.imgs)
    for src in page.imgs:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in text and "https://" not in text and "<link" not in text  # nothing external


def test_channel_minutes_count_each_record_once(run_dir):
    page = Page(write_report(run_dir).read_text(encoding="utf-8"))
    for f in page.figures:
        if f.get("class") == "channel":
            assert int(f["data-minutes"]) == MINUTES, f  # the re-sent minute is not counted twice


def test_numbers_agree_with_summary_json(run_dir):
    text = write_report(run_dir).read_text(encoding="utf-8")
    summary, records = load_run(run_dir)
    data = Page(text).data_json
    for key in ("records_received", "peak_heap_bytes", "firmware_cpu_s", "lag", "sim_seconds", "frames",
                "samples"):
        assert data[key] == summary[key], key
    assert data["frames_in_file"] == len(records) == summary["records_received"]
    cells = _cells_text(text)
    for center, per in summary["frames"].items():
        for cn, n in per.items():
            assert cells[(("data-center", center), ("data-cn", cn))] == str(n)
    assert cells[(("data-key", "peak_heap_bytes"),)] == "41234"
    assert cells[(("data-key", "firmware_cpu_s"),)] == "12.25"
    # bus health rows: every counter of every instrument in summary.json
    for bus, b in summary["bus_counters"].items():
        for dev, c in b["devices"].items():
            row = re.search(r"<tr data-bus='%s' data-device='%s'>(.*?)</tr>" % (bus, dev), text).group(1)
            for k in ("requests", "timeouts", "crc"):
                assert "<td data-counter='%s'>%s</td>" % (k, c[k]) in row


def test_limit_line_and_exceedance_use_the_o2_referenced_value(run_dir):
    page = Page(write_report(run_dir).read_text(encoding="utf-8"))
    figs = {(f["data-station"], f["data-code"]): f for f in page.figures if f.get("class") == "channel"}
    so2 = figs[("boiler", "a21026")]
    assert float(so2["data-limit"]) == 100.0
    # spike minutes (Avg 600) plus the one minute whose ZsAvg (104) alone is above 100
    assert int(so2["data-exceedance-minutes"]) == len(SO2_SPIKE) + 1
    chan = next(c for c in page.data_json["channels"] if c["code"] == "a21026")
    assert chan["exceedance_windows"] == 2 and chan["limit_field"] == "ZsAvg"
    assert all(f["data-limit"] == "" for k, f in figs.items() if k != ("boiler", "a21026"))


def test_without_limits_the_page_says_so_and_draws_none(tmp_path):
    make_run(tmp_path)
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No limits configured" in text
    page = Page(text)
    assert not page.data_json["limits_configured"]
    assert all(f["data-limit"] == "" and f["data-exceedance-minutes"] == "0"
               for f in page.figures if f.get("class") == "channel")


def test_limits_from_site_rules(tmp_path):
    make_run(tmp_path, site=False)
    site = dict(SITE, rules=[{"code": "a34001", "limit": 0.001}])
    data = Page(write_report(tmp_path, site=site).read_text(encoding="utf-8")).data_json
    tsp = next(c for c in data["channels"] if c["code"] == "a34001")
    assert tsp["limit"] == 0.001 and tsp["exceedance_periods"] == MINUTES  # every Avg (>= 10) is above


def test_flags_events_and_outages(run_dir):
    text = write_report(run_dir).read_text(encoding="utf-8")
    data = Page(text).data_json
    nox = next(c for c in data["channels"] if c["code"] == "a21002")
    assert nox["flags"] == {"N": MINUTES - 1, "C": 1}
    dust = next(c for c in data["channels"] if c["code"] == "a34001")
    assert dust["flags"] == {"N": MINUTES}
    kinds = sorted(e["kind"] for e in data["events"])
    assert kinds == ["3020", "firmware error", "platform", "platform"]
    assert "i12001-Info=bypass open" in text
    outs = data["outages"]["national"]
    assert {"from": START + OUTAGE[0] * 60, "to": START + OUTAGE[1] * 60, "source": "platform down"} in outs
    # the backlog: records queued during the outage arrived minutes after their DataTime
    assert data["max_datatime_lag_s"] >= (OUTAGE[1] - OUTAGE[0]) * 60


def test_configured_channel_without_records_still_gets_a_figure_saying_so(tmp_path):
    summary, records = make_run(tmp_path)
    records = [r for r in records if r["station"] != "dust"]
    samples = {"dust": {"expected": 1800, "taken": {"a34001": 0, "a34002": 0}}}
    text = render_html(dict(summary, samples=samples), records, SITE)
    figs = {(f["data-station"], f["data-code"]): f for f in Page(text).figures if f.get("class") == "channel"}
    assert set(figs) == REFERENCE_POLLUTANTS
    assert {k[1] for k, f in figs.items() if f["data-minutes"] == "0"} == {"a34001", "a34002", "a34004"}
    assert "0 minute records" in text
    assert "<td class='l'>dust/a34001</td><td>1800</td><td>0</td>" in text


def test_empty_run_renders_and_says_what_is_missing(tmp_path):
    summary = {"scenario": "reference", "site": "x", "frames": {}, "records_received": 0, "samples": None,
               "lag": None, "bus_counters": None, "platform_events": [], "firmware_errors": [],
               "sim_start": START, "sim_end": START - 30, "firmware_exit": 1, "safe_mode": None}
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (tmp_path / "received.jsonl").write_text("", encoding="utf-8")
    text = write_report(tmp_path).read_text(encoding="utf-8")
    for phrase in ("No frames were received", "No limits configured", "No events", "No bus counters",
                   "Firmware problem"):
        assert phrase in text, phrase
    assert not [f for f in Page(text).figures if f.get("class") == "channel"]


def test_report_cli(tmp_path, capsys, monkeypatch):
    from host_tools import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ["host_tools.report"])
    make_run(tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "report.html")
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "summary.json" in err and "Traceback" not in err


def test_html_escapes_untrusted_text(tmp_path):
    summary, records = make_run(tmp_path)
    records.append(_rec("national", "voc", "3020", None, START, START + 1, {"i1": {"Info": "<script>x</script>"}}))
    text = render_html(summary, records, SITE)
    assert "<script>x</script>" not in text and "&lt;script&gt;x" in text


# ---- live view ------------------------------------------------------------------------------------------
def _live_records():
    return [_rec("national", "boiler", "2011", "rtd", START + 30, START + 31,
                 {"a21026": {"Rtd": 36.5, "Flag": "N"}, "a21002": {"Rtd": 98.25, "Flag": "C"}}),
            _rec("national", "voc", "2051", "min", START, START + 62, {"a24088": {"Avg": 18.5, "Flag": "N"}})]


def test_live_plain_one_line_per_interval_of_sim_time():
    out = io.StringIO()
    view = LiveView(out, tty=False, start=START, end=START + 1800, plain_every_s=300)
    view.observe(_live_records())
    stats = {"centers": {"national": {"connected": 3, "queue": 2, "dropped": 0, "acked": 40}}, "lag": 0.5}
    written = [view.update(START + s, stats, ["WARN bus: cems timeout"], {"national": False})
               for s in range(0, 1801, 20)]
    lines = out.getvalue().splitlines()
    assert len(lines) == sum(written) == 1800 // 300 + 1  # at +0, +300 ... +1800 s
    assert "\x1b" not in out.getvalue()
    last = lines[-1]
    assert "2024-05-01 00:30:00" in last  # local time, UTC+8
    for part in ("a21026=36.5", "a21002=98.25C", "a24088=18.5", "national: platform up", "q 2",
                 "alarms 1", "lag 0.5"):
        assert part in last, part


def test_live_tty_redraws_in_place_at_most_at_the_rate_limit():
    out = io.StringIO()
    now = [100.0]
    view = LiveView(out, tty=True, start=START, end=START + 1800, min_redraw_s=0.25, clock=lambda: now[0],
                    width=100)
    view.observe(_live_records())
    assert view.update(START + 10, None, [], {"national": True})
    first = out.getvalue()
    assert "\x1b[" not in first and "platform DOWN" in first
    n_lines = first.count("\n")
    now[0] += 0.1
    assert not view.update(START + 11)  # too soon
    now[0] += 0.2
    assert view.update(START + 12)
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b[%dF\x1b[J" % n_lines)  # back to the block's first line, cleared below
    assert all(len(ln) <= 100 for ln in second.split("\x1b[J", 1)[1].splitlines())
    assert "98.25C" in second


def test_live_keeps_the_newest_value_per_channel():
    view = LiveView(io.StringIO(), tty=False)
    recs = _live_records()
    view.observe(recs)
    recs.append(_rec("national", "boiler", "2011", "rtd", START, START + 200, {"a21026": {"Rtd": 1.0}}))
    view.observe(recs)  # older DataTime arriving late (backlog) does not replace the newer value
    assert view.latest["boiler"]["a21026"][1] == 36.5
    assert view.frames == {"2011": 2, "2051": 1}
