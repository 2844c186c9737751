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
    mps-bridge operator bind --iccid 89... --eid 89... [--swap]
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
    mps-bridge db init --db registry.db             (serve never makes a database)
    mps-bridge devices show EID                     a device and its eUICC's profiles
    mps-bridge devices reset-seq EID [--to N]       (audited)
    mps-bridge broker-config --out DIR --db registry.db [--port 1883] [--tls-port 8883]
                             [--ca DIR] [--client-certificates] [--acl dynsec]
                             [--bind 127.0.0.1] [--server-name NAME]... [--prefix mps/v1]

Every command but ``serve`` takes ``--db`` and ``--json``. Changes made on the database
reach paired apps through a running bridge, which publishes what it finds unpublished
(within a few seconds). Options may also come from the environment (``MPS_DB``,
``MPS_BROKER``, ...) or a TOML file's ``[bridge]`` table (``--config``/``MPS_CONFIG``).
Exit status: 0 success, 1 failure or not found, 2 usage (including invalid identifiers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from broker_bridge import consent_cli
from broker_bridge.commands import (
    apps,
    audit,
    broker_config,
    credentials,
    devices,
    operator_data,
    serve,
)
from broker_bridge.commands import db as db_command
from broker_bridge.commands.common import PROG, db_options, open_store, subcommands
from broker_bridge.errors import BrokerError, StoreError
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_USAGE, common_options, fail, new_parser, parse, setup_logging
from mps_common.config import Settings
from mps_common.errors import ConfigError

#: The keys a configuration file's [bridge] table may set.
FILE_OPTIONS = ("db", "broker", "credentials", "prefix", "group", "client_id", "consent_ttl",
                "signatures", "log_level")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``mps-bridge`` and all its subcommands."""
    common = common_options()
    db = db_options()
    parser = new_parser(PROG, "The operator's pairing registry.")
    commands = subcommands(parser, "command")
    serve.add_parser(commands, common)
    broker_config.add_parser(commands, common)
    operator = commands.add_parser("operator", help="operator data")
    operator_commands = subcommands(operator, "operator_command")
    operator_data.add_parsers(operator_commands, [common, db])
    credentials.add_parsers(operator_commands, common, db)
    apps.add_parser(commands, [common, db])
    consent_cli.add_parser(commands, [common, db])
    audit.add_parser(commands, [common, db])
    db_command.add_parser(commands, [common, db])
    devices.add_parser(commands, [common, db])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mps-bridge`` with ``argv`` (default: the process's arguments)."""
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    settings = Settings(vars(args), section="bridge", config_file=args.config,
                        file_options=FILE_OPTIONS)
    try:
        setup_logging(settings.text("log_level", "warning") or "warning")
        if args.command == "serve":
            return serve.run(settings)
        if args.command == "broker-config":
            return broker_config.run(settings, args)
        if args.command == "db":
            return db_command.run(settings, args)
        as_json = bool(args.json)
        if args.command == "operator" and args.operator_command == "ca":
            return credentials.make_ca(args.ca, as_json)
        if args.command == "operator" and args.operator_command == "import":
            return operator_data.import_file(settings, args.file, as_json=as_json)
        command = _dispatch(args)
        store = open_store(settings.require("db"))
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
            return lambda registry, as_json: operator_data.add_operator(registry, args, as_json)
        if args.operator_command == "bind":
            return lambda registry, as_json: operator_data.bind(registry, args, as_json)
        if args.operator_command == "show":
            return lambda registry, as_json: operator_data.show(registry, args.contract, as_json)
        if args.operator_command in credentials.COMMANDS:
            return lambda registry, as_json: credentials.COMMANDS[args.operator_command](
                registry, args, as_json)
        return lambda registry, as_json: operator_data.change(registry, args, as_json)
    if args.command == "apps":
        return lambda registry, as_json: apps.run(registry, args, as_json)
    if args.command == "consent":
        return lambda registry, as_json: consent_cli.run(registry, args, as_json)
    if args.command == "devices":
        return lambda registry, as_json: devices.run(registry, args, as_json)
    return lambda registry, as_json: audit.run(registry, args, as_json)




if __name__ == "__main__":
    sys.exit(main())
