"""``mps-bridge devices reset-seq``: the operator's remedy for a device's sequence number;
``mps-bridge devices history EID``: every change of the IMEI or ICCID seen with a device."""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker_bridge.commands.common import PROG, subcommands
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail, table, utc_time
from mps_wire.identifiers import validate_eid


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
    history = device_commands.add_parser(
        "history", parents=parents,
        help="every IMEI/ICCID change of a device, with time and source")
    history.add_argument("eid", metavar="EID")


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Reset a device's sequence number, or show its binding history."""
    if args.devices_command == "history":
        return _history(registry, args.eid, as_json)
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


def _history(registry: Registry, eid: str, as_json: bool) -> int:
    validate_eid(eid)
    changes = registry.store.bindings(eid)
    if not changes and registry.store.device(eid) is None:
        return fail(PROG, f"no device {eid} and no history of one")
    if as_json:
        print(json.dumps({"eid": eid, "history": [c.to_wire() for c in changes]}, indent=2))
        return EXIT_OK
    print(f"device {eid}: {len(changes)} change{'s' if len(changes) != 1 else ''}")
    if changes:
        print(table(["AT (UTC)", "SOURCE", "IMEI", "ICCID", "BEFORE"],
                    [[utc_time(c.at), c.source.value, c.imei or "", c.iccid or "",
                      ", ".join(v for v in (c.previous_imei, c.previous_iccid) if v)]
                     for c in changes]))
    return EXIT_OK
