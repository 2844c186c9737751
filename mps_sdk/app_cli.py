"""mps-app: an app's view of the registry, built on the SDK's PairingClient.

    mps-app pair    --msisdn +4915112345678 --purpose health-monitoring [--wait 60]
    mps-app devices --msisdn +4915112345678
    mps-app watch   [--since SEQ|latest] [--pairing ID] [--count N] [--idle SECONDS]
    mps-app unpair  (--msisdn +4915112345678 | --pairing ID)

Each takes --broker mqtt://127.0.0.1:1883 --app-id APP [--prefix mps/v1] [--timeout 10]
[--json]. watch prints one event per line (JSON Lines with --json) and, at the end, the
cursor to resume from on stderr. Its --since 0 (the default) replays every event the
registry keeps for the app, of all its pairings, ended ones included; --since latest
follows only what happens from now on, and --pairing ID only that pairing (the id
mps-app pair prints). Options may also come from the environment
($MPS_BROKER, $MPS_APP_ID, ...) or a TOML file's [app] table (--config, $MPS_CONFIG).
Exit status: 0 success (a pending pairing included), 1
failure (not found, denied, redirected to another operator, no answer, a pairing denied
while waiting), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mps_common.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    common_options,
    emit,
    fail,
    new_parser,
    parse,
    setup_logging,
    table,
    utc_time,
)
from mps_common.config import Settings, positive_float
from mps_common.errors import ConfigError
from mps_mqtt.options import broker_url, client_options
from mps_sdk.client import ContractDevices, PairingAnswer, PairingClient
from mps_sdk.errors import PairingError, RedirectError, RequestError
from mps_sdk.federation import FederatedPairingClient, load_operators
from mps_wire.identifiers import validate_msisdn
from mps_wire.messages import EventKind
from mps_wire.records import DeviceRecord, Event
from mps_wire.topics import DEFAULT_PREFIX, Topics

#: The keys a configuration file's table may set for this command.
FILE_OPTIONS = ("broker", "credentials", "prefix", "timeout", "app_id", "log_level")

PROG = "mps-app"


def build_parser() -> argparse.ArgumentParser:
    common = common_options(json_option=True)
    common.add_argument("--app-id", help="this app's id at the operator ($MPS_APP_ID)")
    client_options(common)
    parser = new_parser(PROG, __doc__ or "")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pair = commands.add_parser("pair", parents=[common],
                               help="pair with the contract behind a number")
    _user_options(pair)
    pair.add_argument("--purpose", required=True, help="what the app pairs for")
    pair.add_argument("--wait", type=float, metavar="SECONDS",
                      help="if the user is asked, wait this long for the answer")

    devices = commands.add_parser("devices", parents=[common],
                                  help="list the devices on the contract behind a number")
    _user_options(devices)

    watch = commands.add_parser("watch", parents=[common],
                                help="print this app's events, from a cursor on")
    watch.add_argument("--since", type=_cursor, default=0, metavar="SEQ|latest",
                       help="the sequence number of the last event already handled "
                            "(default 0: every event the registry keeps for this app, of "
                            "all its pairings, ended ones included); 'latest': only events "
                            "from now on")
    watch.add_argument("--pairing", metavar="ID",
                       help="only this pairing's events (the id mps-app pair prints), "
                            "to follow the current pairing and no earlier one")
    watch.add_argument("--operator", metavar="ID",
                       help="the events at another operator's registry (of pairings made "
                            "there after a redirect; access from the configuration file)")
    watch.add_argument("--count", type=int, help="stop after this many events")
    watch.add_argument("--idle", type=float, metavar="SECONDS",
                       help="stop after this long without an event (default: never)")

    unpair = commands.add_parser("unpair", parents=[common], help="end a pairing")
    which = unpair.add_mutually_exclusive_group(required=True)
    which.add_argument("--msisdn", help="the number the pairing was made with")
    which.add_argument("--pairing", help="the pairing's id")
    return parser


def _user_options(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--msisdn", help="the user's phone number (E.164)")
    who.add_argument("--user", metavar="REF",
                     help="the user by number (E.164), by the contract reference the user "
                          "gave the app, or by the pseudonymous id of an earlier pairing "
                          "(the contract mps-app pair printed)")


def _cursor(text: str) -> int | None:
    """A ``--since`` value: a sequence number, or None for ``latest``."""
    if text == "latest":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a sequence number (0 or more) or "
                                         f"'latest', not {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-app`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        client = _client(args)
    except (ConfigError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    try:
        with client:
            return _COMMANDS[args.command](client, args)
    except PairingError as exc:
        if args.json:
            emit(_error_json(exc), as_json=True, text=str)
        return fail(PROG, str(exc))


def _client(args: argparse.Namespace) -> PairingClient:
    """The client the settings describe; checks the command's own options on the way."""
    settings = Settings(vars(args), section="app", config_file=args.config,
                        file_options=FILE_OPTIONS)
    setup_logging(settings.text("log_level", "warning") or "warning")
    if getattr(args, "msisdn", None) is not None:
        args.msisdn = validate_msisdn(args.msisdn, field="--msisdn")
    if args.command == "watch" and (args.count or 1) < 1:
        raise ValueError("--count must be at least 1")
    # Access to other operators' registries, for redirects: the file's [operators.ID].
    operators = load_operators(settings.config_file)
    if getattr(args, "operator", None) not in (None, *operators):
        raise ValueError(f"--operator {args.operator}: the configuration file names no "
                         "access to it ([operators.ID])")
    return FederatedPairingClient(
        broker_url(settings), settings.require("app_id"),
        topics=Topics(settings.text("prefix") or DEFAULT_PREFIX),
        timeout=settings.get("timeout", 10.0, positive_float),
        operators=operators)


def _devices(client: PairingClient, args: argparse.Namespace) -> int:
    result = client.contract_devices(args.msisdn, user=args.user)
    who = args.msisdn or args.user
    emit(_devices_json(who, result), as_json=args.json,
         text=lambda _data: _devices_table(who, result))
    return EXIT_OK


def _unpair(client: PairingClient, args: argparse.Namespace) -> int:
    ended = client.unpair(args.msisdn, pairing=args.pairing)
    emit({"pairing": ended, "state": "ended"}, as_json=args.json,
         text=lambda _data: f"pairing {ended} ended")
    return EXIT_OK


def _pair(client: PairingClient, args: argparse.Namespace) -> int:
    msisdn = args.msisdn or args.user
    answer = client.pair(args.msisdn, args.purpose, user=args.user)
    if answer.state == "pending" and args.wait is not None:
        if not args.json:
            print(f"pairing {answer.pairing} pending: waiting up to {args.wait:g} s for the "
                  "user's consent", flush=True)
        decision = client.wait_for_decision(answer.pairing, timeout=args.wait)
        if decision.kind is not EventKind.PAIRING_GRANTED:
            if args.json:
                emit({"pairing": answer.pairing, "state": "denied",
                      "reason": decision.reason}, as_json=True, text=str)
            return fail(PROG, f"pairing {answer.pairing} {decision.kind.value.split('-')[1]}"
                              f" ({decision.reason or 'no reason given'})")
        answer = PairingAnswer(answer.pairing, "active", decision.contract, answer.purpose,
                               decision.consent, decision.devices)
    if args.json:
        emit(_pairing_json(answer), as_json=True, text=str)
    elif answer.active:
        print(_devices_table(msisdn, ContractDevices(answer.contract, answer.devices),
                             head=f"pairing {answer.pairing} for {answer.purpose} "
                                  f"{_at(answer)}active ({answer.consent} consent)"))
    else:
        until = f" (until {utc_time(answer.expires_at)} UTC)" if answer.expires_at else ""
        there = f" --operator {answer.operator}" if answer.operator else ""
        print(f"pairing {answer.pairing} for {answer.purpose} on contract {answer.contract} "
              f"{_at(answer)}pending: the user is asked{until}; the answer "
              f"arrives as an event (mps-app watch --pairing {answer.pairing}{there})")
    return EXIT_OK


def _at(answer: PairingAnswer) -> str:
    """Where a pairing made after a redirect lives, as text shows it."""
    return f"at operator {answer.operator} " if answer.operator else ""


def _watch(client: PairingClient, args: argparse.Namespace) -> int:
    if args.operator is not None and isinstance(client, FederatedPairingClient):
        client = client.operator_client(args.operator)  # checked by _client
    seen = 0
    cursor = client.newest_seq() if args.since is None else args.since
    try:
        for event in client.events(cursor, timeout=args.idle, pairing=args.pairing):
            cursor = event.seq
            print(json.dumps(event.to_wire()) if args.json else _event_line(event),
                  flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    except KeyboardInterrupt:
        pass
    print(f"{PROG}: cursor {cursor}", file=sys.stderr)
    return EXIT_OK if args.count is None or seen >= args.count else EXIT_FAILURE


def _event_line(event: Event) -> str:
    what = event.kind.value
    if event.device is not None:
        what += f" {_name(event.device)}"
    if event.devices or event.kind is EventKind.PAIRING_GRANTED:
        what += f" with {len(event.devices)} devices"
    if event.changes:
        what += f" ({', '.join(event.changes)})"
    if event.reason:
        what += f" [{event.reason}]"
    return f"{event.seq:>6}  {event.pairing}  {what}"


def _name(device: DeviceRecord) -> str:
    model = " ".join(p for p in (device.model.manufacturer, device.model.model) if p)
    return f"{device.eid or device.device_id}" + (f" {model}" if model else "")


def _error_json(exc: PairingError) -> dict[str, str]:
    if isinstance(exc, RedirectError):
        return {"status": "redirect", "operator": exc.operator, "registry": exc.registry,
                "prefix": exc.prefix, "message": exc.message}
    if isinstance(exc, RequestError):
        reason = getattr(exc, "reason", None)  # denials say why
        return {"status": exc.status.value, "code": exc.code.value, "message": exc.message,
                **({"reason": str(reason)} if reason else {})}
    return {"status": "error", "code": "unavailable", "message": str(exc)}


def _pairing_json(answer: PairingAnswer) -> dict[str, Any]:
    result: dict[str, Any] = {"pairing": answer.pairing, "state": answer.state,
                              "contract": answer.contract, "purpose": answer.purpose}
    if answer.operator:
        result["operator"] = answer.operator
    if answer.active:
        result["consent"] = answer.consent
        result["devices"] = [d.to_wire() for d in answer.devices]
    else:
        result["expires_at"] = answer.expires_at
    return result


def _devices_json(msisdn: str, result: ContractDevices) -> dict[str, object]:
    return {"msisdn" if msisdn.startswith("+") else "user": msisdn, "contract": result.contract,
            "devices": [record.to_wire() for record in result.devices]}


def _devices_table(msisdn: str, result: ContractDevices, *, head: str | None = None) -> str:
    count = len(result.devices)
    line = f"{msisdn}: contract {result.contract}, {count} device{'s' if count != 1 else ''}"
    if head:
        line = f"{head}\n{line}"
    if not result.devices:
        return line
    return line + "\n" + _record_table(result.devices)


def _record_table(devices: Sequence[DeviceRecord]) -> str:
    """The devices as a table of what the registry disclosed: a column the registry
    withheld for every device is left out."""
    rows = [_record_cells(d) for d in devices]
    shown = [name for name in rows[0]
             if name == "DEVICE" or any(row[name] != "-" for row in rows)]
    return table(shown, [[row[name] for name in shown] for row in rows])


def _record_cells(d: DeviceRecord) -> dict[str, str]:
    model = " ".join(p for p in (d.model.manufacturer, d.model.model, d.model.revision) if p)
    # A plain SIM has no EID: said so, rather than shown like a withheld one.
    eid = d.eid or ("none (plain SIM)" if d.card == "uicc" else None)
    cells = {"DEVICE": d.device_id, "EID": eid, "IMEI": d.imei, "ICCID": d.iccid,
             "IMSI": d.imsi, "MSISDN": d.msisdn, "IP": ", ".join(d.ip),
             "CAPABILITIES": ", ".join(d.capabilities), "MODEL": model,
             "UPDATED (UTC)": utc_time(d.updated_at)}
    return {name: value or "-" for name, value in cells.items()}


_COMMANDS: dict[str, Callable[[PairingClient, argparse.Namespace], int]] = {
    "pair": _pair, "devices": _devices, "watch": _watch, "unpair": _unpair}


if __name__ == "__main__":
    sys.exit(main())
