"""``mps-bridge``: run the registry and administer its data.

    mps-bridge serve --db registry.db --broker mqtt://127.0.0.1:1883 [--prefix mps/v1]
                     [--group mps-bridge] [--client-id ID] [--consent-ttl 900]
    mps-bridge operator import FILE --db registry.db [--json]
    mps-bridge operator add-contract --contract C-1 --holder "Paul" [--msisdn +49...]...
    mps-bridge operator add-number|port-in --msisdn +49... --contract C-1
    mps-bridge operator remove-number --msisdn +49...
    mps-bridge operator add-subscription --iccid 89... --imsi 262... --contract C-1
                                         [--msisdn +49...]
    mps-bridge operator remove-subscription --iccid 89...
    mps-bridge operator port-out --msisdn +49... --operator OTHER
    mps-bridge operator add-operator --id OTHER --name "Other" --registry mqtts://...
                                     [--prefix mps/v1] [--number-prefix +49160]...
    mps-bridge operator show --contract C-1
    mps-bridge apps add APP --name NAME --trust partner|verified|unverified
                        [--purpose P]... [--standing-consent | --no-standing-consent]
    mps-bridge apps list | set-trust APP TRUST [--standing-consent ...] | remove APP
    mps-bridge consent list|approve PROMPT|deny PROMPT|withdraw --contract C-1 --db registry.db
    mps-bridge audit [--contract C-1] [--app APP] [--after ID] [--limit N]
    mps-bridge operator ca --ca DIR
    mps-bridge operator issue device|app|user|operator|bridge ID --out DIR --db registry.db
                          [--ca DIR] [--certificate] [--no-password] [--no-signing-key]
    mps-bridge operator revoke USERNAME
    mps-bridge operator add-device-key --eid EID --key PUB.pem
    mps-bridge operator remove-device-key --eid EID
    mps-bridge operator identities
    mps-bridge broker-config --out DIR --db registry.db [--port 1883] [--tls-port 8883]
                             [--ca DIR] [--client-certificates] [--acl file|dynsec]
                             [--bind 127.0.0.1] [--server-name NAME]... [--prefix mps/v1]

Every command but ``serve`` takes ``--db`` and ``--json``. Changes made on the database
reach paired apps through a running bridge, which publishes what it finds unpublished
(within a few seconds). Options may also come from the environment (``MPS_DB``,
``MPS_BROKER``, ...) or a TOML file's ``[bridge]`` table (``--config``/``MPS_CONFIG``).
Exit status: 0 success, 1 failure or not found, 2 usage (including invalid identifiers).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from broker_bridge import consent_cli
from broker_bridge.brokerconf import (
    ACL_MODES,
    BrokerConfig,
    BrokerConfigError,
    write_broker_config,
)
from broker_bridge.credentials import (
    CredentialError,
    OperatorCA,
    fingerprint,
    issue,
    revoke,
)
from broker_bridge.errors import BrokerError, OperatorDataError, StoreError
from broker_bridge.model import App, AuditEntry, Change, OtherOperator, Role, TrustLevel
from broker_bridge.operator import (
    KINDS,
    ImportReport,
    import_operator_file,
    parse_operator_data,
)
from broker_bridge.registry import DEFAULT_CONSENT_TTL, Registry, SignaturePolicy
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore, Store, store_for
from mps_common.cli import EXIT_OK, EXIT_USAGE, common_options, fail, parse, setup_logging, table
from mps_common.config import Settings, positive_float
from mps_common.errors import ConfigError
from mps_mqtt.client import BrokerURL
from mps_mqtt.options import broker_url, credentials_option
from mps_wire.errors import ValidationError
from mps_wire.messages import OperatorOp, parse_operator_request
from mps_wire.topics import DEFAULT_PREFIX, DEFAULT_SHARE_GROUP, Topics, check_level

PROG = "mps-bridge"

# operator subcommand -> the options it takes (besides --db/--json)
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


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", help="database file, created if missing ($MPS_DB)")
    db.add_argument("--json", action="store_true", help="print the result as JSON")

    parser = argparse.ArgumentParser(prog=PROG, description="The operator's pairing registry.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="serve registrations and "
                                "app requests until SIGTERM/SIGINT")
    serve.add_argument("--db", help="database file, created if missing ($MPS_DB)")
    serve.add_argument("--broker", help="broker URL, mqtt://host:port ($MPS_BROKER)")
    serve.add_argument("--prefix", help=f"topic prefix (default {DEFAULT_PREFIX})")
    serve.add_argument("--group", help=f"shared-subscription group (default "
                                       f"{DEFAULT_SHARE_GROUP})")
    serve.add_argument("--client-id", help="fixed MQTT client id: keeps a persistent session "
                                           "so requests queue while the bridge is down")
    serve.add_argument("--consent-ttl", help="seconds a consent prompt stays open "
                                             f"(default {DEFAULT_CONSENT_TTL:g})")
    credentials_option(serve)
    serve.add_argument("--signatures", choices=[p.value for p in SignaturePolicy],
                       help="which registrations must be signed by the device's enrolled "
                            "key: 'required' (all; devices without a key cannot register) "
                            "or 'enrolled' (devices with a key; default, for deployments "
                            "whose devices hold no keys yet) ($MPS_SIGNATURES)")

    conf = commands.add_parser("broker-config", parents=[common],
                               help="write Mosquitto's configuration, password and ACL "
                                    "files for the issued identities")
    conf.add_argument("--db", help="database file ($MPS_DB)")
    conf.add_argument("--out", required=True, metavar="DIR", help="where to write them")
    conf.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix")
    conf.add_argument("--bind", default="127.0.0.1", help="listen address (default "
                                                          "127.0.0.1)")
    conf.add_argument("--port", type=int, default=1883,
                      help="plain listener with password login (default 1883; 0: none)")
    conf.add_argument("--tls-port", type=int, help="TLS listener with the operator's CA")
    conf.add_argument("--tls", action="store_true", help="a TLS listener on 8883 (unless "
                                                         "--tls-port names another)")
    conf.add_argument("--ca", metavar="DIR", help="the operator CA (made if missing)")
    conf.add_argument("--client-certificates", action="store_true",
                      help="the TLS listener requires client certificates; their common "
                           "name is the username")
    conf.add_argument("--server-name", dest="server_names", action="append", default=[],
                      metavar="NAME", help="name or IP in the broker's certificate, "
                                           "repeatable (default 127.0.0.1, localhost)")
    conf.add_argument("--acl", choices=ACL_MODES, default="file",
                      help="password and ACL files (default; reloaded on SIGHUP) or the "
                           "dynamic security plugin (also refuses subscriptions)")
    conf.add_argument("--dynsec-plugin", metavar="PATH", help="the dynamic security plugin")
    conf.add_argument("--user", help="account mosquitto runs as when started by root")
    conf.add_argument("--no-persistence", action="store_true",
                      help="do not keep sessions and queued messages across restarts")

    operator = commands.add_parser("operator", help="operator data")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True,
                                                metavar="COMMAND")
    imp = operator_commands.add_parser(
        "import", parents=[common, db],
        help="import contracts, subscriptions, apps and number routing from TOML or JSON")
    imp.add_argument("file", metavar="FILE")
    for op, options in _OPERATOR_OPTIONS.items():
        sub = operator_commands.add_parser(op.value, parents=[common, db],
                                           help=_OPERATOR_HELP[op])
        for option in options:
            name = option.rstrip("?")
            if name == "msisdns":
                sub.add_argument("--msisdn", dest="msisdns", action="append", default=[],
                                 metavar="MSISDN", help=_OPTION_HELP[name])
            else:
                sub.add_argument(f"--{name}", required=not option.endswith("?"),
                                 help=_OPTION_HELP[name])
    other = operator_commands.add_parser("add-operator", parents=[common, db],
                                         help="add or update another operator for number "
                                              "routing")
    other.add_argument("--id", required=True, help="the operator's id")
    other.add_argument("--name", required=True, help="its name")
    other.add_argument("--registry", required=True, help="its registry's broker URL")
    other.add_argument("--prefix", default=DEFAULT_PREFIX, help="its registry's topic prefix")
    other.add_argument("--number-prefix", dest="number_prefixes", action="append", default=[],
                       metavar="PREFIX", help="an E.164 prefix of its numbers, repeatable")
    ca = operator_commands.add_parser("ca", parents=[common],
                                      help="make the operator CA (TLS and client "
                                           "certificates)")
    ca.add_argument("--ca", required=True, metavar="DIR", help="where the CA lives")
    ca.add_argument("--json", action="store_true", help="print the result as JSON")
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
    show = operator_commands.add_parser("show", parents=[common, db],
                                        help="a contract's numbers, subscriptions, devices "
                                             "and pairings")
    show.add_argument("--contract", required=True, help="contract id")

    apps = commands.add_parser("apps", help="the apps the operator knows")
    app_commands = apps.add_subparsers(dest="apps_command", required=True, metavar="COMMAND")
    add = app_commands.add_parser("add", parents=[common, db],
                                  help="register an app (or update one)")
    add.add_argument("app", metavar="APP")
    add.add_argument("--name", required=True)
    add.add_argument("--trust", required=True, choices=[t.value for t in TrustLevel])
    add.add_argument("--purpose", dest="purposes", action="append", default=[],
                     metavar="PURPOSE", help="a purpose it may pair for, repeatable")
    _standing_option(add)
    app_commands.add_parser("list", parents=[common, db], help="list the apps")
    trust = app_commands.add_parser("set-trust", parents=[common, db],
                                    help="change an app's trust level")
    trust.add_argument("app", metavar="APP")
    trust.add_argument("trust", metavar="TRUST", choices=[t.value for t in TrustLevel])
    _standing_option(trust)
    remove = app_commands.add_parser("remove", parents=[common, db],
                                     help="unregister an app; its pairings end")
    remove.add_argument("app", metavar="APP")

    consent_cli.add_parser(commands, [common, db])
    audit = commands.add_parser("audit", parents=[common, db], help="show the audit log")
    audit.add_argument("--contract", help="only entries about this contract")
    audit.add_argument("--app", help="only entries about this app")
    audit.add_argument("--after", type=int, default=0, help="only entries after this id")
    audit.add_argument("--limit", type=int, help="at most this many entries")
    return parser


def _standing_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--standing-consent", action=argparse.BooleanOptionalAction,
                        default=None, help="partner apps only: pair without asking the user "
                                           "(default for partners: yes)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-bridge`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = Settings(vars(args), section="bridge", config_file=args.config)
    try:
        setup_logging(settings.text("log_level", "warning") or "warning")
        if args.command == "serve":
            return _serve(settings)
        if args.command == "broker-config":
            return _broker_config(settings, args)
        as_json = bool(args.json)
        if args.command == "operator" and args.operator_command == "ca":
            return _make_ca(args.ca, as_json)
        if args.command == "operator" and args.operator_command == "import":
            return _import(settings, args.file, as_json=as_json)
        command = _dispatch(args)
        store = _open_store(settings.require("db"))
        try:
            return command(Registry(store), as_json)
        finally:
            store.close()
    except (ConfigError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except (StoreError, BrokerError) as exc:
        return fail(PROG, str(exc))


def _dispatch(args: argparse.Namespace) -> Callable[[Registry, bool], int]:
    if args.command == "operator":
        if args.operator_command == "add-operator":
            return lambda registry, as_json: _add_operator(registry, args, as_json)
        if args.operator_command == "show":
            return lambda registry, as_json: _show(registry, args.contract, as_json)
        if args.operator_command in _CREDENTIAL_COMMANDS:
            return lambda registry, as_json: _CREDENTIAL_COMMANDS[args.operator_command](
                registry, args, as_json)
        return lambda registry, as_json: _operator_change(registry, args, as_json)
    if args.command == "apps":
        return lambda registry, as_json: _apps(registry, args, as_json)
    if args.command == "consent":
        return lambda registry, as_json: consent_cli.run(registry, args, as_json)
    return lambda registry, as_json: _audit(registry, args, as_json)


def _open_store(db: str) -> Store:
    store = store_for(db)
    if isinstance(store, SqliteStore) and store.path != ":memory:":
        Path(store.path).parent.mkdir(parents=True, exist_ok=True)
    store.open()
    return store


def _serve(settings: Settings) -> int:
    db = settings.require("db")
    broker = broker_url(settings)
    topics = Topics(settings.text("prefix") or DEFAULT_PREFIX)
    group = settings.text("group") or DEFAULT_SHARE_GROUP
    client_id = settings.text("client_id")
    consent_ttl = settings.get("consent_ttl", DEFAULT_CONSENT_TTL, positive_float)
    signatures = settings.get("signatures", SignaturePolicy.ENROLLED, SignaturePolicy)
    store = _open_store(db)
    try:
        bridge = Bridge(store, broker, topics=topics, group=group, client_id=client_id,
                        consent_ttl=consent_ttl, signatures=signatures)

        def ready() -> None:
            # One line on stdout, for scripts waiting until the bridge is subscribed.
            print(f"{PROG}: serving {broker} prefix={topics.prefix} group={group} db={db} "
                  f"signatures={signatures.value} pid={os.getpid()}", flush=True)

        bridge.serve_forever(ready=ready)
    finally:
        store.close()
    stats = bridge.stats
    print(f"{PROG}: stopped after {stats.received} messages ({stats.handled} handled, "
          f"{stats.failed} failed)", flush=True)
    return EXIT_OK


def _import(settings: Settings, path: str, *, as_json: bool) -> int:
    db = settings.require("db")
    store = _open_store(db)
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


# --- operator data changes ---------------------------------------------------------------

def _operator_change(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
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


def _add_operator(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
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


def _show(registry: Registry, contract_id: str, as_json: bool) -> int:
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
            "devices": [{"eid": d.eid, "imei": d.imei, "iccid": d.iccid, "ip": list(d.ip)}
                        for d in devices],
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
                            [[d.eid, d.imei, d.iccid, ", ".join(d.ip) or "-"]
                             for d in devices])]
    if pairings:
        lines += ["", table(["PAIRING", "APP", "STATE", "PURPOSE"],
                            [[p.id, p.app_id, p.state.value, p.purpose] for p in pairings])]
    print("\n".join(lines))
    return EXIT_OK


# --- credentials and the broker's configuration ---------------------------------------------

def _make_ca(directory: str, as_json: bool) -> int:
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
    print(table(["USERNAME", "ROLE", "LOGIN", "ISSUED (UTC)", "STATE"],
                [[i.username, i.role.value,
                  "+".join(w for w, on in (("password", bool(i.password_hash)),
                                           ("certificate", bool(i.certificate))) if on),
                  _time(i.issued_at), "revoked" if i.revoked_at else "active"]
                 for i in identities]))
    return EXIT_OK


_CREDENTIAL_COMMANDS: dict[str, Callable[[Registry, argparse.Namespace, bool], int]] = {
    "issue": _issue, "revoke": _revoke, "add-device-key": _add_device_key,
    "remove-device-key": _remove_device_key, "identities": _identities,
}


def _broker_config(settings: Settings, args: argparse.Namespace) -> int:
    tls_port = args.tls_port or (8883 if args.tls else None)
    try:
        config = BrokerConfig(prefix=args.prefix, bind=args.bind, port=args.port or None,
                              tls_port=tls_port, client_certificates=args.client_certificates,
                              server_names=tuple(args.server_names) or ("127.0.0.1",
                                                                        "localhost"),
                              persistence=not args.no_persistence, user=args.user,
                              acl=args.acl, dynsec_plugin=args.dynsec_plugin)
        ca = OperatorCA.load_or_create(args.ca) if args.ca else None
    except (BrokerConfigError, CredentialError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    store = _open_store(settings.require("db"))
    try:
        identities = store.identities()
    finally:
        store.close()
    try:
        files = write_broker_config(args.out, config, identities, ca=ca)
    except BrokerConfigError as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except OSError as exc:
        return fail(PROG, f"cannot write to {args.out}: {exc.strerror or exc}")
    listeners = [f"{config.bind}:{config.port} (password)" if config.port else "",
                 f"{config.bind}:{config.tls_port} (TLS"
                 + (", client certificates)" if config.client_certificates else ")")
                 if config.tls_port else ""]
    print(f"wrote {files.conf} for {files.users} users; listeners "
          f"{', '.join(x for x in listeners if x)}; ACL by {config.acl}")
    if not any(i.role is Role.BRIDGE for i in identities):
        print(f"{PROG}: note: no bridge identity is issued; the registry cannot log in "
              "(mps-bridge operator issue bridge NAME --out DIR)", file=sys.stderr)
    return EXIT_OK


# --- apps ----------------------------------------------------------------------------------

def _apps(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    store = registry.store
    if args.apps_command == "list":
        apps = store.apps()
        if as_json:
            print(json.dumps([_app_json(a) for a in apps], indent=2))
        else:
            print(table(["APP", "NAME", "TRUST", "STANDING", "PURPOSES"],
                        [[a.id, a.name, a.trust.value, "yes" if a.standing_consent else "no",
                          ", ".join(a.purposes) or "-"] for a in apps]))
        return EXIT_OK
    if args.apps_command == "remove":
        removed, effects = registry.remove_app(args.app)
        if not removed:
            return fail(PROG, f"no app {args.app}")
        if as_json:
            print(json.dumps({"app": args.app, "change": "removed",
                              "pairings_ended": len(effects.events)}))
        else:
            print(f"removed: app {args.app} ({len(effects.events)} pairings ended)")
        return EXIT_OK
    if args.apps_command == "add":
        check_level(args.app, "app id")
        # The operator file's checks, so both ways of registering apps agree.
        entry: dict[str, Any] = {"id": args.app, "name": args.name, "trust": args.trust,
                                 "purposes": args.purposes}
        if args.standing_consent is not None:
            entry["standing_consent"] = args.standing_consent
        try:
            app = parse_operator_data({"apps": [entry]}, "arguments").apps[0]
        except OperatorDataError as exc:
            return fail(PROG, "; ".join(str(p) for p in exc.problems), EXIT_USAGE)
    else:  # set-trust
        current = store.app(args.app)
        if current is None:
            return fail(PROG, f"no app {args.app}")
        level = TrustLevel(args.trust)
        standing = (args.standing_consent if args.standing_consent is not None
                    else level is TrustLevel.PARTNER and (current.standing_consent
                                                         or current.trust is not level))
        if standing and level is not TrustLevel.PARTNER:
            return fail(PROG, "only partner apps may hold standing consent", EXIT_USAGE)
        app = App(current.id, current.name, level, current.purposes, standing)
    change, effects = registry.put_app(app)
    ended = sum(1 for e in effects.events if e.kind.value == "pairing-ended")
    if as_json:
        print(json.dumps({**_app_json(app), "change": change.value, "pairings_ended": ended}))
    else:
        print(f"{change.value}: app {app.id} ({app.trust.value}"
              f"{', standing consent' if app.standing_consent else ''})"
              + (f"; {ended} pairings ended" if ended else ""))
    return EXIT_OK


def _app_json(app: App) -> dict[str, Any]:
    return {"app": app.id, "name": app.name, "trust": app.trust.value,
            "purposes": list(app.purposes), "standing_consent": app.standing_consent}


# --- audit -----------------------------------------------------------------------------------

def _audit(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    if args.limit is not None and args.limit < 1:
        return fail(PROG, "--limit must be at least 1", EXIT_USAGE)
    entries = registry.store.audit(contract_id=args.contract, app_id=args.app,
                                   after=args.after, limit=args.limit)
    if as_json:
        print(json.dumps([_audit_json(e) for e in entries], indent=2))
        return EXIT_OK
    if not entries:
        print("no audit entries")
        return EXIT_OK
    print(table(["ID", "TIME (UTC)", "ACTOR", "ACTION", "OUTCOME", "CONTRACT", "APP",
                 "SUBJECT"],
                [[str(e.id), _time(e.at), e.actor, e.action, e.outcome, e.contract_id or "-",
                  e.app_id or "-", e.subject or "-"] for e in entries]))
    return EXIT_OK


def _audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at, "actor": entry.actor, "action": entry.action,
            "outcome": entry.outcome, "contract": entry.contract_id, "app": entry.app_id,
            "subject": entry.subject, "detail": entry.detail}


def _time(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":
    sys.exit(main())
