"""What only the PostgreSQL store does: URLs and schemas, the shared writer lock between
processes, reconnecting after the server dropped a connection, bulk COPY. The behaviour
both backends share is tests/unit/test_store.py's, run against each."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from broker_bridge.errors import StoreCorruptError, StoreError
from broker_bridge.model import App, Contract, TrustLevel
from broker_bridge.storage import store_for
from broker_bridge.storage.migrations import MIGRATIONS
from mps_common.errors import ConfigError
from mps_wire.messages import EventKind, RegistrationResult
from tests.helpers import add_contract, make_device
from tests.postgres_support import fresh_schema, schema_of, server_url

psycopg = pytest.importorskip("psycopg")

from broker_bridge.storage.postgres import (  # noqa: E402 (needs psycopg, checked above)
    PostgresStore,
    _placeholders,
    redact,
    split_url,
)


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("pg") as u:
        yield u


def test_placeholders_are_rewritten_outside_quotes() -> None:
    assert _placeholders("SELECT a FROM t WHERE b = ? AND c = '?' AND d LIKE '5%'") == \
        "SELECT a FROM t WHERE b = %s AND c = '?' AND d LIKE '5%%'"


def test_urls_and_schemas() -> None:
    assert split_url("postgresql://u:pw@db:5433/reg?schema=mps&sslmode=require") == (
        "postgresql://u:pw@db:5433/reg?sslmode=require", "mps")
    assert split_url("postgres://db/reg") == ("postgres://db/reg", None)
    with pytest.raises(ConfigError, match="lower-case SQL name"):
        split_url("postgresql://db/reg?schema=Robert');DROP")
    assert redact("postgresql://u:secret@db/reg") == "postgresql://u:***@db/reg"
    chosen = store_for("postgresql://u:secret@db/reg?schema=mps")
    assert isinstance(chosen, PostgresStore) and chosen.schema == "mps"
    assert "secret" not in repr(chosen)
    with pytest.raises(ValueError, match="synchronous_commit"):
        PostgresStore("postgresql://db/reg", synchronous_commit="maybe")  # type: ignore[arg-type]


def test_an_unreachable_server_is_a_store_error() -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    with pytest.raises(StoreError, match="connecting failed"):
        store.open()


def test_schemas_keep_registries_apart(url: str) -> None:
    with fresh_schema("other") as other_url, PostgresStore(url) as a, \
            PostgresStore(other_url) as b:
        a.upsert_contract(Contract("C-1", "A"))
        assert b.contract("C-1") is None
        assert a.schema_version() == b.schema_version()


def test_tables_of_another_application_are_refused(url: str) -> None:
    schema = schema_of(url)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".devices (serial TEXT)')
    with pytest.raises(StoreCorruptError, match="another application"):
        PostgresStore(url).open()


def test_processes_opening_at_once_migrate_once(url: str) -> None:
    stores = [PostgresStore(url) for _ in range(4)]
    errors: list[BaseException] = []

    def open_one(store: PostgresStore) -> None:
        try:
            store.open()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        rows = stores[0]._read("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
    finally:
        for s in stores:
            s.close()


def test_writers_in_two_processes_keep_streams_gap_free(url: str) -> None:
    """Two connections stand for two bridge processes: event numbers and audit ids stay
    unique and gap-free, and the same new device registered by both at once is stored
    once, the second seeing it as unchanged."""
    with PostgresStore(url) as one, PostgresStore(url) as two:
        add_contract(one, "C-1", subs=range(1, 41))
        one.upsert_app(App("a", "A", TrustLevel.VERIFIED))
        results: list[RegistrationResult] = []
        errors: list[BaseException] = []

        def work(store: PostgresStore) -> None:
            try:
                for n in range(1, 41):
                    with store.transaction():
                        results.append(store.register_device(make_device(n)).result)
                        store.append_event("a", EventKind.DEVICE_ADDED, {"n": n})
                        store.append_audit("test", "register", "ok", subject=str(n))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert results.count(RegistrationResult.REGISTERED) == 40
        assert results.count(RegistrationResult.UNCHANGED) == 40
        assert [e.seq for e in one.events_since("a", 0, limit=1000)] == list(range(1, 81))
        assert [e.id for e in two.audit()] == list(range(1, 81))
        assert two.device_count() == 40


def test_a_dropped_connection_is_replaced_between_transactions(url: str) -> None:
    with PostgresStore(url) as store:
        store.upsert_contract(Contract("C-1", "A"))
        pid = store._read("SELECT pg_backend_pid()")[0][0]
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert store.contract("C-1") == Contract("C-1", "A")  # a read: run again
        assert store.upsert_contract(Contract("C-2", "B")).value == "added"
        assert store._read("SELECT pg_backend_pid()")[0][0] != pid


def test_a_connection_lost_inside_a_transaction_fails_it(url: str) -> None:
    with PostgresStore(url) as store:
        pid = store._read("SELECT pg_backend_pid()")[0][0]
        with pytest.raises(StoreError), store.transaction():
            store.upsert_contract(Contract("C-1", "A"))
            with psycopg.connect(server_url(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            store.upsert_contract(Contract("C-2", "B"))
        assert store.contract("C-1") is None  # rolled back with the connection
        store.upsert_contract(Contract("C-3", "C"))
        assert store.contract("C-3") is not None


def test_copy_loads_rows_in_bulk(url: str) -> None:
    with PostgresStore(url) as store:
        rows = [(f"C-{n}", f"Holder {n}", 1, 1) for n in range(1000)]
        assert store.copy_rows("contracts", ("id", "holder", "created_at", "updated_at"),
                               rows) == 1000
        assert store.contract("C-999") == Contract("C-999", "Holder 999")
        with pytest.raises(ValueError, match="not a table"):
            store.copy_rows("contracts; DROP TABLE x", ("id",), [])
        with pytest.raises(StoreError, match="copying into contracts"):
            store.copy_rows("contracts", ("id", "holder", "created_at", "updated_at"),
                            [("C-1", "again", 1, 1)])



def test_durability_follows_the_option_or_the_server(url: str) -> None:
    def setting(store: PostgresStore) -> str:
        with store:
            return str(store._read("SHOW synchronous_commit")[0][0])

    assert setting(PostgresStore(url)) == "on"  # the server's default
    assert setting(PostgresStore(url + "&options=-csynchronous_commit%3Doff")) == "off"
    assert setting(PostgresStore(url, synchronous_commit="off")) == "off"
