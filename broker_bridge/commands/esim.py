"""``mps-bridge esim``: eSIM profile operations that wait for the user's word.

    mps-bridge esim request EID disable|enable|delete ICCID [--ttl SECONDS]
    mps-bridge esim list [--contract C-1] [--all]
    mps-bridge esim approve|refuse REQUEST --contract C-1   (on the user's behalf)
    mps-bridge esim key [--out FILE]          (the order key the agents verify with)

A request waits until the user approves it (the consent page, or ``approve`` here on
their behalf); a running bridge then sends the device its signed order. Every step is in
the audit log.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from broker_bridge.choices import EsimAction, EsimRequest, EsimState
from broker_bridge.commands.common import PROG, subcommands
from broker_bridge.registry import Registry
from broker_bridge.registry.esim import ESIM_REQUEST_TTL
from broker_bridge.registry.portal_views import PortalError
from mps_common.cli import EXIT_FAILURE, EXIT_OK, fail, table, utc_time
from mps_common.durable import atomic_write
from mps_wire.topics import check_level

ACTOR = "operator:mps-bridge"


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``esim request|list|approve|refuse|key``."""
    esim = commands.add_parser("esim", help="eSIM operations with the user's word")
    actions = subcommands(esim, "esim_command", "ACTION")
    request = actions.add_parser("request", parents=parents,
                                 help="ask the user for a profile operation on a device")
    request.add_argument("eid", metavar="EID")
    request.add_argument("action", choices=[a.value for a in EsimAction])
    request.add_argument("iccid", metavar="ICCID")
    request.add_argument("--ttl", type=float, default=ESIM_REQUEST_TTL,
                         help="seconds the request waits for the user (default a day)")
    listing = actions.add_parser("list", parents=parents, help="eSIM requests")
    listing.add_argument("--contract", help="only this contract's")
    listing.add_argument("--all", action="store_true",
                         help="decided and finished ones too (default: awaiting the user)")
    for name, what in (("approve", "approve on the user's behalf: the order is sent"),
                       ("refuse", "refuse: nothing changes on the device")):
        decide = actions.add_parser(name, parents=parents, help=what)
        decide.add_argument("request", metavar="REQUEST")
        decide.add_argument("--contract", required=True, help="the device's contract")
    key = actions.add_parser("key", parents=parents,
                             help="the registry's order key (PEM) for the agents' settings")
    key.add_argument("--out", metavar="FILE", help="write it here (default: print it)")


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Carry out one ``esim`` subcommand."""
    action = args.esim_command
    if action == "key":
        return _key(registry, args.out, as_json)
    if action == "list":
        contract = check_level(args.contract, "contract id") if args.contract else None
        states = None if args.all else (EsimState.AWAITING,)
        _print(registry.store.esim_requests(contract_id=contract, states=states), as_json)
        return EXIT_OK
    found: EsimRequest | None
    try:
        if action == "request":
            found = registry.request_esim(args.eid, args.action, args.iccid, actor=ACTOR,
                                          ttl=args.ttl)
        else:
            contract = check_level(args.contract, "contract id")
            registry.decide_esim(contract, check_level(args.request, "request id"),
                                 approve=action == "approve", actor=ACTOR)
            found = registry.store.esim_request(args.request)
    except PortalError as exc:
        return fail(PROG, str(exc), EXIT_FAILURE)
    _print([found] if found is not None else [], as_json, one=True)
    return EXIT_OK


def _key(registry: Registry, out: str | None, as_json: bool) -> int:
    pem = registry.order_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if out:
        atomic_write(Path(out), pem)
        print(json.dumps({"key": out}) if as_json else f"order key written to {out}")
    else:
        print(json.dumps({"key": pem.decode()}) if as_json else pem.decode(), end="")
    return EXIT_OK


def _row(r: EsimRequest) -> dict[str, Any]:
    return {"request": r.id, "eid": r.eid, "contract": r.contract_id, "action": r.action.value,
            "iccid": r.iccid, "state": r.state.value, "requested_by": r.requested_by,
            "requested_at": r.requested_at, "expires_at": r.expires_at,
            "decided_by": r.decided_by, "counter": r.counter, "result": r.result}


def _print(found: list[EsimRequest], as_json: bool, *, one: bool = False) -> None:
    rows = [_row(r) for r in found]
    if as_json:
        print(json.dumps(rows[0] if one and rows else rows, indent=2))
        return
    if one and rows:
        r = rows[0]
        print(f"{r['request']}: {r['action']} {r['iccid']} on {r['eid']} - {r['state']}")
        return
    print(table(["REQUEST", "EID", "ACTION", "ICCID", "STATE", "BY", "ASKED (UTC)",
                 "RESULT"],
                [[r["request"], r["eid"], r["action"], r["iccid"], r["state"],
                  r["requested_by"], utc_time(r["requested_at"]), r["result"] or ""]
                 for r in rows]) if rows else "no eSIM requests")
