"""`emlog init` (a commented starting site file) and `emlog check` (validate and summarise a site file)."""

import json
import shutil
from pathlib import Path

from host_tools import REPO_ROOT
from host_tools.errors import UserError
from host_tools.siteconfig import CODES, TEMPLATES_DIR, init_templates, load_site


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
    out.append("limits: none configured (local enforcement of limits is not implemented yet)")
    for center in config["centers"]:
        out.append("center %s: %s:%s HJ 212-%s, OverTime %s s, ReCount %s, realtime %s, stations %s" % (
            center["name"], center["host"], center["port"], center["version"], center["overtime_s"],
            center["recount"], "on" if center["realtime"] else "off", ", ".join(sorted(center["stations"]))))
    out.append("storage retention: not estimated yet (the flash store is not implemented yet; "
               "records are held in RAM until acknowledged)")
    return out


def cmd_check(args):
    config = load_site(args.site)
    for line in summary_lines(config):
        print(line)
    print("OK: %s is valid" % args.site)
    return 0
