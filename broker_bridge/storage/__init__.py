"""Storage of the registry behind one interface; backends chosen by database URL."""

from __future__ import annotations

from broker_bridge.storage.base import Store
from broker_bridge.storage.sql import SqlStore
from broker_bridge.storage.sqlite import SqliteStore
from mps_common.errors import ConfigError

__all__ = ["SqliteStore", "Store", "store_for"]


def store_for(db: str, *, create: bool = True) -> Store:
    """The store named by ``db`` (not yet opened): a file path or ``sqlite:///abs/path``
    for SQLite, ``postgresql://user@host/dbname[?schema=NAME]`` for PostgreSQL (needs
    psycopg 3: ``pip install 'psycopg[binary]'``). Without ``create``, opening it raises
    StoreMissingError where there is no registry database yet.
    """
    store = _store_for(db)
    if not create and isinstance(store, SqlStore):
        store.create = False
    return store


def _store_for(db: str) -> Store:
    if db.startswith("sqlite://"):
        path = db[len("sqlite://"):]  # sqlite:///abs/file.db keeps its leading slash
        if not path:
            raise ConfigError(f"database URL {db!r} names no file")
        return SqliteStore(path)
    if db.startswith(("postgresql://", "postgres://")):
        return _postgres_store(db)
    if "://" in db:
        raise ConfigError(f"unknown database URL scheme in {db!r}")
    if not db:
        raise ConfigError("no database given")
    return SqliteStore(db)


def _postgres_store(url: str) -> Store:
    # Imported here: psycopg is needed only by deployments that use PostgreSQL.
    try:
        from broker_bridge.storage.postgres import PostgresStore
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise ConfigError("the PostgreSQL store needs psycopg 3 "
                          "(pip install 'psycopg[binary]')") from exc
    return PostgresStore(url)
