"""`emlog report`: OUT/report.html of a simulation run, from OUT/summary.json and OUT/received.jsonl.

One self-contained page (inline CSS, matplotlib PNGs as data URIs): a summary table, one figure per
pollutant channel (minute Avg with its Min/Max band, the limit and shaded exceedance windows where a limit
exists, data flags as markers along the time axis), process parameters per station, a timeline of link
outages and events, the backlog drain (DataTime lag of every received record) and bus health per
instrument. Nothing is invented: limits come only from summary.json (`limits`) or the site's `rules`, events
only from received 3020 / 2081 frames, summary `events`, platform events and firmware errors; where nothing
exists the page says so. The numbers behind the page are in `<script id="report-data" type=
"application/json">` and in `data-*` attributes, so tests can compare them with summary.json.

    write_report(out_dir, site=None) -> Path        # reads the two files, writes out_dir/report.html
    render_html(summary, records, site=None) -> str
    report_data(summary, records, site=None) -> dict
"""

import base64
import html
import io
import json
import re
import time
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.errors import UserError

FLAG_COLOURS = {"F": "#7f7f7f", "M": "#9467bd", "S": "#17becf", "D": "#d62728", "C": "#ff7f0e",
                "T": "#8c564b", "B": "#e377c2"}
FLAG_NAMES = {"N": "normal", "F": "stopped", "M": "maintenance", "S": "manual value", "D": "fault",
              "C": "calibration", "T": "over range", "B": "no communication"}
NAMES = {"a21003": "NO", "a21004": "NO2", "a21002": "NOx", "a21026": "SO2", "a21005": "CO", "a19001": "O2",
         "a00000": "flue gas flow", "a01011": "velocity", "a01012": "temperature", "a01013": "pressure",
         "a01014": "humidity", "a24088": "NMHC", "a05002": "CH4", "a25002": "benzene", "a24087": "THC",
         "a34001": "TSP", "a34002": "PM10", "a34004": "PM2.5", "a34013": "dust (particulate)",
         "a01001": "air temperature", "a01002": "air humidity", "a01006": "air pressure",
         "a01007": "wind speed", "a01008": "wind direction", "LA": "noise (LA)", "w01018": "COD",
         "w21003": "ammonia N", "w01001": "pH", "w00000": "waste water flow"}
LINK_GAP_S = 180.0  # a center that received nothing for this long (while others did) counts as an outage


# ---- pure data ----------------------------------------------------------------------------------------
def is_pollutant(code):
    """HJ 212 pollutant codes: gases a2xxxx, particulates a3xxxx, CH4 a05002, water w... (not flows).
    a00 / a01 (flue and weather parameters), a19001 (O2) and LA are plotted as parameters."""
    code = str(code)
    if code.startswith(("a2", "a3", "a05")):
        return True
    return code.startswith("w") and code != "w00000" and code != "w01001"


def load_run(out_dir):
    """(summary dict, list of received records) from a simulate output directory."""
    out_dir = Path(out_dir)
    try:
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("%s: no summary.json; pass the --out directory of `emlog simulate`" % out_dir) from None
    except ValueError as exc:
        raise UserError("%s/summary.json is not valid JSON (%s); re-run emlog simulate" % (out_dir, exc)) from None
    records = []
    path = out_dir / "received.jsonl"
    if path.exists():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                raise UserError("%s line %d is not JSON; re-run emlog simulate" % (path, n)) from None
    return summary, records


def _site_of(out_dir):
    """The device config the firmware ran with (simulate writes it as OUT/fs/config.json)."""
    path = Path(out_dir) / "fs" / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _f(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def channel_series(records, kind="min"):
    """{(station, code): [point, ...]} sorted by time; point = {t, Avg, Min, Max, ZsAvg, Flag}. A record
    received twice (re-sent, or by two centers) counts once: the first one received."""
    seen = set()
    out = {}
    for r in records:
        if r.get("kind") != kind or not isinstance(r.get("t"), (int, float)) or r.get("error"):
            continue
        key = (r.get("station") or r.get("mn"), r["t"])
        if key in seen:
            continue
        seen.add(key)
        for code, vals in (r.get("values") or {}).items():
            if not isinstance(vals, dict):
                continue
            p = {"t": r["t"], "Flag": vals.get("Flag")}
            for field in ("Avg", "Min", "Max", "ZsAvg", "ZsMin", "ZsMax", "Rtd"):
                p[field] = _f(vals.get(field))
            out.setdefault((key[0], code), []).append(p)
    for pts in out.values():
        pts.sort(key=lambda p: p["t"])
    return out


def _limit_value(v):
    if isinstance(v, dict):
        for k in ("limit", "value", "max", "above"):
            if _f(v.get(k)) is not None:
                return float(v[k])
        return None
    return float(v) if _f(v) is not None else None


def _preset(name):
    """A limit preset (protocols/limits/FILE.json, key) as a dict, or {} when it cannot be read."""
    fname, _, key = str(name).partition("/")
    try:
        data = json.loads((REPO_ROOT / "protocols" / "limits" / (fname + ".json")).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return (data.get("presets") or {}).get(key) or {}


def _rule_limits(rules):
    """[((station, code), limit, source)] from the `limit` rules of a firmware/RULES.md `rules.list`
    (the first rule of a channel wins; a preset supplies the limit unless the rule overrides it)."""
    out = []
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("type") != "limit" or rule.get("enabled") is False:
            continue
        station, _, code = str(rule.get("channel") or "").rpartition("/")
        lim = _f(rule.get("limit"))
        if lim is None and rule.get("preset"):
            lim = _f(_preset(rule["preset"]).get("limit"))
        if code and lim is not None:
            src = "rule %s" % rule.get("name", "?") + (" (%s)" % rule["preset"] if rule.get("preset") else "")
            out.append(((station or None, code), float(lim), src))
    return out


def limits_from(summary, site=None):
    """{(station or None, code): (limit, source)} from summary['limits'] and the site's `rules`.
    Accepted shapes: {code: x}, {station: {code: x}}, {"station/code": x}, x a number or {"limit": x};
    rules: a list of {"station"?, "code" | "channel", "limit" | "max" | "value"} or a dict as above."""
    out = {}

    def add(mapping, source):
        if isinstance(mapping, list):
            for rule in mapping:
                if not isinstance(rule, dict):
                    continue
                code = rule.get("code") or rule.get("channel") or rule.get("pollutant")
                lim = _limit_value(rule)
                if code and lim is not None:
                    out.setdefault((rule.get("station"), str(code)), (lim, source))
            return
        if not isinstance(mapping, dict):
            return
        for key, v in mapping.items():
            lim = _limit_value(v)
            if lim is not None:
                station, _, code = key.rpartition("/")
                out.setdefault((station or None, code), (lim, source))
            elif isinstance(v, dict):  # per station
                for code, w in v.items():
                    lim = _limit_value(w)
                    if lim is not None:
                        out.setdefault((key, code), (lim, source))

    add((summary or {}).get("limits"), "summary.json limits")
    if site:
        rules = site.get("rules")
        if isinstance(rules, dict) and isinstance(rules.get("list"), list):
            for key, lim, source in _rule_limits(rules["list"]):
                out.setdefault(key, (lim, source))
        else:
            add(rules, "site rules")
        for st in site.get("stations", ()):
            for ch in st.get("channels", ()):
                lim = _limit_value(ch.get("limit")) if ch.get("limit") is not None else None
                if lim is not None:
                    out.setdefault((st.get("name"), ch.get("code")), (lim, "site channel limit"))
    return out


def limit_for(limits, station, code):
    return limits.get((station, code)) or limits.get((None, code))


def compared_field(points):
    """The limit applies to the O2-referenced value (ZsAvg) when the channel has one, else to Avg."""
    return "ZsAvg" if any(p.get("ZsAvg") is not None for p in points) else "Avg"


def exceedance_windows(points, limit, step_s=60.0, field="Avg"):
    """[(t0, t1, n_periods)]: runs of consecutive periods whose value is above the limit."""
    out = []
    cur = None
    for p in points:
        v = p.get(field)
        if v is not None and v > limit:
            if cur is not None and p["t"] - cur[1] <= step_s * 1.5:
                cur = (cur[0], p["t"] + step_s, cur[2] + 1)
            else:
                if cur is not None:
                    out.append(cur)
                cur = (p["t"], p["t"] + step_s, 1)
    if cur is not None:
        out.append(cur)
    return out


def _step(points):
    gaps = sorted(b["t"] - a["t"] for a, b in zip(points, points[1:]) if b["t"] > a["t"])
    return float(gaps[len(gaps) // 2]) if gaps else 60.0


def link_outages(summary, records):
    """{center: [{"from", "to", "source"}]}: platform down windows (summary platform_events) and gaps of
    more than LINK_GAP_S sim seconds between frames a center received."""
    out = {}
    end = _f(summary.get("sim_end"))
    downs = {}
    for ev in sorted(summary.get("platform_events") or [], key=lambda e: e.get("sim_t", 0)):
        c = ev.get("center")
        if not ev.get("up"):
            downs[c] = ev.get("sim_t")
        elif c in downs:
            out.setdefault(c, []).append({"from": downs.pop(c), "to": ev.get("sim_t"), "source": "platform down"})
    for c, t0 in downs.items():
        out.setdefault(c, []).append({"from": t0, "to": end, "source": "platform down"})
    by_center = {}
    for r in records:
        if _f(r.get("received_sim")) is not None:
            by_center.setdefault(r.get("center"), []).append(r["received_sim"])
    for c, ts in by_center.items():
        ts.sort()
        known = [(o["from"], o["to"] if o["to"] is not None else float("inf")) for o in out.get(c, [])]
        for a, b in zip(ts, ts[1:]):
            if b - a > LINK_GAP_S and not any(a < k1 and b > k0 for k0, k1 in known):
                out.setdefault(c, []).append({"from": a, "to": b, "source": "no frames received"})
    return out


_T_RE = re.compile(r"\bt=(\d+(?:\.\d+)?)")


def event_list(summary, records):
    """[{t, station, kind, text}] sorted by time, only from what the run produced."""
    out = []
    for r in records:
        if r.get("error"):
            continue
        if r.get("cn") == "3020":
            parts = []
            pol = (r.get("cp") or {}).get("PolId")
            for code, vals in sorted((r.get("values") or {}).items()):
                for field, v in sorted(vals.items()):
                    parts.append("%s-%s=%s" % (code, field, v))
            out.append({"t": r.get("t", r.get("received_sim")), "station": r.get("station"), "kind": "3020",
                        "text": ("PolId=%s " % pol if pol else "") + " ".join(parts)})
        elif r.get("cn") == "2081":
            out.append({"t": r.get("t", r.get("received_sim")), "station": r.get("station"), "kind": "restart",
                        "text": "2081 restart " + json.dumps(r.get("cp") or {}, sort_keys=True)})
    for ev in summary.get("events") or []:
        if isinstance(ev, dict):
            out.append({"t": _f(ev.get("t")) or _f(ev.get("sim_t")), "station": ev.get("station"),
                        "kind": str(ev.get("kind") or ev.get("type") or "event"),
                        "text": str(ev.get("text") or ev.get("message") or json.dumps(ev, sort_keys=True))})
    for ev in summary.get("platform_events") or []:
        out.append({"t": ev.get("sim_t"), "station": None, "kind": "platform",
                    "text": "center %s %s" % (ev.get("center"), "up" if ev.get("up") else "down")})
    cuts = summary.get("power_cuts")
    for cut in (cuts.get("cuts") or []) if isinstance(cuts, dict) else []:
        out.append({"t": cut.get("sim_t"), "station": None, "kind": "power cut",
                    "text": "power cut (SIGKILL), logger back at %s" % cut.get("up_sim_t")})
    for line in summary.get("firmware_errors") or []:
        m = _T_RE.search(line)
        out.append({"t": float(m.group(1)) if m else None, "station": None, "kind": "firmware error",
                    "text": line})
    out.sort(key=lambda e: (e["t"] is None, e["t"] or 0))
    return out


def bus_rows(summary):
    """[(bus, device, counters dict)] from the firmware's bus counters (summary['bus_counters'])."""
    rows = []
    bc = summary.get("bus_counters")
    if isinstance(bc, dict):
        for bus in sorted(bc):
            devs = bc[bus].get("devices") if isinstance(bc[bus], dict) else None
            for dev in sorted(devs or {}):
                if isinstance(devs[dev], dict):
                    rows.append((bus, dev, devs[dev]))
    return rows


def sample_rows(samples, prefix=""):
    """Flattens summary['samples'] into [(name, expected, taken)] where dicts carry expected/taken."""
    rows = []
    if isinstance(samples, dict):
        if "expected" in samples or "taken" in samples:
            taken = samples.get("taken")
            if isinstance(taken, dict):  # {station: {"expected": n, "taken": {code: n}}}
                return [((prefix + "/" if prefix else "") + str(code), samples.get("expected"), n)
                        for code, n in sorted(taken.items(), key=lambda kv: str(kv[0]))]
            return [(prefix or "all", samples.get("expected"), taken)]
        for k in sorted(samples, key=str):
            sub = sample_rows(samples[k], (prefix + "/" if prefix else "") + str(k))
            rows.extend(sub if sub else [((prefix + "/" if prefix else "") + str(k), None, samples[k])])
    return rows


def report_data(summary, records, site=None):
    """Every number the page shows, as one JSON-able dict."""
    series = channel_series(records)
    limits = limits_from(summary, site)
    channels = []
    order = {}
    for i, st in enumerate((site or {}).get("stations", ())):
        for j, ch in enumerate(st.get("channels", ())):
            order[(st.get("name"), ch.get("code"))] = (i, j)
    # configured channels without any minute record get an (empty) entry too: the gap is the news
    for station, code in sorted(set(series) | set(order), key=lambda k: (
            order.get(k, (999, 999)), str(k[0]), k[1])):
        pts = series.get((station, code), [])
        avgs = [p["Avg"] for p in pts if p["Avg"] is not None]
        flags = {}
        for p in pts:
            if p["Flag"]:
                flags[p["Flag"]] = flags.get(p["Flag"], 0) + 1
        lim = limit_for(limits, station, code)
        field = compared_field(pts)
        windows = exceedance_windows(pts, lim[0], _step(pts), field) if lim else []
        channels.append({
            "station": station, "code": code, "name": NAMES.get(code, code), "pollutant": is_pollutant(code),
            "minutes": len(pts), "avg_mean": sum(avgs) / len(avgs) if avgs else None,
            "avg_max": max(avgs) if avgs else None, "avg_min": min(avgs) if avgs else None, "flags": flags,
            "limit": lim[0] if lim else None, "limit_source": lim[1] if lim else None,
            "limit_field": field if lim else None,
            "exceedance_periods": sum(w[2] for w in windows), "exceedance_windows": len(windows)})
    # hour / day records lag their DataTime by their period anyway: the backlog shows in rtd and minutes
    lags = [r["received_sim"] - r["t"] for r in records if r.get("kind") in ("rtd", "min")
            and _f(r.get("t")) is not None and _f(r.get("received_sim")) is not None]
    return {
        "scenario": summary.get("scenario"), "site": summary.get("site"),
        "sim_start": summary.get("sim_start"), "sim_seconds": summary.get("sim_seconds"),
        "real_seconds": summary.get("real_seconds"), "time_scale": summary.get("time_scale"),
        "records_received": summary.get("records_received"), "frames_in_file": len(records),
        "frames": summary.get("frames") or {}, "samples": summary.get("samples"),
        "lag": summary.get("lag"), "peak_heap_bytes": summary.get("peak_heap_bytes"),
        "peak_heap_raw_bytes": summary.get("peak_heap_raw_bytes"),
        "firmware_cpu_s": summary.get("firmware_cpu_s"), "firmware_exit": summary.get("firmware_exit"),
        "safe_mode": summary.get("safe_mode"),
        "channels": channels, "limits_configured": bool(limits),
        "events": event_list(summary, records), "outages": link_outages(summary, records),
        "max_datatime_lag_s": max(lags) if lags else None,
        "bus": [{"bus": b, "device": d, "requests": c.get("requests"), "timeouts": c.get("timeouts"),
                 "crc": c.get("crc")} for b, d, c in bus_rows(summary)],
    }


# ---- figures ------------------------------------------------------------------------------------------
class _Axis:
    """Sim epoch seconds -> minutes (or hours for long runs) since the scenario start."""

    def __init__(self, start, span_s):
        self.start = start or 0.0
        self.div, self.label = (3600.0, "h") if span_s > 6 * 3600 else (60.0, "min")
        self.span = span_s

    def limits(self, ax):
        if self.span > 0:
            ax.set_xlim(min(0.0, ax.get_xlim()[0]), max(self.span / self.div, ax.get_xlim()[1]))

    def x(self, t):
        return (t - self.start) / self.div

    def xs(self, ts):
        return [self.x(t) for t in ts]


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w=7.0, h=2.8):
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state: safe off the main thread

    fig = Figure(figsize=(w, h), layout="constrained")
    return fig


def channel_figure(pts, axis, title, unit, limit=None, field="Avg"):
    fig = _figure()
    ax = fig.add_subplot()
    ts = axis.xs([p["t"] for p in pts])
    step = _step(pts)
    band = [(x, p["Min"], p["Max"]) for x, p in zip(ts, pts) if p["Min"] is not None and p["Max"] is not None]
    if band:
        ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color="#1f77b4",
                        alpha=0.18, linewidth=0, label="Min-Max", step=None)
    ax.plot(ts, [p["Avg"] for p in pts], color="#1f77b4", lw=1.4, marker=".", ms=3, label="Avg")
    if field == "ZsAvg":
        ax.plot(ts, [p["ZsAvg"] for p in pts], color="#2ca02c", lw=1.2, label="ZsAvg (O2-referenced)")
    if limit is not None:
        ax.axhline(limit, color="#d62728", lw=1.2, ls="--", label="limit %g (on %s)" % (limit, field))
        for i, (t0, t1, _n) in enumerate(exceedance_windows(pts, limit, step, field)):
            ax.axvspan(axis.x(t0), axis.x(t1), color="#d62728", alpha=0.15,
                       label="exceedance" if i == 0 else None)
    elif pts:
        ax.text(0.99, 0.97, "no limit configured", transform=ax.transAxes, ha="right", va="top",
                fontsize=8, color="#555")
    if not any(p["Avg"] is not None for p in pts):
        ax.text(0.5, 0.5, "minute records without values" if pts else "no minute records received for this channel",
                transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#b00")
    flagged = {}
    for x, p in zip(ts, pts):
        if p["Flag"] and p["Flag"] != "N":
            flagged.setdefault(p["Flag"], []).append(x)
    for flag, xs in sorted(flagged.items()):
        ax.plot(xs, [0.03] * len(xs), transform=ax.get_xaxis_transform(), ls="none", marker="s", ms=5,
                color=FLAG_COLOURS.get(flag, "#000"), label="flag %s (%s)" % (flag, FLAG_NAMES.get(flag, "?")))
    axis.limits(ax)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel("sim time since start (%s)" % axis.label, fontsize=8)
    ax.set_ylabel(unit or "value", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if pts:
        ax.legend(fontsize=7, loc="upper left", ncol=4, frameon=False)
    return _png(fig)


def params_figure(series, station, codes, axis):
    n = len(codes)
    cols = 3 if n > 4 else 2 if n > 1 else 1
    rows = -(-n // cols)
    fig = _figure(9.0, 1.8 * rows + 0.4)
    for i, code in enumerate(codes):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = series.get((station, code), [])
        if not any(p["Avg"] is not None for p in pts):
            ax.text(0.5, 0.5, "no values" if pts else "no minute records", transform=ax.transAxes, ha="center",
                    fontsize=8, color="#b00")
        ax.plot(axis.xs([p["t"] for p in pts]), [p["Avg"] for p in pts], lw=1.2, color="#444")
        axis.limits(ax)
        ax.set_title("%s %s" % (code, NAMES.get(code, "")), fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return _png(fig)


def timeline_figure(data, axis, centers, stations):
    fig = _figure(9.0, 0.35 * (len(centers) + len(stations) + 1) + 1.0)
    ax = fig.add_subplot()
    rows = ["link " + c for c in centers] + ["events " + (s or "?") for s in stations] + ["platform / firmware"]
    y = {name: i for i, name in enumerate(rows)}
    for c in centers:
        for o in data["outages"].get(c, []):
            if o["from"] is None or o["to"] is None:
                continue
            colour = "#d62728" if o["source"] == "platform down" else "#ff7f0e"
            ax.broken_barh([(axis.x(o["from"]), max(axis.x(o["to"]) - axis.x(o["from"]), 0.05))],
                           (y["link " + c] - 0.3, 0.6), color=colour, alpha=0.7)
    kinds = {"3020": ("o", "#1f77b4"), "restart": ("^", "#9467bd"), "platform": ("v", "#d62728"),
             "firmware error": ("x", "#000")}
    for ev in data["events"]:
        if ev["t"] is None:
            continue
        row = ("events " + ev["station"]) if ev["station"] in stations else "platform / firmware"
        m, col = kinds.get(ev["kind"], ("D", "#2ca02c"))
        ax.plot([axis.x(ev["t"])], [y[row]], marker=m, color=col, ls="none", ms=7)
    axis.limits(ax)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("sim time since start (%s); red bars: platform down, orange: no frames received; "
                  "o 3020, ^ restart, v platform, x firmware error" % axis.label, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def backlog_figure(records, axis, kinds=("rtd", "min")):
    fig = _figure(9.0, 2.8)
    ax = fig.add_subplot()
    colours = {"rtd": "#aaa", "min": "#1f77b4", "hour": "#2ca02c", "day": "#d62728"}
    for kind in kinds:
        rs = [r for r in records if r.get("kind") == kind and _f(r.get("t")) is not None
              and _f(r.get("received_sim")) is not None]
        if rs:
            ax.plot(axis.xs([r["received_sim"] for r in rs]), [r["received_sim"] - r["t"] for r in rs],
                    ls="none", marker=".", ms=3, color=colours[kind], label="%s (%d)" % (kind, len(rs)))
    axis.limits(ax)
    ax.set_xlabel("received at, sim time since start (%s)" % axis.label, fontsize=8)
    ax.set_ylabel("received - DataTime (s)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def bus_figure(rows):
    fig = _figure(9.0, 0.3 * len(rows) + 1.0)
    axes = fig.subplots(1, 2, sharey=True)
    labels = ["%s/%s" % (b, d) for b, d, _c in rows]
    ys = list(range(len(rows)))
    axes[0].barh(ys, [c.get("requests") or 0 for _b, _d, c in rows], color="#1f77b4", label="requests")
    axes[0].barh(ys, [c.get("ok") or 0 for _b, _d, c in rows], color="#2ca02c", height=0.4, label="ok")
    axes[0].set_yticks(ys, labels, fontsize=8)
    axes[0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, frameon=False)
    h = 0.25
    for i, (key, col) in enumerate((("timeouts", "#d62728"), ("crc", "#ff7f0e"), ("exceptions", "#9467bd"))):
        axes[1].barh([y + (i - 1) * h for y in ys], [c.get(key) or 0 for _b, _d, c in rows], height=h,
                     color=col, label=key)
    axes[1].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), ncol=3, frameon=False)
    for ax in axes:
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    axes[0].invert_yaxis()
    return _png(fig)


# ---- page ---------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#222;
     background:#fff;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.8em}
h3{font-size:1.05em;margin:1em 0 .2em}.sub{color:#666;margin-top:4px}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.note{color:#8a4b00;background:#fff6e5;padding:6px 10px;border-left:4px solid #f0a000}
.bad{color:#b00;font-weight:600}figure{margin:.6em 0 1.2em}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 20px}
.grid figure{margin:.4em 0 .8em}
.row{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
"""


def _e(v):
    return html.escape("" if v is None else str(v))


def _fmt(v, nd=1):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def _local(t, offset_min):
    if t is None:
        return "n/a"
    return "%04d-%02d-%02d %02d:%02d:%02d" % time.gmtime(t + 60 * offset_min)[:6]


def _units(site):
    out = {}
    for st in (site or {}).get("stations", ()):
        for ch in st.get("channels", ()):
            if ch.get("unit"):
                out[(st.get("name"), ch.get("code"))] = ch["unit"]
    return out


def render_html(summary, records, site=None):
    data = report_data(summary, records, site)
    series = channel_series(records)
    offset = int(((site or {}).get("site") or {}).get("utc_offset_min", 480))
    start = _f(summary.get("sim_start")) or min((p["t"] for pts in series.values() for p in pts), default=0)
    end = _f(summary.get("sim_end")) or start
    axis = _Axis(start, end - start)
    units = _units(site)
    p = []
    w = p.append
    w("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>emlog simulation report: %s</title>"
      "<style>%s</style></head><body>" % (_e(data["scenario"]), CSS))
    w("<h1>emlog simulation report</h1><p class='sub'>%s &middot; scenario <b>%s</b> &middot; start %s (UTC%+g)"
      "</p>" % (_e(data["site"]), _e(data["scenario"]), _local(start, offset), offset / 60.0))
    if summary.get("safe_mode") or summary.get("firmware_exit") not in (None, 0):
        w("<p class='note bad'>Firmware problem: exit %s, safe mode %s</p>"
          % (_e(summary.get("firmware_exit")), _e(summary.get("safe_mode"))))

    # summary
    w("<h2 id='summary'>Summary</h2><div class='row'><div><h3>Run</h3><table id='summary-table'>")
    rows = [("sim duration (s)", "sim_seconds", data["sim_seconds"]),
            ("real duration (s)", "real_seconds", data["real_seconds"]),
            ("time scale", "time_scale", data["time_scale"]),
            ("records received", "records_received", data["records_received"]),
            ("peak heap (bytes, after gc)", "peak_heap_bytes", data["peak_heap_bytes"]),
            ("peak heap raw (bytes)", "peak_heap_raw_bytes", data["peak_heap_raw_bytes"]),
            ("firmware CPU (s)", "firmware_cpu_s", data["firmware_cpu_s"]),
            ("lag (firmware)", "lag", json.dumps(data["lag"]) if isinstance(data["lag"], (dict, list))
             else data["lag"]),
            ("max DataTime lag of a received rtd / minute record (s)", "max_datatime_lag_s",
             data["max_datatime_lag_s"]),
            ("firmware exit", "firmware_exit", data["firmware_exit"])]
    for label, key, v in rows:
        w("<tr><th class='l'>%s</th><td data-key='%s'>%s</td></tr>" % (_e(label), key, _e(_fmt(v, 2))))
    w("</table></div><div><h3>Frames per CN per center</h3>")
    cns = sorted({cn for per in data["frames"].values() for cn in per})
    if cns:
        w("<table id='frames-table'><tr><th class='l'>center</th>%s<th>total</th></tr>"
          % "".join("<th>%s</th>" % _e(c) for c in cns))
        for center in sorted(data["frames"]):
            per = data["frames"][center]
            w("<tr><td class='l'>%s</td>%s<td>%d</td></tr>" % (_e(center), "".join(
                "<td data-center='%s' data-cn='%s'>%s</td>" % (_e(center), _e(c), per.get(c, 0)) for c in cns),
                sum(per.values())))
        w("</table>")
    else:
        w("<p class='note'>No frames were received.</p>")
    w("</div><div><h3>Samples expected vs taken</h3>")
    srows = sample_rows(data["samples"])
    if srows:
        w("<table id='samples-table'><tr><th class='l'>channel</th><th>expected</th><th>taken</th>"
          "<th>taken %</th></tr>")
        for name, exp, got in srows:
            pct = (100.0 * got / exp) if _f(exp) and _f(got) is not None else None
            w("<tr><td class='l'>%s</td><td>%s</td><td>%s</td><td%s>%s</td></tr>" % (
                _e(name), _e(_fmt(exp)), _e(_fmt(got) if _f(got) is not None else json.dumps(got)),
                " class='bad'" if pct is not None and pct < 95 else "", _fmt(pct)))
        w("</table>")
    else:
        w("<p class='note'>No sample counters in summary.json (the firmware did not report them).</p>")
    w("</div></div>")

    # pollutants
    w("<h2 id='pollutants'>Pollutants (minute records)</h2>")
    if not data["limits_configured"]:
        w("<p class='note' id='no-limits'>No limits configured: neither summary.json nor the site config has "
          "limits or rules, so no limit lines or exceedance windows are drawn.</p>")
    pol = [c for c in data["channels"] if c["pollutant"]]
    if not pol:
        w("<p class='note'>No minute records of pollutant channels were received.</p>")
    w("<div class='grid'>")
    for c in pol:
        pts = series.get((c["station"], c["code"]), [])
        title = "%s / %s %s" % (c["station"], c["code"], c["name"])
        img = channel_figure(pts, axis, title, units.get((c["station"], c["code"])), c["limit"],
                             c["limit_field"] or "Avg")
        flags = ", ".join("%s %d" % kv for kv in sorted(c["flags"].items()))
        cap = "%d minute records; Avg mean %s, max %s; flags: %s; %s" % (
            c["minutes"], _fmt(c["avg_mean"], 2), _fmt(c["avg_max"], 2), flags or "none",
            "limit %g from %s on %s, %d minutes above it in %d window(s)" % (
                c["limit"], c["limit_source"], c["limit_field"], c["exceedance_periods"],
                c["exceedance_windows"]) if c["limit"] is not None else "no limit configured")
        w("<figure class='channel' data-station='%s' data-code='%s' data-minutes='%d' data-limit='%s' "
          "data-exceedance-minutes='%d'><img alt='%s' src='%s'><figcaption>%s</figcaption></figure>" % (
              _e(c["station"]), _e(c["code"]), c["minutes"], "" if c["limit"] is None else c["limit"],
              c["exceedance_periods"], _e(title), img, _e(cap)))
    w("</div>")

    # parameters
    params = {}
    for c in data["channels"]:
        if not c["pollutant"]:
            params.setdefault(c["station"], []).append(c["code"])
    if params:
        w("<h2 id='parameters'>Process and weather parameters (minute Avg)</h2>")
        for station in sorted(params, key=str):
            w("<figure class='params' data-station='%s'><img alt='parameters %s' src='%s'>"
              "<figcaption>%s</figcaption></figure>" % (_e(station), _e(station),
                                                        params_figure(series, station, params[station], axis),
                                                        _e("%s: %s" % (station, " ".join(params[station])))))

    # timeline
    w("<h2 id='timeline'>Events, alarms and link state</h2>")
    centers = sorted(set(data["frames"]) | set(data["outages"]) |
                     {c.get("name") for c in (site or {}).get("centers", ()) if c.get("name")}, key=str)
    stations = sorted({s.get("name") for s in (site or {}).get("stations", ())} |
                      {e["station"] for e in data["events"] if e["station"]}, key=str)
    w("<figure id='timeline-figure'><img alt='timeline' src='%s'></figure>"
      % timeline_figure(data, axis, centers, stations))
    if data["events"]:
        w("<table id='events-table'><tr><th class='l'>time</th><th class='l'>station</th><th class='l'>kind</th>"
          "<th class='l'>text</th></tr>")
        for ev in data["events"][:200]:
            w("<tr><td class='l'>%s</td><td class='l'>%s</td><td class='l'>%s</td><td class='l'>%s</td></tr>" % (
                _local(ev["t"], offset), _e(ev["station"] or ""), _e(ev["kind"]), _e(ev["text"][:200])))
        w("</table>")
    else:
        w("<p class='note' id='no-events'>No events: no 3020 / 2081 frames were received and summary.json "
          "has no events, platform events or firmware errors.</p>")
    outs = [(c, o) for c in sorted(data["outages"], key=str) for o in data["outages"][c]]
    if outs:
        w("<table id='outages-table'><tr><th class='l'>center</th><th class='l'>from</th><th class='l'>to</th>"
          "<th>s</th><th class='l'>source</th></tr>")
        for c, o in outs:
            dur = (o["to"] - o["from"]) if o["to"] is not None and o["from"] is not None else None
            w("<tr><td class='l'>%s</td><td class='l'>%s</td><td class='l'>%s</td><td>%s</td>"
              "<td class='l'>%s</td></tr>" % (_e(c), _local(o["from"], offset), _local(o["to"], offset),
                                              _fmt(dur, 0), _e(o["source"])))
        w("</table>")
    else:
        w("<p>No link outages: no platform-down windows and no gap over %d s between received frames.</p>"
          % LINK_GAP_S)
    w("<h3>Backlog drain</h3>")
    if any(_f(r.get("t")) is not None and r.get("kind") in ("rtd", "min") for r in records):
        w("<figure id='backlog-figure'><img alt='backlog drain' src='%s'><figcaption>Each received "
          "realtime or minute record: when it arrived against how old its DataTime was. Records queued "
          "during an outage arrive late and drain back to the live lag.</figcaption></figure>"
          % backlog_figure(records, axis))
    else:
        w("<p class='note'>No realtime or minute records were received.</p>")

    # bus
    w("<h2 id='bus'>Bus health per instrument</h2>")
    brows = bus_rows(summary)
    if brows:
        w("<figure id='bus-figure'><img alt='bus health' src='%s'></figure>" % bus_figure(brows))
        keys = ["requests", "ok", "timeouts", "crc", "exceptions", "wrong_address", "garbage", "retries",
                "offline"]
        keys += sorted({k for _b, _d, cnt in brows for k, v in cnt.items()
                        if k not in keys and _f(v) is not None})
        w("<table id='bus-table'><tr><th class='l'>bus</th><th class='l'>instrument</th>%s</tr>"
          % "".join("<th>%s</th>" % k for k in keys))
        for b, d, cnt in brows:
            w("<tr data-bus='%s' data-device='%s'><td class='l'>%s</td><td class='l'>%s</td>%s</tr>" % (
                _e(b), _e(d), _e(b), _e(d),
                "".join("<td data-counter='%s'>%s</td>" % (k, _e(cnt.get(k, ""))) for k in keys)))
        w("</table>")
    else:
        w("<p class='note' id='no-bus'>No bus counters in summary.json (the firmware did not report them).</p>")
    emu = summary.get("emulator") or {}
    if any((e.get("devices") or {}) for e in emu.values() if isinstance(e, dict)):
        w("<h3>Emulated instruments' view (requests served, faults injected)</h3><table><tr><th class='l'>bus"
          "</th><th class='l'>instrument</th><th>requests</th><th class='l'>faults</th></tr>")
        for b in sorted(emu):
            for d, v in sorted((emu[b].get("devices") or {}).items()):
                w("<tr><td class='l'>%s</td><td class='l'>%s</td><td>%s</td><td class='l'>%s</td></tr>" % (
                    _e(b), _e(d), _e(v.get("requests")), _e(json.dumps(v.get("faults") or {}, sort_keys=True))))
        w("</table>")
    blob = json.dumps(data, sort_keys=True, default=str).replace("</", "<\\/")
    w("<script type='application/json' id='report-data'>%s</script>" % blob)
    w("<p class='sub'>Generated by emlog report from summary.json and received.jsonl.</p></body></html>")
    return "".join(p)


def write_report(out_dir, site=None, summary=None, records=None):
    """Writes out_dir/report.html (summary/records default to the files in out_dir); returns its path."""
    out_dir = Path(out_dir)
    if summary is None or records is None:
        s, r = load_run(out_dir)
        summary = s if summary is None else summary
        records = r if records is None else records
    if site is None:
        site = _site_of(out_dir)
    path = out_dir / "report.html"
    path.write_text(render_html(summary, records, site), encoding="utf-8")
    return path


def run(args):
    site = None
    if args.site:
        from host_tools.simulate import load_site_config

        site = load_site_config(args.site)
    path = write_report(args.dir, site=site)
    print(path)
    if args.screenshot:
        from host_tools.screenshot import screenshot

        print(screenshot(path, args.screenshot))
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "report", help="(re)write DIR/report.html from a simulate output directory",
        description="Writes DIR/report.html (plots of every channel, events, link state, bus health) from "
        "DIR/summary.json and DIR/received.jsonl of `emlog simulate`.")
    p.add_argument("dir", help="output directory of emlog simulate")
    p.add_argument("--site", help="site file for limits and units (default: DIR/fs/config.json)")
    p.add_argument("--screenshot", metavar="PNG", help="also render the page with headless Chromium to PNG")
    p.set_defaults(func=run)
