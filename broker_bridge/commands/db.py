"""``mps-bridge db init``: make the registry's database, the one command that does.

``serve`` never makes one: a missing or empty file (a typo in ``--db``, a volume that
did not mount) would otherwise be served as an empty registry without a word.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from broker_bridge.commands.common import PROG, open_store, subcommands
from broker_bridge.errors import StoreMissingError
from broker_bridge.storage.migrations import LATEST_VERSION
from mps_common.cli import EXIT_OK
from mps_common.config import Settings


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``db init``."""
    db = commands.add_parser("db", help="the registry's database")
    db_commands = subcommands(db, "db_command")
    db_commands.add_parser("init", parents=parents,
                           help="make the database (or bring an existing one to the "
                                "current schema); serve never makes one")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Make the database named by ``--db``; an existing one is migrated, nothing else."""
    db = settings.require("db")
    existing = True
    try:
        open_store(db, create=False).close()
    except StoreMissingError:
        existing = False
    store = open_store(db)
    try:
        version = store.schema_version()
    finally:
        store.close()
    if args.json:
        print(json.dumps({"db": db, "created": not existing, "schema_version": version}))
    else:
        what = "already holds a registry database" if existing else "created"
        print(f"{PROG}: {db}: {what} (schema version {version} of {LATEST_VERSION})")
    return EXIT_OK
