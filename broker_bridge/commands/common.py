"""What the ``mps-bridge`` subcommands share: the program name, the store, the parsers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from broker_bridge.storage import SqliteStore, Store, store_for
from mps_common.cli import json_flag, utc_time

PROG = "mps-bridge"


class _Parser(argparse.ArgumentParser):
    """A subcommand's parser: options are never abbreviated there either."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def subcommands(parser: argparse.ArgumentParser, dest: str, metavar: str = "COMMAND"
                ) -> Any:
    """The required subcommands of ``parser``, whose options are never abbreviated."""
    return parser.add_subparsers(dest=dest, required=True, metavar=metavar,
                                 parser_class=_Parser)


def db_options() -> argparse.ArgumentParser:
    """A parent parser with ``--db`` and ``--json``, which every command on the database
    takes."""
    db = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    db.add_argument("--db", help="database file, created if missing ($MPS_DB)")
    json_flag(db)
    return db


def open_store(db: str, *, create: bool = True) -> Store:
    """The store at ``db``, opened (a SQLite file's directory is made if missing); without
    ``create``, StoreMissingError where there is no registry database yet."""
    store = store_for(db, create=create)
    if create and isinstance(store, SqliteStore) and store.path != ":memory:":
        Path(store.path).parent.mkdir(parents=True, exist_ok=True)
    store.open()
    return store


time_text = utc_time
