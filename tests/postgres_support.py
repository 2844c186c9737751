"""PostgreSQL for tests: the server named by ``MPS_TEST_POSTGRES`` (default: the local one
on 127.0.0.1:5432, database ``test``), a fresh schema per test, dropped afterwards."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker_bridge.storage import SqliteStore
from broker_bridge.storage.sql import SqlStore

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("MPS_TEST_POSTGRES", DEFAULT_URL)


@functools.cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    try:
        with psycopg.connect(server_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL at {server_url()} (set MPS_TEST_POSTGRES): {first}"
    return None


def require_postgres() -> None:
    """Skip the calling test when no PostgreSQL server is reachable."""
    why = unavailable()
    if why is not None:
        pytest.skip(why)


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(server_url(), autocommit=True, connect_timeout=3) as conn:
        # A store a failed test left open in a transaction must not hang the suite.
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def fresh_schema(label: str = "t") -> Iterator[str]:
    """A store URL naming a schema no other test uses; the schema is dropped on exit."""
    require_postgres()
    schema = f"mps_{label}_{uuid.uuid4().hex[:10]}"
    base = server_url()
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    try:
        yield url
    finally:
        drop_schema(schema)


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


BACKENDS = ("sqlite", "postgresql")
"""The store backends a store-backed test suite runs against (``@pytest.fixture(params=...)``)."""


@contextmanager
def open_store(kind: str, tmp_path: Path) -> Iterator[SqlStore]:
    """An open, empty store of ``kind``: a fresh SQLite file or a fresh PostgreSQL schema
    (skipping the test when no server is reachable). Tests need no durability: PostgreSQL
    commits without waiting for the disk."""
    if kind == "sqlite":
        with SqliteStore(tmp_path / "registry.db") as store:
            yield store
        return
    from broker_bridge.storage.postgres import PostgresStore

    with fresh_schema("t") as url, PostgresStore(url, synchronous_commit="off") as pg:
        yield pg
