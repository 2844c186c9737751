"""``mps-bridge``: run the registry and administer its data.

    mps-bridge serve --db registry.db --broker mqtt://127.0.0.1:1883 [--prefix mps/v1]
                     [--group mps-bridge] [--client-id ID] [--log-level info]
    mps-bridge operator import FILE --db registry.db [--json]

Options may also come from the environment (``MPS_DB``, ``MPS_BROKER``, ...) or a TOML
file's ``[bridge]`` table (``--config``/``MPS_CONFIG``). Exit status: 0 success, 1 failure,
2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from broker_bridge._cli import (
    EXIT_OK,
    EXIT_USAGE,
    common_options,
    fail,
    parse,
    setup_logging,
    table,
)
from broker_bridge.config import Settings
from broker_bridge.errors import BrokerError, ConfigError, OperatorDataError, StoreError
from broker_bridge.model import Change
from broker_bridge.operator import KINDS, ImportReport, import_operator_file
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore, Store, store_for
from mps_wire.mqtt import BrokerURL
from mps_wire.topics import DEFAULT_PREFIX, DEFAULT_SHARE_GROUP, Topics

PROG = "mps-bridge"


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
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

    operator = commands.add_parser("operator", help="operator data")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True,
                                                metavar="COMMAND")
    imp = operator_commands.add_parser(
        "import", parents=[common],
        help="import contracts, subscriptions and apps from a TOML or JSON file")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--db", help="database file, created if missing ($MPS_DB)")
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


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
        return _import(settings, args.file, as_json=args.json)
    except (ConfigError, ValueError) as exc:
        return fail(PROG, str(exc), EXIT_USAGE)
    except (StoreError, BrokerError) as exc:
        return fail(PROG, str(exc))


def _open_store(db: str) -> Store:
    store = store_for(db)
    if isinstance(store, SqliteStore) and store.path != ":memory:":
        Path(store.path).parent.mkdir(parents=True, exist_ok=True)
    store.open()
    return store


def _serve(settings: Settings) -> int:
    db = settings.require("db")
    broker = BrokerURL.parse(settings.require("broker"))
    topics = Topics(settings.text("prefix") or DEFAULT_PREFIX)
    group = settings.text("group") or DEFAULT_SHARE_GROUP
    client_id = settings.text("client_id")
    store = _open_store(db)
    try:
        bridge = Bridge(store, broker, topics=topics, group=group, client_id=client_id)

        def ready() -> None:
            # One line on stdout, for scripts waiting until the bridge is subscribed.
            print(f"{PROG}: serving {broker} prefix={topics.prefix} group={group} db={db} "
                  f"pid={os.getpid()}", flush=True)

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


if __name__ == "__main__":
    sys.exit(main())
