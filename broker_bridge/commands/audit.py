"""``mps-bridge audit``: the audit log."""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker_bridge.commands.common import PROG, time_text
from broker_bridge.model import AuditEntry
from broker_bridge.registry import Registry
from mps_common.cli import EXIT_OK, EXIT_USAGE, fail, table


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``audit``."""
    audit = commands.add_parser("audit", parents=parents, help="show the audit log")
    audit.add_argument("--contract", help="only entries about this contract")
    audit.add_argument("--app", help="only entries about this app")
    audit.add_argument("--after", type=int, default=0, help="only entries after this id")
    audit.add_argument("--limit", type=int, help="at most this many entries")


def run(registry: Registry, args: argparse.Namespace, as_json: bool) -> int:
    """Print the audit log, filtered by the options."""
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
                 "SUBJECT", "DETAIL"],
                [[str(e.id), time_text(e.at), e.actor, e.action, e.outcome, e.contract_id or "-",
                  e.app_id or "-", e.subject or "-", _detail_text(e.detail)] for e in entries]))
    return EXIT_OK


def _detail_text(detail: dict[str, Any] | None) -> str:
    """An entry's detail as ``key=value`` pairs (lists and maps as compact JSON)."""
    if not detail:
        return "-"
    return " ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                    for key, value in sorted(detail.items()))


def _audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at, "actor": entry.actor, "action": entry.action,
            "outcome": entry.outcome, "contract": entry.contract_id, "app": entry.app_id,
            "subject": entry.subject, "detail": entry.detail}
