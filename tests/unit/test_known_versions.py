"""Versions kept for the network thread (broker_bridge.registry.freshness) are never stale:
a change committed on any other connection shows in the very next read, while audit
entries written on the watching connection itself change nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_bridge.model import AuditEntry
from broker_bridge.registry import Registry
from broker_bridge.registry.freshness import KnownVersions
from broker_bridge.storage.sql import SqlStore
from mps_wire.messages import UnpairRequest
from tests.helpers import PAUL_MSISDN, make_device, paul_and_apps
from tests.postgres_support import BACKENDS, open_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with open_store(request.param, tmp_path) as s:
        paul_and_apps(s)
        yield s


@pytest.fixture
def known(store: SqlStore) -> Iterator[KnownVersions]:
    found = KnownVersions.open(store)
    assert found is not None
    try:
        yield found
    finally:
        found.close()


def _entry() -> AuditEntry:
    return AuditEntry(0, 1, "app:health", "devices", "ok", app_id="health",
                      subject=PAUL_MSISDN, detail={"devices": 3, "pairing": None})


@pytest.mark.parametrize("change", ["new-device", "device-removal", "unpair"])
def test_a_change_committed_elsewhere_shows_in_the_next_read(
        store: SqlStore, known: KnownVersions, change: str) -> None:
    registry = Registry(store)
    pairing = registry.handle_app("health", {"op": "pair", "msisdn": PAUL_MSISDN,
                                             "purpose": "health-monitoring"})
    before = known.get(PAUL_MSISDN)
    assert before is not None and before == store.read_versions(PAUL_MSISDN)
    assert known.get(PAUL_MSISDN) == before
    if change == "new-device":
        store.register_device(make_device(5))
    elif change == "device-removal":
        assert store.remove_device(make_device(2).eid)
    else:
        ref = pairing.reply.body.get("pairing")
        request = UnpairRequest(pairing=ref) if ref else UnpairRequest(msisdn=PAUL_MSISDN)
        registry.handle_app("health", request.to_wire())
    after = known.get(PAUL_MSISDN)
    assert after == store.read_versions(PAUL_MSISDN)
    assert after != before


def test_audit_entries_written_on_the_watching_connection_keep_what_is_known(
        store: SqlStore, known: KnownVersions) -> None:
    if known.watch.data_version() is None:
        pytest.skip("the backend has no data_version: every read goes to the store")
    first = known.get(PAUL_MSISDN)
    hits = known.hits
    known.watch.append_audits([_entry()])
    assert known.get(PAUL_MSISDN) == first
    assert known.hits == hits + 1  # no row read again
    store.append_audits([_entry()])  # another connection's commit: read again
    assert known.get(PAUL_MSISDN) == first
    assert known.hits == hits + 1


def test_a_watching_connection_busy_on_another_thread_is_not_waited_for(
        store: SqlStore, known: KnownVersions) -> None:
    before = known.get(PAUL_MSISDN)
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with known.watch.transaction():
            inside.set()
            leave.wait(10)

    store.register_device(make_device(5))  # committed before the query
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        assert known.watch.data_version() is None
        after = known.get(PAUL_MSISDN)  # read from the store, without waiting
        assert after == store.read_versions(PAUL_MSISDN) and after != before
    finally:
        leave.set()
        holder.join()


def _holding(known: KnownVersions, entries: int = 1) -> tuple[threading.Thread, threading.Event]:
    """A thread inside an audit transaction on the watching connection (the database's
    write lock held, entries written but not committed), until the event is set."""
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with known.watch.transaction():
            known.watch.append_audits([_entry() for _ in range(entries)])
            inside.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    return holder, leave


def test_queries_while_the_audit_writer_writes_read_no_row(
        store: SqlStore, known: KnownVersions) -> None:
    if known.watch.data_version() is None:
        pytest.skip("the backend has no data_version: every read goes to the store")
    first = known.get(PAUL_MSISDN)
    hits, unwatched = known.hits, known.unwatched
    holder, leave = _holding(known, entries=50)
    try:
        assert known.watch.data_version() is None  # busy: not asked, not waited for
        assert [known.get(PAUL_MSISDN) for _ in range(3)] == [first] * 3
        assert known.hits == hits + 3 and known.unwatched == unwatched
    finally:
        leave.set()
        holder.join()
    # The audit commit moved the reading connection's number, not the watching one's.
    assert known.get(PAUL_MSISDN) == first
    assert known.hits == hits + 4 and known.unwatched == unwatched


def test_a_change_committed_after_audit_entries_shows_even_while_the_writer_writes(
        store: SqlStore, known: KnownVersions) -> None:
    before = known.get(PAUL_MSISDN)
    known.watch.append_audits([_entry()])  # the writer's commit ...
    store.register_device(make_device(5))  # ... then another connection's
    holder, leave = _holding(known)
    try:
        after = known.get(PAUL_MSISDN)  # the watching connection is busy: read again
        assert after == store.read_versions(PAUL_MSISDN) and after != before
    finally:
        leave.set()
        holder.join()
    assert known.get(PAUL_MSISDN) == after
    store.register_device(make_device(6))
    assert known.get(PAUL_MSISDN) == store.read_versions(PAUL_MSISDN) != after


def test_a_number_no_contract_has_is_known_as_none_until_a_contract_takes_it(
        store: SqlStore, known: KnownVersions) -> None:
    assert known.get("+4915100000001") is None
    assert known.get("+4915100000001") is None
    assert store.read_versions("+4915100000001") is None


def test_postgres_reads_versions_by_its_prepared_statement_as_by_the_query(
        tmp_path: Path) -> None:
    from broker_bridge.storage.postgres import PostgresStore
    from broker_bridge.storage.sql import SqlStore as Base

    with open_store("postgresql", tmp_path) as store:
        assert isinstance(store, PostgresStore)
        paul_and_apps(store)
        expected = Base.read_versions(store, PAUL_MSISDN)
        assert expected is not None
        assert store.read_versions(PAUL_MSISDN) == expected
        assert store.read_versions("+4915100000001") is None
        store.register_device(make_device(5))
        changed = store.read_versions(PAUL_MSISDN)
        assert changed == Base.read_versions(store, PAUL_MSISDN) and changed != expected
        # The server drops the connection: the statement goes with it, and is made again.
        with PostgresStore(store.url) as admin:
            pid = store._execute("SELECT pg_backend_pid()")[0][0]
            admin._execute("SELECT pg_terminate_backend(?)", (pid,))
        assert store.read_versions(PAUL_MSISDN) == changed
        assert store.read_versions(PAUL_MSISDN) == changed
        with store.transaction():  # inside a transaction: on the transaction's own path
            assert store.read_versions(PAUL_MSISDN) == changed


def test_the_commit_marker_moves_with_every_commit_and_only_then(tmp_path: Path) -> None:
    from broker_bridge.storage.sqlite import SqliteStore

    with SqliteStore(tmp_path / "registry.db") as store, \
            SqliteStore(tmp_path / "registry.db") as other:
        paul_and_apps(store)
        marker = store.commit_marker()
        assert marker is not None
        first = marker()
        assert first is not None
        store.read_versions(PAUL_MSISDN)
        other.number_versions()
        assert marker() == first  # reads change nothing
        other.register_device(make_device(5))  # another connection's commit
        second = marker()
        assert second is not None and second != first
        store.append_audits([_entry()])  # the connection's own commit too
        assert marker() not in (None, second)
    with SqliteStore(":memory:") as memory:
        assert memory.commit_marker() is None


def test_a_commit_seen_only_by_the_marker_is_not_missed(
        store: SqlStore, known: KnownVersions) -> None:
    first = known.get(PAUL_MSISDN)
    hits = known.hits
    assert known.get(PAUL_MSISDN) == first
    if known.watch.data_version() is not None:
        assert known.hits == hits + 1  # known, by the marker alone
    for n in (5, 6):
        store.register_device(make_device(n))
        now = known.get(PAUL_MSISDN)
        assert now == store.read_versions(PAUL_MSISDN) and now != first
        first = now
