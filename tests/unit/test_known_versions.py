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
