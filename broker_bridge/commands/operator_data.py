"""``mps-bridge operator``: operator data: importing files, single changes, other
operators, and a contract's view."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from broker_bridge.commands.common import PROG, open_store
from broker_bridge.errors import (
    OperatorDataError,
    StoreError,
    SubscriptionInUseError,
    UnknownSubscriptionError,
)
from broker_bridge.model import Change, Device, OtherOperator
from broker_bridge.operator import KINDS, ImportReport, import_operator_file
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail, table
from mps_common.config import Settings
from mps_mqtt.client import BrokerURL
from mps_wire.errors import ValidationError
from mps_wire.identifiers import validate_eid, validate_iccid
from mps_wire.messages import OperatorOp, parse_operator_request
from mps_wire.topics import DEFAULT_PREFIX, Topics, check_level


def add_parsers(operator_commands: Any, parents: list[argparse.ArgumentParser]
                ) -> None:
    """Add ``operator import``, the single changes, ``add-operator`` and ``show``."""
    imp = operator_commands.add_parser(
        "import", parents=parents,
        help="import contracts, subscriptions, apps and number routing from TOML or JSON")
    imp.add_argument("file", metavar="FILE")
    for op, options in _OPERATOR_OPTIONS.items():
        sub = operator_commands.add_parser(op.value, parents=parents,
                                           help=_OPERATOR_HELP[op])
        for option in options:
            name = option.rstrip("?")
            if name == "msisdns":
                sub.add_argument("--msisdn", dest="msisdns", action="append", default=[],
                                 metavar="MSISDN", help=_OPTION_HELP[name])
            else:
                sub.add_argument(f"--{name}", required=not option.endswith("?"),
                                 help=_OPTION_HELP[name])
    other = operator_commands.add_parser("add-operator", parents=parents,
                                         help="add or update another operator for number "
                                              "routing")
    other.add_argument("--id", required=True, help="the operator's id")
    other.add_argument("--name", required=True, help="its name")
    other.add_argument("--registry", required=True, help="its registry's broker URL")
    other.add_argument("--prefix", default=DEFAULT_PREFIX, help="its registry's topic prefix")
    other.add_argument("--number-prefix", dest="number_prefixes", action="append", default=[],
                       metavar="PREFIX", help="an E.164 prefix of its numbers, repeatable")
    bind = operator_commands.add_parser(
        "bind", parents=parents,
        help="bind a subscription to the eUICC that holds it (no SM-DP+ download "
             "reported), or mark it a plain SIM (--plain-sim)")
    bind.add_argument("--iccid", required=True, help="ICCID of the SIM profile")
    card = bind.add_mutually_exclusive_group(required=True)
    card.add_argument("--eid", help="EID of the eUICC holding it")
    card.add_argument("--plain-sim", action="store_true",
                      help="the operator issued it on a plain SIM (no EID): a device "
                           "presenting this ICCID from its EF.ICCID may register, under "
                           "that ICCID")
    bind.add_argument("--swap", action="store_true",
                      help="move a profile bound to another eUICC; its device leaves the "
                           "contract")
    show = operator_commands.add_parser("show", parents=parents,
                                        help="a contract's numbers, subscriptions, devices "
                                             "and pairings")
    show.add_argument("--contract", required=True, help="contract id")


_OPERATOR_OPTIONS: dict[OperatorOp, tuple[str, ...]] = {
    OperatorOp.ADD_CONTRACT: ("contract", "holder", "msisdns"),
    OperatorOp.ADD_NUMBER: ("msisdn", "contract"),
    OperatorOp.PORT_IN: ("msisdn", "contract"),
    OperatorOp.REMOVE_NUMBER: ("msisdn",),
    OperatorOp.ADD_SUBSCRIPTION: ("iccid", "imsi", "contract", "msisdn?"),
    OperatorOp.REMOVE_SUBSCRIPTION: ("iccid",),
    OperatorOp.PORT_OUT: ("msisdn", "operator"),
}


_OPERATOR_HELP: dict[OperatorOp, str] = {
    OperatorOp.ADD_CONTRACT: "add or update a contract (and file numbers under it)",
    OperatorOp.ADD_NUMBER: "file a number under a contract",
    OperatorOp.PORT_IN: "a number ported in from another operator joins a contract",
    OperatorOp.REMOVE_NUMBER: "take a number off its contract",
    OperatorOp.ADD_SUBSCRIPTION: "add or update a subscription (a move takes its device)",
    OperatorOp.REMOVE_SUBSCRIPTION: "remove a subscription; its device leaves the contract",
    OperatorOp.PORT_OUT: "a number moved to another operator: redirect requests for it",
}


_OPTION_HELP = {
    "contract": "contract id", "holder": "the contract holder's name",
    "msisdns": "a number of the contract (E.164), repeatable", "msisdn": "number (E.164)",
    "iccid": "ICCID of the SIM profile", "imsi": "IMSI of the SIM profile",
    "operator": "id of the operator the number moved to",
}


def import_file(settings: Settings, path: str, *, as_json: bool) -> int:
    """Import an operator data file: all of it, or nothing."""
    db = settings.require("db")
    store = open_store(db)
    try:
        report = import_operator_file(store, path)
    except OperatorDataError as exc:
        if as_json:
            print(json.dumps({"source": exc.source, "imported": False,
                              "problems": [{"where": p.where, "what": p.what}
                                           for p in exc.problems]}, indent=2))
        print(str(exc), file=sys.stderr)
        return fail(PROG, f"{path}: {len(exc.problems)} problems, nothing imported")
    except OSError as exc:
        if isinstance(exc, StoreError):
            raise
        return fail(PROG, f"cannot read {path}: {exc.strerror or exc}")
    finally:
        store.close()
    if as_json:
        print(json.dumps({"imported": True, **report.to_json()}, indent=2))
    else:
        print(_describe(report))
    return EXIT_OK


def _describe(report: ImportReport) -> str:
    singular = {"contracts": "contract", "numbers": "number", "subscriptions": "subscription",
                "apps": "app", "operators": "operator", "ported": "ported number"}
    lines = [f"{change.value:<8} {singular[kind]} {key}"
             for kind in KINDS for change in (Change.ADDED, Change.UPDATED)
             for key in report.changes[kind][change]]
    rows = [[kind, *(str(len(report.changes[kind][c])) for c in Change)] for kind in KINDS]
    lines += ["", table(["", *(c.value for c in Change)], rows)]
    return "\n".join(lines).lstrip("\n")


def change(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Apply one ``operator`` data change from the command line."""
    op = OperatorOp(args.operator_command)
    msg: dict[str, Any] = {"op": op.value}
    for option in _OPERATOR_OPTIONS[op]:
        name = option.rstrip("?")
        value = getattr(args, name)
        if value is not None:
            msg[name] = value
    try:
        request = parse_operator_request(msg)
    except ValidationError as exc:
        return fail(PROG, f"--{(exc.field or 'value').rstrip('s')}: {exc.message}", EXIT_USAGE)
    outcome = registry.operator_request("cli", request)
    reply = outcome.reply
    if as_json:
        print(json.dumps(reply.to_wire(), indent=2))
    if not reply.is_ok:
        return fail(PROG, reply.message or reply.status.value)
    if not as_json:
        body = reply.body
        what = " ".join(f"{k}={body[k]}" for k in ("contract", "msisdn", "iccid", "operator")
                        if body.get(k) is not None)
        events = len(outcome.effects.events)
        print(f"{body.get('change', 'done')}: {op.value} {what}"
              + (f" ({events} events for paired apps)" if events else ""))
    return EXIT_OK


def add_operator(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Add or update another operator for number routing."""
    try:
        check_level(args.id, "operator id")
        BrokerURL.parse(args.registry)
        Topics(args.prefix)
        for prefix in args.number_prefixes:
            if not (prefix.startswith("+") and prefix[1:].isdigit() and len(prefix) <= 16):
                raise ValueError(f"number prefix {prefix!r} must be + and up to 15 digits")
    except ValueError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    other = OtherOperator(args.id, args.name, args.registry, args.prefix,
                          tuple(args.number_prefixes))
    change = registry.put_operator(other)
    registry.store.append_audit("operator:cli", "operator:add-operator", change.value,
                                subject=other.id, detail={"registry": other.registry,
                                                          "prefixes": list(other.number_prefixes)})
    if as_json:
        print(json.dumps({"operator": other.id, "change": change.value}))
    else:
        print(f"{change.value}: operator {other.id}")
    return EXIT_OK


def bind(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Bind a subscription to an eUICC on the operator's word; audited."""
    try:
        iccid = validate_iccid(args.iccid, field="--iccid")
        eid = None if args.plain_sim else validate_eid(args.eid, field="--eid")
    except ValidationError as exc:
        return fail(PROG, exc.message, EXIT_USAGE)
    try:
        change, effects = registry.bind_subscription(iccid, eid, swap=args.swap)
    except (UnknownSubscriptionError, SubscriptionInUseError) as exc:
        hint = " (--swap moves it)" if isinstance(exc, SubscriptionInUseError) else ""
        return fail(PROG, f"{exc}{hint}")
    if as_json:
        print(json.dumps({"iccid": iccid, "eid": eid, "change": change.value}))
    else:
        events = len(effects.events)
        print(f"{change.value}: ICCID {iccid} bound to "
              f"{'its plain SIM' if eid is None else eid}"
              + (f" ({events} events for paired apps)" if events else ""))
    return EXIT_OK


def _device_json(d: Device) -> dict[str, object]:
    return {"device_id": d.device_id, "eid": d.eid if d.has_eid else None, "imei": d.imei,
            "iccid": d.iccid, "ip": list(d.ip)}


def _eid_text(d: Device) -> str:
    return d.eid if d.has_eid else "none (plain SIM)"


def show(registry: Registry, contract_id: str, as_json: bool) -> int:
    """Print a contract's numbers, subscriptions, devices and pairings."""
    store = registry.store
    contract = store.contract(contract_id)
    if contract is None:
        return fail(PROG, f"no contract {contract_id}")
    subs = store.subscriptions_of_contract(contract_id)
    devices = store.devices_of_contract(contract_id)
    pairings = store.pairings(contract_id=contract_id)
    if as_json:
        print(json.dumps({
            "contract": contract.id, "holder": contract.holder,
            "msisdns": store.numbers_of_contract(contract_id),
            "subscriptions": [{"iccid": s.iccid, "imsi": s.imsi, "msisdn": s.msisdn}
                              for s in subs],
            "devices": [_device_json(d) for d in devices],
            "pairings": [{"pairing": p.id, "app": p.app_id, "state": p.state.value,
                          "purpose": p.purpose} for p in pairings],
        }, indent=2))
        return EXIT_OK
    lines = [f"contract {contract.id} of {contract.holder}",
             f"numbers: {', '.join(store.numbers_of_contract(contract_id)) or '-'}", "",
             table(["ICCID", "IMSI", "MSISDN"], [[s.iccid, s.imsi or "-", s.msisdn or "-"]
                                                 for s in subs])]
    if devices:
        lines += ["", table(["EID", "IMEI", "ICCID", "IP"],
                            [[_eid_text(d), d.imei, d.iccid, ", ".join(d.ip) or "-"]
                             for d in devices])]
    if pairings:
        lines += ["", table(["PAIRING", "APP", "STATE", "PURPOSE"],
                            [[p.id, p.app_id, p.state.value, p.purpose] for p in pairings])]
    print("\n".join(lines))
    return EXIT_OK
