"""The `emlog` command: one sub-command module per job, registered below."""

import argparse
import importlib
import sys

from host_tools import __version__
from host_tools.errors import UserError

# Each module exposes register(subparsers); its parsers set `func(args) -> int`.
COMMAND_MODULES = [
    "host_tools.hj212_cli",
    "host_tools.platform.cli",
    "host_tools.site_cli",
    "host_tools.build",
    "host_tools.simulate",
    "host_tools.report",
    "host_tools.flash",
    "host_tools.probe",
    "host_tools.monitor",
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="emlog",
        description="Emission-monitor logger toolkit: site config, build, flash, probe, monitor, "
        "HJ 212 platform and whole-site simulation.",
    )
    parser.add_argument("--version", action="version", version="emlog " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UserError as exc:
        print("emlog: error: %s" % exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emlog: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
