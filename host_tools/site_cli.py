"""`emlog init` (a commented starting site file) and `emlog check` (validate and summarise a site file)."""

import inspect
import json
import shutil
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.errors import UserError
from host_tools.siteconfig import CODES, TEMPLATES_DIR, firmware_module, init_templates, load_site

DAY_S = 86400


def register(sub):
    p = sub.add_parser("init", help="write a commented starting site file")
    p.add_argument("--template", required=True, choices=init_templates(), help="kind of site")
    p.add_argument("--out", default="site.toml", help="file to write (default: site.toml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("check", help="validate a site file and print what the logger will do")
    p.add_argument("site", help="site file (TOML)")
    p.set_defaults(func=cmd_check)


def cmd_init(args):
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError("%s already exists; choose another --out or add --force to overwrite it" % out)
    shutil.copyfile(TEMPLATES_DIR / (args.template + ".toml"), out)
    print("wrote %s (%s). Fill in every value marked CHANGE-ME, then run: emlog check %s" % (out, args.template, out))
    return 0


def _template(name):
    return json.loads((REPO_ROOT / "protocols" / "templates" / (name + ".json")).read_text(encoding="utf-8"))


def summary_lines(config):
    out = ["site: %s (UTC%+.1f h)" % (config["site"]["name"], config["site"]["utc_offset_min"] / 60)]
    logger = config["logger"]
    out.append("sampling every %s s; realtime every %s s; minute data every %s min"
               % (logger["sample_s"], logger["rtd_interval_s"], logger["min_interval_min"]))
    for bus in config["buses"]:
        out.append("bus %s: UART%s %s %s%s%s, tx=%s rx=%s de=%s" % (
            bus["name"], bus["uart"], bus["baud"], 8, bus["parity"], bus["stop_bits"], bus["tx"], bus["rx"], bus["de"]))
        for dev in bus["devices"]:
            t = _template(dev["template"])
            out.append("  @%-3d %-12s %-12s %s [%s]" % (
                dev["address"], dev["name"], dev["template"], t.get("title", ""),
                "map verified" if t.get("verified") else "map UNVERIFIED"))
    for station in config["stations"]:
        out.append("station %s: MN %s ST %s" % (station["name"], station["mn"], station["st"]))
        for ch in station["channels"]:
            meta = CODES.get(ch["code"], {})
            how = ch.get("source") or ("NOx as NO2 from " + "+".join(ch["nox_from"]) if ch.get("nox_from") else "?")
            extra = " Zs at O2 %s %%" % ch["o2_ref"] if ch.get("o2_ref") is not None else ""
            unit = ch.get("unit") or meta.get("unit", "")
            out.append("  %-7s %-34s %-6s <- %s%s" % (ch["code"], meta.get("name", ""), unit, how, extra))
    out.extend(rules_lines(config))
    for center in config["centers"]:
        out.append("center %s: %s:%s HJ 212-%s, OverTime %s s, ReCount %s, realtime %s, stations %s" % (
            center["name"], center["host"], center["port"], center["version"], center["overtime_s"],
            center["recount"], "on" if center["realtime"] else "off", ", ".join(sorted(center["stations"]))))
    out.extend(storage_lines(config))
    return out


# ---- rules: limits with their source and verified marks --------------------------------------------------
def _preset(name):
    fname, _, key = (name or "").partition("/")
    try:
        data = json.loads((REPO_ROOT / "protocols" / "limits" / (fname + ".json")).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("presets", {}).get(key, {})


def _window(rule):
    w = rule.get("window", "rolling")
    return "%s-minute rolling mean" % rule.get("minutes", 15) if w == "rolling" else "%s mean" % w


def limit_line(rule):
    """One limit rule: value, window, where each value comes from and whether it was checked."""
    code = rule["channel"].rsplit("/", 1)[-1]
    name = CODES.get(code, {}).get("name", code)
    text = "  %-14s %s %s <= %s %s%s, %s" % (
        rule.get("name"), rule["channel"], name, rule.get("limit"), rule.get("unit", "mg/m3"),
        " converted (Zs) at O2 %s %%" % rule["o2_ref"] if rule.get("zs") and rule.get("o2_ref") is not None
        else (" converted (Zs)" if rule.get("zs") else ""), _window(rule))
    extras = []
    if rule.get("warn_fraction") is not None:
        extras.append("warning at %g %%" % (100 * rule["warn_fraction"]))
    if rule.get("daily_max") is not None:
        extras.append("%s exceedances a day allowed" % rule["daily_max"])
    if rule.get("background_cap") is not None:
        extras.append("net of background (cap %s)" % rule["background_cap"])
    if rule.get("enabled") is False:
        extras.append("DISABLED")
    if extras:
        text += "; " + ", ".join(extras)
    lines = [text]
    taken = rule.get("from_preset") or []
    if rule.get("preset"):
        marks = _preset(rule["preset"]).get("marks", {})
        marked = ["%s %s" % (k, "verified" if marks.get(k, "U") == "V" else "NOT VERIFIED [%s]" % marks.get(k, "U"))
                  for k in taken]
        own = [k for k in ("limit", "unit", "window", "minutes", "zs", "o2_ref") if k in rule and k not in taken
               and k in _preset(rule["preset"])]
        lines.append("      source: %s (%s): %s" % (rule.get("standard"), rule["preset"], rule.get("source", "")))
        lines.append("      values: %s%s" % ("; ".join(marked) or "none from the preset",
                                            "; set in the site file: " + ", ".join(own) if own else ""))
    else:
        lines.append("      source: the site file (no preset); verified mark: none (you vouch for the value)")
    return lines


def _rule_line(rule):
    typ = rule.get("type")
    keys = [k for k in ("kind", "input", "production", "treatment", "running", "running_above", "on_kw",
                        "idle_kw", "above", "below", "for_s", "relay") if rule.get(k) is not None]
    return "  %-14s %s%s: %s" % (rule.get("name"), typ, " (DISABLED)" if rule.get("enabled") is False else "",
                                 ", ".join("%s %s" % (k, rule[k]) for k in keys))


def rules_lines(config):
    rules = (config.get("rules") or {}).get("list") or []
    if not rules:
        return ["limits: none configured (add a [rules] section to enforce limits locally; see firmware/RULES.md)"]
    limits = [r for r in rules if r.get("type") == "limit"]
    out = ["limits: %d" % len(limits) if limits else "limits: none configured"]
    for rule in limits:
        out.extend(limit_line(rule))
    others = [r for r in rules if r.get("type") != "limit"]
    if others:
        out.append("other rules: %d" % len(others))
        out.extend(_rule_line(r) for r in others)
    report = firmware_module("app/rules/check.py").report(config)
    if report:
        out.append("WARNING: %d rule(s) use preset values not checked against the standard's text:" % len(report))
        out.extend("  " + line for line in report)
    return out


# ---- storage retention -------------------------------------------------------------------------------------
def _template_points(config):
    out = {}
    for bus in config["buses"]:
        for dev in bus["devices"]:
            out[dev["name"]] = _template(dev["template"]).get("points", {})
    return out


def _channel_unit(ch, points):
    if ch.get("unit"):
        return ch["unit"]
    if ch.get("nox_from"):
        return "mg/m3"
    dev, _, point = (ch.get("source") or "").partition(".")
    return (points.get(dev, {}).get(point) or {}).get("unit")


def storage_estimate(config):
    """Bytes a day in the flash store, per kind, from the store's own record encoding (app/store.py).

    Fields per channel follow app/stats.py: Min/Avg/Max and a flag; Cou for flow and mg/m3 channels of a
    station that measures flow; Zs fields for channels with o2_ref; realtime: Rtd (+ ZsRtd). Event records
    are not counted (they depend on what happens). Returns a dict (see storage_lines).
    """
    store = firmware_module("app/store.py")
    params = inspect.signature(store.Store).parameters
    budget = params["max_bytes"].default
    seg = params["seg_bytes"].default
    points = _template_points(config)
    realtime = {name for c in config["centers"] if c.get("realtime") for name in c.get("stations", {})}
    per_kind = {"rtd": 0.0, "min": 0.0, "hour": 0.0, "day": 0.0}
    sizes = {}
    logger = config["logger"]
    count = {"rtd": DAY_S / logger["rtd_interval_s"], "min": 1440.0 / logger["min_interval_min"],
             "hour": 24.0, "day": 1.0}
    for st in config["stations"]:
        chans = st["channels"]
        has_flow = any(ch.get("flow") for ch in chans)
        codes = [ch["code"] for ch in chans]
        table = store._frame(store.T_CODES, 0, 0, ",".join(codes).encode())
        for kind in per_kind:
            if kind == "rtd" and st["name"] not in realtime:
                continue
            values = []
            for ch in chans:
                d = {"Flag": "N"}
                zs = ch.get("o2_ref") is not None
                if kind == "rtd":
                    d["Rtd"] = 1.0
                    if zs:
                        d["ZsRtd"] = 1.0
                else:
                    d.update({"Min": 1.0, "Avg": 1.0, "Max": 1.0})
                    if has_flow and (ch.get("flow") or _channel_unit(ch, points) == "mg/m3"):
                        d["Cou"] = 1.0
                    if zs:
                        d.update({"ZsMin": 1.0, "ZsAvg": 1.0, "ZsMax": 1.0})
                values.append([ch["code"], d])
            body = store.encode_values(kind, values, codes.index)
            rec = store.HDR_LEN + len(body) + store.CRC_LEN
            # each segment of seg_bytes starts with its channel-code table record
            per_rec = rec + len(table) / max(1, seg // rec)
            sizes.setdefault(kind, []).append(rec)
            per_kind[kind] += per_rec * count[kind]
    return {"budget": budget, "per_day": per_kind, "record_sizes": sizes}


def _days(budget, per_day):
    if per_day <= 0:
        return "unlimited"
    days = budget / per_day
    return "%.1f days" % days if days < 100 else "%d days" % days


def storage_lines(config):
    est = storage_estimate(config)
    pd = est["per_day"]
    budget = est["budget"]
    everything = sum(pd.values())
    sizes = ", ".join("%s %s B" % (k, "/".join(str(n) for n in v)) for k, v in est["record_sizes"].items())
    return [
        "storage retention (estimate: app/store.py's record encoding, %d KiB store budget, events not counted):"
        % (budget // 1024),
        "  record sizes per station: %s; %.0f KiB a day (%s)" % (
            sizes, everything / 1024, ", ".join("%s %.0f KiB" % (k, v / 1024) for k, v in pd.items() if v)),
        "  unacknowledged data held while the platform is unreachable: all kinds %s; minute+hour+day %s; "
        "hour+day %s (the store drops the oldest realtime data first, then minute data)" % (
            _days(budget, everything), _days(budget, pd["min"] + pd["hour"] + pd["day"]),
            _days(budget, pd["hour"] + pd["day"])),
    ]


def cmd_check(args):
    config = load_site(args.site)
    for line in summary_lines(config):
        print(line)
    print("OK: %s is valid" % args.site)
    return 0
