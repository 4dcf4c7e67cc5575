"""`emlog probe`: read an instrument from a laptop with the same template and read plan as the firmware.

Reads are planned by `protocols.modbus.plan.plan_reads` (so they merge exactly as on the logger), issued
with minimalmodbus, and decoded by the plan's own decoder from a response ADU rebuilt from the registers
minimalmodbus returns, so scale, offset, byte order, bit fields and flags cannot differ from the firmware.
`--scan` looks for an instrument whose address or baud rate is unknown.
"""

import errno
import json
import sys
import time

from host_tools import REPO_ROOT
from host_tools.errors import UserError

TEMPLATE_DIR = REPO_ROOT / "protocols" / "templates"
SCAN_BAUDS = (9600, 4800, 19200, 2400, 38400, 115200)
PARITY_NAMES = {"N": "none", "E": "even", "O": "odd"}
TABLE_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


# ---- templates ---------------------------------------------------------------------------------
def known_templates():
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.json"))


def load_template(name):
    """The template dict of `name` (an id from protocols/templates or a path to a JSON file)."""
    from pathlib import Path

    path = Path(name)
    if not (name.endswith(".json") and path.exists()):
        path = TEMPLATE_DIR / (name + ".json")
    if not path.exists():
        raise UserError(
            "unknown template %r; known templates: %s (or give a path to a template .json file)"
            % (name, ", ".join(known_templates()))
        )
    try:
        tpl = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError("template %s is not valid JSON: %s; fix the file" % (path, exc)) from exc
    if not isinstance(tpl, dict) or not isinstance(tpl.get("points"), dict) or not tpl["points"]:
        raise UserError("template %s has no points; see protocols/templates/README.md" % path)
    return tpl


def make_plan(tpl):
    from protocols.modbus.plan import plan_reads

    try:
        return plan_reads(tpl["points"], table=tpl.get("table", "holding"), order=tpl.get("order", "ABCD"),
                          max_gap=tpl.get("max_gap", 0))
    except ValueError as exc:
        raise UserError("template %s: %s" % (tpl.get("id", "?"), exc)) from exc


def point_size(tpl, point):
    from protocols.modbus.values import register_count

    return register_count(point.get("type", "bit" if "bit" in point else "u16"))


# ---- flags (the firmware's rules, protocols/templates/README.md) ---------------------------------
def status_flag(tpl, values):
    """(flag, point, mask) of the first status entry whose `point & mask` is non-zero, else None."""
    for entry in tpl.get("status") or []:
        flag, point, mask = entry[0], entry[1], entry[2]
        v = values.get(point)
        if v is not None and int(v) & mask:
            return flag, point, mask
    return None


def point_flag(tpl, name, value, status):
    if status is not None:
        return status[0]
    rng = tpl["points"][name].get("range")
    if rng is not None and value is not None and value > rng[1]:
        return "T"
    return "N"


# ---- serial ------------------------------------------------------------------------------------
def open_port(port, baud, parity="N", stop_bits=1, timeout=0.5):
    """An open pyserial port (exclusive where the OS allows), or a UserError saying what to check."""
    import serial

    try:
        return serial.Serial(
            port=port,
            baudrate=baud,
            parity=parity,
            stopbits=stop_bits,
            bytesize=8,
            timeout=timeout,
            write_timeout=2.0,
            exclusive=True,
        )
    except serial.SerialException as exc:
        code = exc.errno
        text = str(exc)
        if code == errno.ENOENT or "No such file" in text:
            raise UserError(
                "serial port %s does not exist; plug the USB-RS485 adapter in and list ports "
                "with `python -m serial.tools.list_ports`" % port
            ) from None
        if (
            code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK)
            or "exclusively lock" in text
            or "busy" in text
        ):
            raise UserError(
                "serial port %s is busy: another program has it open (emlog monitor, a terminal, "
                "a second probe); close it and try again" % port
            ) from None
        if code == errno.EACCES or "Permission denied" in text:
            raise UserError(
                "no permission to open %s; add your user to the dialout group "
                "(sudo usermod -aG dialout $USER, then log in again)" % port
            ) from None
        raise UserError("cannot open serial port %s: %s" % (port, text)) from None
    except (ValueError, OSError) as exc:
        raise UserError("cannot open serial port %s: %s" % (port, exc)) from None


def line_text(baud, parity, stop_bits):
    return "%d 8%s%d" % (baud, parity, stop_bits)


def _instrument(ser, address):
    import minimalmodbus

    inst = minimalmodbus.Instrument(ser, address)
    inst.clear_buffers_before_each_transaction = True
    return inst


def exception_code(exc):
    """The Modbus exception code named in a minimalmodbus SlaveReportedException, or None."""
    from protocols.modbus.errors import EXCEPTION_NAMES

    text = str(exc).lower().replace("slave ", "server ")
    for code, name in EXCEPTION_NAMES.items():
        if name in text:
            return code
    return None


def describe_exception(exc):
    from protocols.modbus.errors import EXCEPTION_NAMES

    code = exception_code(exc)
    if code is None:
        return "an exception response (%s)" % exc
    return "exception %d (%s)" % (code, EXCEPTION_NAMES[code])


# ---- reading -----------------------------------------------------------------------------------
def _adu(address, function, data):
    # The plan decodes from a response ADU; the CRC bytes are never looked at, so two zeros do.
    return bytes([address, function, len(data)]) + bytes(data) + b"\x00\x00"


def _pack_bits(bits):
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i >> 3] |= 1 << (i & 7)
    return out


class ReadFailed(Exception):
    def __init__(self, read, kind, exc):
        super().__init__(str(exc))
        self.read = read
        self.kind = kind  # "silent" | "exception" | "invalid"
        self.exc = exc


def read_raw(inst, read):
    """(list of registers or bits) for one planned Read, through minimalmodbus."""
    import minimalmodbus

    try:
        if read.function in (1, 2):
            return inst.read_bits(read.address, read.count, functioncode=read.function)
        return inst.read_registers(read.address, read.count, functioncode=read.function)
    except minimalmodbus.NoResponseError as exc:
        raise ReadFailed(read, "silent", exc) from None
    except minimalmodbus.SlaveReportedException as exc:
        raise ReadFailed(read, "exception", exc) from None
    except (minimalmodbus.InvalidResponseError, minimalmodbus.LocalEchoError) as exc:
        raise ReadFailed(read, "invalid", exc) from None


def read_instrument(inst, tpl, plan=None):
    """Reads every point of the template; returns the result dict printed by --json."""
    plan = plan or make_plan(tpl)
    names = plan.names or []
    out = [None] * len(names)
    raws = [None] * len(names)
    for ri, read in enumerate(plan.reads):
        data = read_raw(inst, read)
        if read.function in (1, 2):
            plan.decode(ri, _adu(inst.address, read.function, _pack_bits(data)), out)
        else:
            buf = bytearray()
            for r in data:
                buf.append((r >> 8) & 0xFF)
                buf.append(r & 0xFF)
            plan.decode(ri, _adu(inst.address, read.function, buf), out)
        for i in read.points:
            off = plan.where[i][1]
            raws[i] = list(data[off : off + point_size(tpl, tpl["points"][names[i]])])
    values = dict(zip(names, out))
    status = status_flag(tpl, values)
    points = []
    for i, name in enumerate(names):
        pt = tpl["points"][name]
        points.append(
            {
                "point": name,
                "value": out[i],
                "unit": pt.get("unit", ""),
                "raw": raws[i],
                "flag": point_flag(tpl, name, out[i], status),
                "range": pt.get("range"),
            }
        )
    return {
        "template": tpl.get("id"),
        "address": inst.address,
        "status": None
        if status is None
        else {"flag": status[0], "point": status[1], "mask": status[2], "value": values[status[1]]},
        "reads": [{"function": r.function, "address": r.address, "count": r.count} for r in plan.reads],
        "points": points,
    }


def _fmt_value(v):
    if isinstance(v, float):
        return "%.7g" % v
    return str(v)


def format_table(result):
    rows = [("point", "value", "unit", "raw", "flag")]
    for p in result["points"]:
        fmt = "%d" if p.get("_bit") else "%04X"
        raw = " ".join(fmt % r for r in (p["raw"] or []))
        rows.append((p["point"], _fmt_value(p["value"]), p["unit"], raw, p["flag"]))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    lines = []
    for r in rows:
        lines.append(
            "  ".join((r[c].rjust(widths[c]) if c == 1 else r[c].ljust(widths[c])) for c in range(5)).rstrip()
        )
    st = result["status"]
    if st is None:
        lines.append("status: no status bit set (flags N, or T above the measuring range)")
    else:
        lines.append(
            "status: %s = 0x%04X & 0x%04X -> flag %s for every value"
            % (st["point"], int(st["value"]), st["mask"], st["flag"])
        )
    return "\n".join(lines)


# ---- errors ------------------------------------------------------------------------------------
def _checklist(parity):
    return (
        "check: RS-485 wiring (A/B swapped? GND?), the instrument's power, its Modbus address, "
        "baud rate and parity (now %s), or find it with --scan" % PARITY_NAMES.get(parity, parity)
    )


def failure_message(err, port, address, line, parity):
    r = err.read
    what = "FC%d read of %d %s at %d" % (
        r.function,
        r.count,
        ("bit" if r.function <= 2 else "register") + ("" if r.count == 1 else "s"),
        r.address,
    )
    if err.kind == "silent":
        return "no answer from address %d on %s at %s (tried a %s); %s" % (
            address,
            port,
            line,
            what,
            _checklist(parity),
        )
    if err.kind == "exception":
        hint = (
            "the instrument does not have these registers: wrong template, or another model/firmware "
            "version; check the register map"
            if exception_code(err.exc) in (1, 2, 3)
            else "the instrument reports a problem; check its display and manual"
        )
        return "address %d answered %s to the %s; %s" % (address, describe_exception(err.exc), what, hint)
    return (
        "garbled answer from address %d on %s at %s to the %s (%s): usually a wrong baud rate or parity, "
        "or noise; %s" % (address, port, line, what, err.exc, _checklist(parity))
    )


# ---- scan --------------------------------------------------------------------------------------
def parse_addresses(text):
    out = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                out.extend(range(int(lo), int(hi) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise UserError("--addresses %r: expected a list like 1-10 or 1,5,20-30" % text) from None
    bad = [a for a in out if not 1 <= a <= 247]
    if bad or not out:
        raise UserError("--addresses %r: Modbus addresses are 1..247" % text)
    return out


def parse_bauds(text):
    try:
        out = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UserError("--bauds %r: expected a list like 9600,19200" % text) from None
    if not out or any(b <= 0 for b in out):
        raise UserError("--bauds %r: expected positive baud rates like 9600,19200" % text)
    return out


def scan(ser, addresses, bauds, probe_read, parity, stop_bits, progress=None, all_bauds=False):
    """[(address, baud, "ok" | "exception N (...)")] of every slave that answered `probe_read`.

    Stops after the first baud rate at which something answered (devices on one bus share it) unless
    `all_bauds`.
    """
    import minimalmodbus

    found = []
    for baud in bauds:
        ser.baudrate = baud
        for n, address in enumerate(addresses):
            if progress:
                progress(baud, n, address)
            inst = _instrument(ser, address)
            try:
                read_raw(inst, probe_read)
                found.append((address, baud, "ok"))
            except ReadFailed as err:
                if err.kind == "exception":
                    found.append((address, baud, describe_exception(err.exc)))
            except minimalmodbus.ModbusException:
                pass
        if found and not all_bauds:
            break
    return found


class _ScanRead:
    # A register read for --scan without a template: any well-formed answer (even an exception) counts.
    function = 3
    address = 0
    count = 1


# ---- command -----------------------------------------------------------------------------------
def run(args):
    tpl = load_template(args.template) if args.template else None
    if tpl is None and not args.scan:
        raise UserError("--template is required (known templates: %s)" % ", ".join(known_templates()))
    serial_defaults = (tpl or {}).get("serial", {})
    baud = args.baud or serial_defaults.get("baud", 9600)
    parity = (args.parity or serial_defaults.get("parity", "N")).upper()
    stop_bits = args.stop_bits or serial_defaults.get("stop_bits", 1)
    if parity not in PARITY_NAMES:
        raise UserError("--parity %r: use N, E or O" % args.parity)
    plan = make_plan(tpl) if tpl else None
    if args.scan:
        return _run_scan(args, tpl, plan, parity, stop_bits)
    if args.address is None:
        raise UserError("--address is required (1..247); use --scan if you do not know it")
    if not 1 <= args.address <= 247:
        raise UserError("--address %d: Modbus addresses are 1..247" % args.address)
    ser = open_port(args.port, baud, parity, stop_bits, args.timeout or 0.5)
    try:
        result = _read_or_fail(ser, args.port, args.address, tpl, plan, baud, parity, stop_bits)
    finally:
        ser.close()
    _print_result(args, result)
    return 0


def _read_or_fail(ser, port, address, tpl, plan, baud, parity, stop_bits):
    line = line_text(baud, parity, stop_bits)
    try:
        result = read_instrument(_instrument(ser, address), tpl, plan)
    except ReadFailed as err:
        raise UserError(failure_message(err, port, address, line, parity)) from None
    except OSError as exc:
        raise UserError(
            "serial port %s failed during the read: %s; check the adapter" % (port, exc)
        ) from None
    result["port"] = port
    result["serial"] = {"baud": baud, "parity": parity, "stop_bits": stop_bits}
    for p in result["points"]:
        pt = tpl["points"][p["point"]]
        p["_bit"] = TABLE_FC[pt.get("table", tpl.get("table", "holding"))] <= 2
    return result


def _print_result(args, result):
    if args.json:
        clean = dict(result)
        clean["points"] = [{k: v for k, v in p.items() if not k.startswith("_")} for p in result["points"]]
        print(json.dumps(clean, indent=1))
        return
    print(
        "%s at address %d on %s, %s"
        % (
            result["template"],
            result["address"],
            result["port"],
            line_text(result["serial"]["baud"], result["serial"]["parity"], result["serial"]["stop_bits"]),
        )
    )
    print(format_table(result))


def _run_scan(args, tpl, plan, parity, stop_bits):
    addresses = parse_addresses(args.addresses) if args.addresses else list(range(1, 248))
    if args.address is not None and not args.addresses:
        addresses = [args.address]
    bauds = parse_bauds(args.bauds) if args.bauds else ([args.baud] if args.baud else list(SCAN_BAUDS))
    probe_read = plan.reads[0] if plan is not None else _ScanRead()
    timeout = args.timeout or 0.1
    tty = sys.stderr.isatty()

    def progress(baud, n, address):
        if n == 0:
            if tty:
                sys.stderr.write("\n")
            sys.stderr.write(
                "scanning %s, addresses %d..%d%s"
                % (line_text(baud, parity, stop_bits), addresses[0], addresses[-1], "" if tty else "\n")
            )
        if tty:
            sys.stderr.write(
                "\rscanning %s: address %d (%d/%d)   "
                % (line_text(baud, parity, stop_bits), address, n + 1, len(addresses))
            )
        sys.stderr.flush()

    ser = open_port(args.port, bauds[0], parity, stop_bits, timeout)
    t0 = time.monotonic()
    try:
        found = scan(ser, addresses, bauds, probe_read, parity, stop_bits, progress, args.all_bauds)
        if tty:
            sys.stderr.write("\n")
        results = []
        if tpl is not None:
            ser.timeout = 0.5
            for address, baud, reply in found:
                if reply != "ok":
                    continue
                ser.baudrate = baud
                results.append(_read_or_fail(ser, args.port, address, tpl, plan, baud, parity, stop_bits))
    finally:
        ser.close()
    tried = "%d address(es) x %d baud rate(s) (%s) at parity %s, %d stop bit(s), in %.1f s" % (
        len(addresses),
        len(bauds),
        ",".join(str(b) for b in bauds),
        parity,
        stop_bits,
        time.monotonic() - t0,
    )
    if not found:
        raise UserError(
            "nothing answered on %s: tried %s; check: RS-485 wiring (A/B swapped? GND?), the "
            "instrument's power, parity (--parity E/O) and stop bits, or widen --addresses/--bauds"
            % (args.port, tried)
        )
    if args.json:
        print(
            json.dumps(
                {
                    "port": args.port,
                    "found": [{"address": a, "baud": b, "reply": r} for a, b, r in found],
                    "points": [
                        [{k: v for k, v in p.items() if not k.startswith("_")} for p in res["points"]]
                        for res in results
                    ],
                },
                indent=1,
            )
        )
        return 0
    print("found on %s (tried %s):" % (args.port, tried))
    for address, baud, reply in found:
        print(
            "  address %d at %s: %s"
            % (
                address,
                line_text(baud, parity, stop_bits),
                "answered" if reply == "ok" else "answered " + reply,
            )
        )
    for res in results:
        print()
        _print_result(args, res)
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "probe",
        help="read an instrument through a USB-RS485 adapter with its template",
        description="Reads an instrument over Modbus RTU with the same template, read plan and decoding as "
        "the firmware and prints its values and flags. --scan finds an instrument's address and baud rate.",
    )
    p.add_argument(
        "--port", required=True, help="serial port of the RS-485 adapter, e.g. /dev/ttyUSB0 or COM3"
    )
    p.add_argument("--template", help="template id (protocols/templates) or path to a template .json")
    p.add_argument("--address", type=int, help="Modbus slave address 1..247")
    p.add_argument("--baud", type=int, help="baud rate (default: the template's)")
    p.add_argument(
        "--parity", choices=["N", "E", "O", "n", "e", "o"], help="parity (default: the template's)"
    )
    p.add_argument("--stop-bits", type=int, choices=[1, 2], help="stop bits (default: the template's)")
    p.add_argument("--timeout", type=float, help="reply timeout in s (default 0.5; 0.1 when scanning)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--scan", action="store_true", help="try addresses and baud rates to find an instrument")
    p.add_argument(
        "--addresses", help="with --scan: addresses to try, e.g. 1-10 or 1,5,20-30 (default 1-247)"
    )
    p.add_argument(
        "--bauds",
        help="with --scan: baud rates to try, e.g. 9600,19200 (default %s)"
        % ",".join(str(b) for b in SCAN_BAUDS),
    )
    p.add_argument(
        "--all-bauds",
        action="store_true",
        help="with --scan: keep trying baud rates after one found an instrument",
    )
    p.set_defaults(func=run)
