"""``mps-bridge portability``: the operator's number portability list."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from broker_bridge.commands.common import PROG, time_text
from broker_bridge.errors import OperatorDataError
from broker_bridge.portability import HOME
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from mps_wire.identifiers import IdentifierError, validate_msisdn


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``portability import`` and ``portability show``."""
    portability = commands.add_parser("portability", help="the number portability list")
    sub = portability.add_subparsers(dest="portability_command", required=True,
                                     metavar="COMMAND")
    imported = sub.add_parser(
        "import", parents=parents, allow_abbrev=False,
        help="replace the portability list with a CSV or JSON file (all of it or nothing): "
             "numbers given to another operator leave their contract and their pairings "
             "end; numbers brought here with a contract are filed under it")
    imported.add_argument("file", help="the list: msisdn,operator,valid_from,valid_until"
                                       "[,contract] (CSV with a header, or JSON)")
    imported.add_argument("--home", default=HOME, metavar="ID",
                          help=f"the operator id the list names this registry by "
                               f"(default {HOME!r})")
    show = sub.add_parser("show", parents=parents, allow_abbrev=False,
                          help="who serves a number now, by the list")
    show.add_argument("msisdn", help="the number (E.164)")


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Run a ``portability`` command."""
    if args.portability_command == "show":
        return _show(registry, args.msisdn, as_json)
    try:
        report, effects = registry.import_portability(args.file, home=args.home)
    except OperatorDataError as exc:
        if as_json:
            print(json.dumps({"source": exc.source, "imported": False,
                              "problems": [{"where": p.where, "what": p.what}
                                           for p in exc.problems]}, indent=2))
        print(str(exc), file=sys.stderr)
        return fail(PROG, f"{args.file}: {len(exc.problems)} problems, nothing imported")
    result = {"imported": True, "entries": report.entries, "replaced": report.replaced,
              "ported_out": list(report.ported_out), "ported_in": list(report.ported_in),
              "pairings_ended": report.pairings_ended, "events": len(effects.events)}
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(f"imported {report.entries} entries (replacing {report.replaced}); ported out "
              f"{len(report.ported_out)}, ported in {len(report.ported_in)}, pairings "
              f"ended {report.pairings_ended}")
    return EXIT_OK


def _show(registry: Registry, msisdn: str, as_json: bool) -> int:
    try:
        number = validate_msisdn(msisdn, field="msisdn")
    except IdentifierError as exc:
        return fail(PROG, exc.message, EXIT_USAGE)
    entry = registry.store.port_entry(number, int(time.time() * 1000))
    if entry is None:
        if as_json:
            print(json.dumps({"msisdn": number, "entry": None}))
            return EXIT_FAILURE
        return fail(PROG, f"the portability list has no entry for {number} now")
    data = {"msisdn": number, "operator": entry.operator, "contract": entry.contract,
            "valid_from": entry.valid_from, "valid_until": entry.valid_until}
    if as_json:
        print(json.dumps(data))
    else:
        until = time_text(entry.valid_until) + " UTC" if entry.valid_until else "open end"
        who = f"operator {entry.operator}" if entry.operator else "this registry" + (
            f" (contract {entry.contract})" if entry.contract else "")
        print(f"{number}: {who}, from {time_text(entry.valid_from)} UTC until {until}")
    return EXIT_OK
