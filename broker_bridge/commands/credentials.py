"""``mps-bridge operator ca|issue|revoke|add-device-key|remove-device-key|identities``:
the operator CA, broker identities and the devices' signing keys."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker_bridge.commands.common import PROG, time_text
from broker_bridge.credentials import CredentialError, OperatorCA, fingerprint, issue, revoke
from broker_bridge.model import Role
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail, json_flag, table


def add_parsers(operator_commands: Any, common: argparse.ArgumentParser,
                db: argparse.ArgumentParser) -> None:
    """Add the credential commands to ``operator``."""
    ca = operator_commands.add_parser("ca", parents=[common],
                                      help="make the operator CA (TLS and client "
                                           "certificates)")
    ca.add_argument("--ca", required=True, metavar="DIR", help="where the CA lives")
    json_flag(ca)
    issue_cmd = operator_commands.add_parser(
        "issue", parents=[common, db],
        help="issue broker credentials (and a device's signing key) as a bundle directory")
    issue_cmd.add_argument("role", choices=[r.value for r in Role])
    issue_cmd.add_argument("subject", metavar="ID",
                           help="EID, app id, contract id, operator source or bridge name")
    issue_cmd.add_argument("--out", required=True, metavar="DIR",
                           help="the bundle directory to write")
    issue_cmd.add_argument("--ca", metavar="DIR", help="the operator CA: its certificate "
                                                       "goes into the bundle")
    issue_cmd.add_argument("--certificate", action="store_true",
                           help="also issue a client certificate (needs --ca)")
    issue_cmd.add_argument("--no-password", action="store_true",
                           help="no password (certificate login only)")
    issue_cmd.add_argument("--no-signing-key", action="store_true",
                           help="devices: no signing key (registrations unsigned)")
    revoke_cmd = operator_commands.add_parser("revoke", parents=[common, db],
                                              help="revoke a broker identity")
    revoke_cmd.add_argument("username", metavar="USERNAME")
    add_key = operator_commands.add_parser("add-device-key", parents=[common, db],
                                           help="enroll a device's public signing key")
    add_key.add_argument("--eid", required=True)
    add_key.add_argument("--key", required=True, metavar="PUB.pem",
                         help="P-256 public key, PEM or DER")
    remove_key = operator_commands.add_parser("remove-device-key", parents=[common, db],
                                              help="withdraw a device's signing key")
    remove_key.add_argument("--eid", required=True)
    operator_commands.add_parser("identities", parents=[common, db],
                                 help="list the issued broker identities")


def make_ca(directory: str, as_json: bool) -> int:
    """Make the operator CA in ``directory``."""
    try:
        ca = OperatorCA.create(directory)
    except CredentialError as exc:
        return fail(PROG, str(exc))
    if as_json:
        print(json.dumps({"ca": str(ca.cert_file),
                          "fingerprint": fingerprint(ca.certificate)}))
    else:
        print(f"made the operator CA in {directory} (SHA-256 {fingerprint(ca.certificate)})")
    return EXIT_OK


def _issue(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    role = Role(args.role)
    if args.no_signing_key and role is not Role.DEVICE:
        return fail(PROG, "--no-signing-key is for devices", EXIT_USAGE)
    try:
        ca = OperatorCA.load(args.ca) if args.ca else None
        issued = issue(registry, role, args.subject, args.out, ca=ca,
                       password=not args.no_password, certificate=args.certificate,
                       signing_key=False if args.no_signing_key else None)
    except CredentialError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    identity = issued.identity
    if as_json:
        print(json.dumps({"username": identity.username, "role": identity.role.value,
                          "subject": identity.subject, "bundle": str(issued.directory),
                          "password": issued.password is not None,
                          "certificate": identity.certificate,
                          "signing_kid": issued.signing_kid.hex() if issued.signing_kid
                          else None, "change": issued.change.value}))
    else:
        what = [w for w, present in (("password", issued.password is not None),
                                     ("certificate", identity.certificate is not None),
                                     ("signing key", issued.signing_kid is not None))
                if present]
        print(f"{issued.change.value}: {identity.role.value} {identity.username} "
              f"({', '.join(what)}) -> {issued.directory}; run broker-config to apply")
    return EXIT_OK


def _revoke(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    if not revoke(registry, args.username):
        return fail(PROG, f"no active identity {args.username}")
    if as_json:
        print(json.dumps({"username": args.username, "change": "revoked"}))
    else:
        print(f"revoked: {args.username}; run broker-config to apply")
    return EXIT_OK


def _add_device_key(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    try:
        data = Path(args.key).read_bytes()
    except OSError as exc:
        return fail(PROG, f"cannot read {args.key}: {exc.strerror or exc}")
    try:
        record, change = registry.enroll_device_key(args.eid, data)
    except ValueError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    if as_json:
        print(json.dumps({"eid": record.eid, "kid": record.kid.hex(),
                          "change": change.value}))
    else:
        print(f"{change.value}: signing key {record.kid.hex()} of device {record.eid}")
    return EXIT_OK


def _remove_device_key(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    if not registry.withdraw_device_key(args.eid):
        return fail(PROG, f"no key is enrolled for device {args.eid}")
    if as_json:
        print(json.dumps({"eid": args.eid, "change": "removed"}))
    else:
        print(f"removed: signing key of device {args.eid}")
    return EXIT_OK


def _identities(registry: Registry, _args: argparse.Namespace, as_json: bool) -> int:
    identities = registry.store.identities(include_revoked=True)
    if as_json:
        print(json.dumps([{"username": i.username, "role": i.role.value,
                           "subject": i.subject, "password": i.password_hash is not None,
                           "certificate": i.certificate, "issued_at": i.issued_at,
                           "revoked_at": i.revoked_at} for i in identities], indent=2))
        return EXIT_OK
    if not identities:
        print("no identities issued (mps-bridge operator issue ROLE NAME --out DIR)")
        return EXIT_OK
    print(table(["USERNAME", "ROLE", "LOGIN", "ISSUED (UTC)", "STATE"],
                [[i.username, i.role.value,
                  "+".join(w for w, on in (("password", bool(i.password_hash)),
                                           ("certificate", bool(i.certificate))) if on),
                  time_text(i.issued_at), "revoked" if i.revoked_at else "active"]
                 for i in identities]))
    return EXIT_OK


COMMANDS: dict[str, Callable[[Registry, argparse.Namespace, bool], int]] = {
    "issue": _issue, "revoke": _revoke, "add-device-key": _add_device_key,
    "remove-device-key": _remove_device_key, "identities": _identities,
}
