"""A missing or empty database is made only by ``mps-bridge db init``: a store opened
without ``create`` (as ``serve`` opens it) refuses, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_bridge.cli import main
from broker_bridge.errors import StoreMissingError
from broker_bridge.storage import store_for
from tests.postgres_support import fresh_schema, require_postgres, server_url


def test_sqlite_missing_and_empty_files_are_refused(tmp_path: Path) -> None:
    missing, empty = tmp_path / "missing.db", tmp_path / "empty.db"
    empty.touch()
    for path in (missing, empty):
        store = store_for(str(path), create=False)
        with pytest.raises(StoreMissingError, match="mps-bridge db init"):
            store.open()
    assert not missing.exists() and empty.stat().st_size == 0
    assert main(["db", "init", "--db", str(missing)]) == 0
    store = store_for(str(missing), create=False)
    store.open()
    store.close()


def test_postgresql_empty_schema_is_refused_and_not_made() -> None:
    require_postgres()
    import psycopg

    with fresh_schema("missing") as url:
        schema = url.rsplit("schema=", 1)[1]
        store = store_for(url, create=False)
        with pytest.raises(StoreMissingError):
            store.open()
        with psycopg.connect(server_url()) as conn:
            made = conn.execute("SELECT 1 FROM information_schema.schemata "
                                "WHERE schema_name = %s", (schema,)).fetchall()
            public = conn.execute("SELECT 1 FROM information_schema.tables WHERE "
                                  "table_schema = 'public' AND table_name = "
                                  "'schema_migrations'").fetchall()
        assert made == [] and public == []
        assert main(["db", "init", "--db", url]) == 0
        store = store_for(url, create=False)
        store.open()
        assert store.schema_version() > 0
        store.close()
