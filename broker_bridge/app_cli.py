"""``mps-app``: an app's view of the registry, built on :class:`PairingClient`.

    mps-app devices --msisdn +4915112345678 --broker mqtt://127.0.0.1:1883 --app-id demo-app
                    [--prefix mps/v1] [--timeout 10] [--json]

Options may also come from the environment (``MPS_BROKER``, ``MPS_APP_ID``, ...) or a TOML
file's ``[app]`` table (``--config``/``MPS_CONFIG``). Exit status: 0 success, 1 failure
(number not found, denied, no answer), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from broker_bridge._cli import (
    EXIT_OK,
    EXIT_USAGE,
    common_options,
    fail,
    parse,
    setup_logging,
    table,
)
from broker_bridge.client import ContractDevices, PairingClient
from broker_bridge.config import Settings, positive_float
from broker_bridge.errors import ConfigError, PairingError, RequestError
from mps_wire.identifiers import validate_msisdn
from mps_wire.topics import DEFAULT_PREFIX, Topics

PROG = "mps-app"


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    common.add_argument("--broker", help="broker URL, mqtt://host:port ($MPS_BROKER)")
    common.add_argument("--app-id", help="this app's id at the operator ($MPS_APP_ID)")
    common.add_argument("--prefix", help=f"topic prefix (default {DEFAULT_PREFIX})")
    common.add_argument("--timeout", help="seconds to wait for the registry (default 10)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser = argparse.ArgumentParser(prog=PROG, description="Ask the pairing registry.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    devices = commands.add_parser("devices", parents=[common],
                                  help="list the devices on the contract behind a number")
    devices.add_argument("--msisdn", required=True, help="the user's phone number (E.164)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-app`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = Settings(vars(args), section="app", config_file=args.config)
    try:
        setup_logging(settings.text("log_level", "warning") or "warning")
        msisdn = validate_msisdn(args.msisdn, field="--msisdn")
        client = PairingClient(
            settings.require("broker"), settings.require("app_id"),
            topics=Topics(settings.text("prefix") or DEFAULT_PREFIX),
            timeout=settings.get("timeout", 10.0, positive_float))
    except (ConfigError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    try:
        with client:
            result = client.contract_devices(msisdn)
    except PairingError as exc:
        if args.json:
            print(json.dumps(_error_json(exc), indent=2))
        return fail(PROG, str(exc))
    print(json.dumps(_json(msisdn, result), indent=2) if args.json
          else _table(msisdn, result))
    return EXIT_OK


def _error_json(exc: PairingError) -> dict[str, str]:
    if isinstance(exc, RequestError):
        return {"status": exc.status.value, "code": exc.code.value, "message": exc.message}
    return {"status": "error", "code": "unavailable", "message": str(exc)}


def _json(msisdn: str, result: ContractDevices) -> dict[str, object]:
    return {"msisdn": msisdn, "contract": result.contract,
            "devices": [record.to_wire() for record in result.devices]}


def _table(msisdn: str, result: ContractDevices) -> str:
    rows = [[d.eid or d.device_id, d.imei or "-", d.iccid or "-", ", ".join(d.ip) or "-",
             ", ".join(d.capabilities) or "-",
             " ".join(p for p in (d.model.manufacturer, d.model.model) if p) or "-"]
            for d in result.devices]
    count = len(result.devices)
    head = f"{msisdn}: contract {result.contract}, {count} device{'s' if count != 1 else ''}"
    if not rows:
        return head
    return head + "\n" + table(["EID", "IMEI", "ICCID", "IP", "CAPABILITIES", "MODEL"], rows)


if __name__ == "__main__":
    sys.exit(main())
