"""``mps-bridge devices``: a device's record and the profiles bound to its eUICC (``show``),
and the operator's remedy for a device's sequence number (``reset-seq``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker_bridge.commands.common import PROG, subcommands
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from mps_wire.identifiers import IdentifierError, validate_eid


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``devices show`` and ``devices reset-seq``."""
    devices = commands.add_parser("devices", help="registered devices")
    device_commands = subcommands(devices, "devices_command")
    show_cmd = device_commands.add_parser(
        "show", parents=parents,
        help="a device's record and the profiles bound to its eUICC (exit 1: neither)")
    show_cmd.add_argument("eid", metavar="EID")
    reset = device_commands.add_parser(
        "reset-seq", parents=parents,
        help="set the last sequence number accepted from a device (default 0), so that it "
             "may register again with lower numbers; audited")
    reset.add_argument("eid", metavar="EID")
    reset.add_argument("--to", type=int, default=0,
                       help="the number its next registration must exceed (default 0)")


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Show a device, or reset its sequence number."""
    if args.devices_command == "show":
        return show(registry, args.eid, as_json)
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


def show(registry: Registry, eid: str, as_json: bool) -> int:
    """Print the device ``eid`` (if registered) and the profiles bound to its eUICC."""
    try:
        eid = validate_eid(eid)
    except IdentifierError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    store = registry.store
    device = store.device(eid)
    bound = store.installations_on(eid)
    data: dict[str, Any] = {
        "eid": eid,
        "device": None if device is None else {
            "contract": device.contract_id, "iccid": device.iccid, "imsi": device.imsi,
            "imei": device.imei, "ip": list(device.ip),
            "registered_at": device.registered_at, "updated_at": device.updated_at},
        "profiles": [{"iccid": i.iccid, "source": i.smdp, "transaction": i.transaction,
                      "ts": i.ts} for i in bound],
    }
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(f"eUICC {eid}: " + ("no device registered" if device is None else
                                  f"device of contract {device.contract_id} with profile "
                                  f"{device.iccid}"))
        print("profiles bound: " + (", ".join(f"{i.iccid} ({i.smdp})" for i in bound) or "-"))
    return EXIT_OK if device is not None or bound else EXIT_FAILURE
