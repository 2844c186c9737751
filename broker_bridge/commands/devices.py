"""``mps-bridge devices reset-seq``: the operator's remedy for a device's sequence number."""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker_bridge.commands.common import PROG, subcommands
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``devices reset-seq``."""
    devices = commands.add_parser("devices", help="registered devices")
    device_commands = subcommands(devices, "devices_command")
    reset = device_commands.add_parser(
        "reset-seq", parents=parents,
        help="set the last sequence number accepted from a device (default 0), so that it "
             "may register again with lower numbers; audited")
    reset.add_argument("eid", metavar="EID")
    reset.add_argument("--to", type=int, default=0,
                       help="the number its next registration must exceed (default 0)")


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Reset a device's sequence number."""
    try:
        before = registry.reset_sequence(args.eid, to=args.to)
    except ValueError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    if as_json:
        print(json.dumps({"eid": args.eid, "from": before, "to": args.to}))
    else:
        print(f"device {args.eid}: sequence number {before if before is not None else 'none'}"
              f" -> {args.to}")
    return EXIT_OK
