"""``mps-bridge apps``: the apps the operator knows, with their trust levels."""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker_bridge.commands.common import PROG
from broker_bridge.errors import OperatorDataError
from broker_bridge.model import App, TrustLevel
from broker_bridge.operator import parse_operator_data
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_OK, EXIT_USAGE, emit, fail, table
from mps_wire.topics import check_level


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``apps add|list|set-trust|remove``."""
    apps = commands.add_parser("apps", help="the apps the operator knows")
    app_commands = apps.add_subparsers(dest="apps_command", required=True, metavar="COMMAND")
    add = app_commands.add_parser("add", parents=parents,
                                  help="register an app (or update one)")
    add.add_argument("app", metavar="APP")
    add.add_argument("--name", required=True)
    add.add_argument("--trust", required=True, choices=[t.value for t in TrustLevel])
    add.add_argument("--purpose", dest="purposes", action="append", default=[],
                     metavar="PURPOSE", help="a purpose it may pair for, repeatable")
    _standing_option(add)
    app_commands.add_parser("list", parents=parents, help="list the apps")
    trust = app_commands.add_parser("set-trust", parents=parents,
                                    help="change an app's trust level")
    trust.add_argument("app", metavar="APP")
    trust.add_argument("trust", metavar="TRUST", choices=[t.value for t in TrustLevel])
    _standing_option(trust)
    remove = app_commands.add_parser("remove", parents=parents,
                                     help="unregister an app; its pairings end")
    remove.add_argument("app", metavar="APP")


def _standing_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--standing-consent", action=argparse.BooleanOptionalAction,
                        default=None, help="partner apps only: pair without asking the user "
                                           "(default for partners: yes)")


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Carry out one ``apps`` subcommand on ``registry``."""
    if args.apps_command == "list":
        return _list(registry, as_json)
    if args.apps_command == "remove":
        return _remove(registry, args.app, as_json)
    app = _new_app(args) if args.apps_command == "add" else _retrusted(registry, args)
    if isinstance(app, int):
        return app
    change, effects = registry.put_app(app)
    ended = sum(1 for e in effects.events if e.kind.value == "pairing-ended")
    if as_json:
        print(json.dumps({**_app_json(app), "change": change.value, "pairings_ended": ended}))
    else:
        print(f"{change.value}: app {app.id} ({app.trust.value}"
              f"{', standing consent' if app.standing_consent else ''})"
              + (f"; {ended} pairings ended" if ended else ""))
    return EXIT_OK


def _list(registry: Registry, as_json: bool) -> int:
    apps = registry.store.apps()
    emit([_app_json(a) for a in apps], as_json=as_json,
         text=lambda _: table(["APP", "NAME", "TRUST", "STANDING", "PURPOSES"],
                              [[a.id, a.name, a.trust.value,
                                "yes" if a.standing_consent else "no",
                                ", ".join(a.purposes) or "-"] for a in apps]))
    return EXIT_OK


def _remove(registry: Registry, app_id: str, as_json: bool) -> int:
    removed, effects = registry.remove_app(app_id)
    if not removed:
        return fail(PROG, f"no app {app_id}")
    if as_json:
        print(json.dumps({"app": app_id, "change": "removed",
                          "pairings_ended": len(effects.events)}))
    else:
        print(f"removed: app {app_id} ({len(effects.events)} pairings ended)")
    return EXIT_OK


def _new_app(args: argparse.Namespace) -> App | int:
    """The app ``apps add`` describes, or the exit status for invalid arguments."""
    check_level(args.app, "app id")
    # The operator file's checks, so both ways of registering apps agree.
    entry: dict[str, Any] = {"id": args.app, "name": args.name, "trust": args.trust,
                             "purposes": args.purposes}
    if args.standing_consent is not None:
        entry["standing_consent"] = args.standing_consent
    try:
        return parse_operator_data({"apps": [entry]}, "arguments").apps[0]
    except OperatorDataError as exc:
        return fail(PROG, "; ".join(str(p) for p in exc.problems), EXIT_USAGE)


def _retrusted(registry: Registry, args: argparse.Namespace) -> App | int:
    """The app ``apps set-trust`` makes of a registered one, or the exit status."""
    current = registry.store.app(args.app)
    if current is None:
        return fail(PROG, f"no app {args.app}")
    level = TrustLevel(args.trust)
    # A partner keeps its standing consent, and one that becomes a partner gets it.
    standing = (args.standing_consent if args.standing_consent is not None
                else level is TrustLevel.PARTNER and (current.standing_consent
                                                     or current.trust is not level))
    if standing and level is not TrustLevel.PARTNER:
        return fail(PROG, "only partner apps may hold standing consent", EXIT_USAGE)
    return App(current.id, current.name, level, current.purposes, standing)


def _app_json(app: App) -> dict[str, Any]:
    return {"app": app.id, "name": app.name, "trust": app.trust.value,
            "purposes": list(app.purposes), "standing_consent": app.standing_consent}
