"""Storage of the registry behind one interface; backends chosen by database URL."""

from __future__ import annotations

from broker_bridge.errors import ConfigError
from broker_bridge.storage.base import Store
from broker_bridge.storage.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "store_for"]


def store_for(db: str) -> Store:
    """The store named by ``db``: a file path or ``sqlite:///abs/path`` (not yet opened).

    PostgreSQL URLs are recognised so that configurations can name them, but the backend
    is not part of this version.
    """
    if db.startswith("sqlite://"):
        path = db[len("sqlite://"):]  # sqlite:///abs/file.db keeps its leading slash
        if not path:
            raise ConfigError(f"database URL {db!r} names no file")
        return SqliteStore(path)
    if db.startswith(("postgresql://", "postgres://")):
        raise ConfigError("the PostgreSQL store is not available in this version")
    if "://" in db:
        raise ConfigError(f"unknown database URL scheme in {db!r}")
    if not db:
        raise ConfigError("no database given")
    return SqliteStore(db)
