"""The store suite, run against every backend (SQLite, and PostgreSQL when a server is
reachable): registrations, look-ups, migrations; then what only SQLite files need
(refusing damaged or foreign files, WAL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.errors import (
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
    UnknownContractError,
    UnknownSubscriptionError,
)
from broker_bridge.model import App, Change, Contract, Subscription, TrustLevel
from broker_bridge.storage import SqliteStore, store_for
from broker_bridge.storage.migrations import MIGRATIONS
from broker_bridge.storage.sql import LATEST_VERSION, SqlStore
from mps_wire.messages import RegistrationResult
from tests.helpers import add_contract, iccid_for, imsi_for, make_device
from tests.postgres_support import fresh_schema


@dataclass(frozen=True)
class Backend:
    """Where one test's database is: a fresh SQLite file or a fresh PostgreSQL schema."""

    name: str
    target: str

    def store(self, **options: Any) -> SqlStore:
        """A new (unopened) store on this test's database."""
        if self.name == "sqlite":
            return SqliteStore(self.target, **options)
        from broker_bridge.storage.postgres import PostgresStore

        # Tests need no durability: commits need not wait for the disk.
        return PostgresStore(self.target, **{"synchronous_commit": "off", **options})


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "registry.db"))
        return
    with fresh_schema("store") as url:  # skips the test when no server is reachable
        yield Backend("postgresql", url)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
def store(backend: Backend) -> Iterator[SqlStore]:
    with backend.store(clock=lambda: 1_000) as s:
        add_contract(s, "C-1", subs=[1, 2, 3], msisdns=["+4915100000001", "+4915100000002"])
        add_contract(s, "C-2", subs=[4], msisdns=["+4915100000004"])
        yield s


def test_register_then_unchanged_then_updated(store: SqlStore) -> None:
    info = make_device(1)
    first = store.register_device(info, now=5_000)
    assert first.result is RegistrationResult.REGISTERED
    assert first.contract_id == "C-1"
    assert first.device.msisdn == "+4915100000001"  # the number of subscription 1
    assert (first.device.registered_at, first.device.updated_at) == (5_000, 5_000)

    again = store.register_device(replace(info, seq=2, ts=info.ts + 1), now=6_000)
    assert again.result is RegistrationResult.UNCHANGED
    assert again.device.updated_at == 5_000
    assert again.device.last_seq == 2  # the freshest sequence number is kept

    moved = store.register_device(replace(info, ip=("10.9.9.9", "fd00::1"), seq=3), now=7_000)
    assert moved.result is RegistrationResult.UPDATED
    stored = store.device(info.eid)
    assert stored is not None
    assert stored.ip == ("10.9.9.9", "fd00::1")
    assert (stored.registered_at, stored.updated_at, stored.last_seq) == (5_000, 7_000, 3)
    assert stored.as_info().identity_key() == replace(info, ip=("10.9.9.9", "fd00::1")
                                                      ).identity_key()


def test_a_redelivered_older_message_does_not_rewind_the_sequence(store: SqlStore) -> None:
    info = make_device(1, seq=10)
    store.register_device(info)
    assert store.register_device(replace(info, seq=9)).result is RegistrationResult.UNCHANGED
    stored = store.device(info.eid)
    assert stored is not None and stored.last_seq == 10


def test_unknown_iccid_stores_nothing(store: SqlStore) -> None:
    info = make_device(7)  # subscription 7 was never filed
    with pytest.raises(UnknownSubscriptionError) as caught:
        store.register_device(info)
    assert caught.value.iccid == iccid_for(7)
    assert isinstance(caught.value, LookupError)
    assert store.device(info.eid) is None
    assert store.device_count() == 0


def test_new_profile_moves_a_device_to_the_other_contract(store: SqlStore) -> None:
    info = make_device(1)
    store.register_device(info)
    outcome = store.register_device(replace(info, iccid=iccid_for(4), imsi=imsi_for(4), seq=2))
    assert outcome.result is RegistrationResult.UPDATED
    assert outcome.contract_id == "C-2"
    assert store.devices_of_contract("C-1") == []
    assert [d.eid for d in store.devices_of_contract("C-2")] == [info.eid]


def test_devices_of_contract_lists_only_that_contract(store: SqlStore) -> None:
    for n, now in ((1, 10), (2, 20), (3, 30), (4, 40)):
        store.register_device(make_device(n), now=now)
    devices = store.devices_of_contract("C-1")
    assert [d.eid for d in devices] == [make_device(n).eid for n in (1, 2, 3)]
    assert [d.msisdn for d in devices] == ["+4915100000001", None, None]
    assert [d.eid for d in store.devices_of_contract("C-2")] == [make_device(4).eid]
    assert store.devices_of_contract("C-404") == []


def test_look_ups(store: SqlStore) -> None:
    assert store.contract_by_msisdn("+4915100000002") == Contract("C-1", "Test Holder")
    assert store.contract_by_msisdn("+4915199999999") is None
    assert store.numbers_of_contract("C-1") == ["+4915100000001", "+4915100000002"]
    assert store.subscription_by_iccid(iccid_for(4)) == Subscription(
        iccid_for(4), imsi_for(4), "+4915100000004", "C-2")
    assert store.subscription_by_iccid(iccid_for(99)) is None
    assert [s.iccid for s in store.subscriptions_of_contract("C-1")] == sorted(
        iccid_for(n) for n in (1, 2, 3))


def test_upserts_report_what_changed(store: SqlStore) -> None:
    app = App("demo", "Demo", TrustLevel.PARTNER, ("device-discovery",))
    assert store.upsert_app(app) is Change.ADDED
    assert store.upsert_app(app) is Change.UNCHANGED
    assert store.upsert_app(replace(app, trust=TrustLevel.VERIFIED)) is Change.UPDATED
    assert store.app("demo") == replace(app, trust=TrustLevel.VERIFIED)
    assert store.upsert_app(replace(app, standing_consent=True)) is Change.UPDATED
    assert store.app("demo") == replace(app, standing_consent=True)
    assert store.app("other") is None
    assert store.upsert_contract(Contract("C-1", "Test Holder")) is Change.UNCHANGED
    assert store.upsert_contract(Contract("C-1", "New Holder")) is Change.UPDATED
    assert store.upsert_number("+4915100000002", "C-2") is Change.UPDATED
    assert store.contract_by_msisdn("+4915100000002") == Contract("C-2", "Test Holder")
    with pytest.raises(UnknownContractError):
        store.upsert_number("+4915100000009", "C-404")


def test_moving_a_subscription_takes_its_device_along(store: SqlStore) -> None:
    info = make_device(2)
    store.register_device(info)
    change = store.upsert_subscription(Subscription(iccid_for(2), imsi_for(2), None, "C-2"))
    assert change is Change.UPDATED
    assert [d.eid for d in store.devices_of_contract("C-2")] == [info.eid]
    # ...so the same registration is now an unchanged one under C-2
    assert store.register_device(info).result is RegistrationResult.UNCHANGED


def test_a_failed_transaction_leaves_nothing(store: SqlStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.upsert_contract(Contract("C-9", "Nobody"))
        store.register_device(make_device(1))
        raise RuntimeError("boom")
    assert store.contract("C-9") is None
    assert store.device_count() == 0


def test_concurrent_registrations_from_threads(store: SqlStore) -> None:
    add_contract(store, "C-3", subs=range(10, 50))
    errors: list[BaseException] = []

    def register(start: int) -> None:
        try:
            for n in range(start, 50, 4):
                store.register_device(make_device(n))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(10 + i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.devices_of_contract("C-3")) == 40


def test_migrations_are_applied_once_and_data_survives_reopening(backend: Backend) -> None:
    with backend.store() as s:
        assert s.schema_version() == LATEST_VERSION == 10
        add_contract(s, "C-1", subs=[1])
        s.register_device(make_device(1))
    for _ in range(2):
        with backend.store() as s:
            assert s.schema_version() == LATEST_VERSION
            assert s.device_count() == 1
    with backend.store() as s:
        rows = s._read("SELECT version FROM schema_migrations ORDER BY version")
    assert [tuple(r) for r in rows] == [(m.version,) for m in MIGRATIONS]


def test_sqlite_files_are_in_wal_mode(db: Path) -> None:
    with SqliteStore(db):
        pass
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_foreign_keys_are_enforced(store: SqlStore) -> None:
    with pytest.raises(StoreError, match=r"(?i)foreign key"):
        store._execute("INSERT INTO numbers (msisdn, contract_id, updated_at) "
                       "VALUES ('+491', 'C-404', 0)")


def test_a_newer_schema_is_refused(backend: Backend) -> None:
    with backend.store() as s, s.transaction():
        s._execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)",
                   (LATEST_VERSION + 1,))
    with pytest.raises(SchemaVersionError, match="upgrade") as caught:
        backend.store().open()
    assert (caught.value.found, caught.value.supported) == (LATEST_VERSION + 1,
                                                            LATEST_VERSION)


def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not SQLite at all" * 200)
    with pytest.raises(StoreCorruptError) as caught:
        SqliteStore(path).open()
    assert str(path) in str(caught.value)
    assert caught.value.path == str(path)


def test_a_damaged_database_fails_its_integrity_check(db: Path) -> None:
    with SqliteStore(db) as s:
        add_contract(s, "C-1", subs=range(1, 400))
        for n in range(1, 400):
            s.register_device(make_device(n))
    with closing(sqlite3.connect(db)) as conn:  # fold the WAL into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    data = bytearray(db.read_bytes())
    # Scribble over the middle half of the file, away from the header and schema on page 1
    # (the devices, subscriptions and audit tables fill it).
    for page in range(pages // 4, pages * 3 // 4):
        data[page * page_size + 8: page * page_size + 400] = b"\xa5" * 392
    db.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match=r"integrity check|damaged") as caught:
        SqliteStore(db).open()
    assert str(db) in str(caught.value)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()
    with pytest.raises(StoreCorruptError, match="another application"):
        SqliteStore(path).open()


def test_a_closed_store_refuses_work(backend: Backend) -> None:
    s = backend.store()
    if backend.name == "sqlite":
        assert not Path(backend.target).exists()  # constructing does no I/O
    with pytest.raises(StoreError, match="not open"):
        s.contract("C-1")
    s.open()
    s.close()
    s.close()
    with pytest.raises(StoreError, match="not open"):
        s.device_count()


def test_store_for_picks_the_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(store_for(str(tmp_path / "a.db")), SqliteStore)
    chosen = store_for(f"sqlite://{tmp_path}/b.db")
    assert isinstance(chosen, SqliteStore) and chosen.path == f"{tmp_path}/b.db"
    with pytest.raises(ValueError, match="scheme"):
        store_for("redis://x")
    pytest.importorskip("psycopg")
    from broker_bridge.storage.postgres import PostgresStore

    remote = store_for("postgresql://mps@db.example:5432/registry?schema=mps")
    assert isinstance(remote, PostgresStore) and remote.schema == "mps"
    assert isinstance(store_for("postgres://db.example/registry"), PostgresStore)


def test_migration_2_maps_the_old_trust_levels(backend: Backend,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from broker_bridge.storage import sql

    with monkeypatch.context() as patch:  # a registry of schema version 1
        patch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:1])
        patch.setattr(sql, "LATEST_VERSION", 1)
        with backend.store() as old:
            assert old.schema_version() == 1
            for app_id, trust in (("own", "trusted"), ("contracted", "partner"),
                                  ("anyone", "public")):
                old._execute("INSERT INTO apps (id, name, trust, purposes, created_at, "
                             "updated_at) VALUES (?, ?, ?, '[\"x\"]', 0, 0)",
                             (app_id, app_id.title(), trust))
    with backend.store() as s:
        assert s.schema_version() == LATEST_VERSION
        assert {a.id: (a.trust, a.standing_consent) for a in s.apps()} == {
            "own": (TrustLevel.PARTNER, True),
            "contracted": (TrustLevel.PARTNER, True),
            "anyone": (TrustLevel.UNVERIFIED, False),
        }
        assert s.app("own") == App("own", "Own", TrustLevel.PARTNER, ("x",), True)


def test_the_audit_log_is_append_only(store: SqlStore) -> None:
    entry = store.append_audit("app:a", "pair", "denied", contract_id="C-1")
    assert store.audit(contract_id="C-1") == [entry]
    for statement in ("UPDATE audit_log SET outcome = 'ok'", "DELETE FROM audit_log"):
        with pytest.raises(StoreError, match="append-only"):
            store._execute(statement)
    assert store.audit() == [entry]


def test_event_sequence_numbers_per_app(store: SqlStore) -> None:
    from mps_wire.messages import EventKind

    store.upsert_app(App("a", "A", TrustLevel.VERIFIED))
    store.upsert_app(App("b", "B", TrustLevel.VERIFIED))
    with store.transaction():
        first = store.append_event("a", EventKind.DEVICE_ADDED, {"event": "device-added"})
        other = store.append_event("b", EventKind.DEVICE_ADDED, {"event": "device-added"})
        second = store.append_event("a", EventKind.DEVICE_REMOVED, {"event": "x"})
    assert (first.seq, second.seq, other.seq) == (1, 2, 1)
    assert first.payload == {"event": "device-added", "seq": 1}
    with pytest.raises(RuntimeError), store.transaction():
        store.append_event("a", EventKind.DEVICE_ADDED, {})
        raise RuntimeError("rolled back")
    # The rolled-back number is handed out again: streams have no gaps.
    assert store.append_event("a", EventKind.DEVICE_ADDED, {}).seq == 3
    assert [e.seq for e in store.events_since("a", 1)] == [2, 3]
    assert store.last_event_seq("a") == 3 and store.last_event_seq("nobody") == 0
    assert len(store.unpublished_events(10**15)) == 4
    store.mark_published([("a", 1), ("a", 2)], now=5)
    assert {(e.app_id, e.seq) for e in store.unpublished_events(10**15)} == {("b", 1), ("a", 3)}


def test_secrets_are_made_once_and_kept(backend: Backend) -> None:
    with backend.store() as s:
        made = s.secret("pseudonyms")
        assert len(made) == 32 and s.secret("pseudonyms") == made
        assert s.secret("other") != made
    with backend.store() as s:
        assert s.secret("pseudonyms") == made


def test_installations_bind_a_profile_to_the_newest_eucc(store: SqlStore) -> None:
    from broker_bridge.model import Installation

    first = Installation(iccid_for(7), make_device(1).eid, "t1", "smdp.example", 100)
    assert store.record_installation(first) is Change.ADDED
    assert store.record_installation(first) is Change.UNCHANGED  # the same report again
    older = replace(first, eid=make_device(2).eid, transaction="t0", ts=50)
    assert store.record_installation(older) is Change.UNCHANGED
    newer = replace(first, eid=make_device(2).eid, transaction="t2", ts=200)
    assert store.record_installation(newer) is Change.UPDATED
    assert store.installation(iccid_for(7)) == newer
    assert store.installation(iccid_for(8)) is None
    # An operator's binding replaces whatever is there.
    bound = replace(first, transaction="bind-1", smdp="operator", ts=1)
    assert store.record_installation(bound, rebind=True) is Change.UPDATED
    assert store.installation(iccid_for(7)) == bound


def test_registration_facts_agree_with_the_lookups_they_replace(store: SqlStore) -> None:
    """One statement reads what a registration is checked against; each part is what the
    single look-up of it returns, on every backend."""
    from broker_bridge.model import DeviceKey, Installation

    device = make_device(1, sub=1)
    empty = store.registration_facts(device.eid, iccid_for(9))
    assert (empty.key, empty.last, empty.subscription, empty.installation,
            empty.other_holder) == (None, None, None, None, None)
    store.record_installation(Installation(iccid_for(1), device.eid, "t1", "smdp.example", 5))
    store.put_device_key(DeviceKey(device.eid, b"\x30\x59" + bytes(89), b"\x01\x02", 7,
                                   "operator:test"))
    store.register_device(device)
    store.note_registration(device.eid, 3, "ab" * 32)
    other = make_device(2, sub=1)  # a second device asking for the same profile
    mine = store.registration_facts(device.eid, iccid_for(1))
    theirs = store.registration_facts(other.eid, iccid_for(1))
    assert mine.key == store.device_key(device.eid) and mine.key is not None
    assert mine.last == store.last_registration(device.eid) == (3, "ab" * 32)
    assert mine.subscription == store.subscription_by_iccid(iccid_for(1))
    assert mine.installation == store.installation(iccid_for(1))
    assert mine.other_holder is None  # the device itself does not count
    assert theirs.other_holder == device.eid
    assert theirs.key is None and theirs.last is None


def test_a_batch_commits_its_operations_together_and_a_failed_one_alone_is_undone(
        store: SqlStore) -> None:
    with store.batch():
        store.append_audit("app:a", "devices", "ok", now=1)
        with pytest.raises(RuntimeError), store.transaction():
            store.append_audit("app:b", "devices", "ok", now=2)
            store.upsert_contract(Contract("C-9", "Gone Again"))
            raise RuntimeError("refused half-way")
        store.append_audit("app:c", "devices", "ok", now=3)
    entries = store.audit()
    assert [(e.id, e.actor) for e in entries[-2:]] == [(1, "app:a"), (2, "app:c")]
    assert store.contract("C-9") is None


def test_a_batch_that_fails_stores_nothing_of_it(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.batch():
        store.append_audit("app:a", "devices", "ok", now=1)
        store.upsert_contract(Contract("C-9", "Never"))
        raise RuntimeError("the group failed")
    assert store.audit() == [] and store.contract("C-9") is None
    with pytest.raises(StoreError, match="inside a transaction"), store.transaction(), \
            store.batch():
        pass


def test_register_device_takes_the_subscription_read_by_its_caller(store: SqlStore) -> None:
    info = make_device(1)
    other = store.subscription_by_iccid(iccid_for(4))
    assert other is not None
    with pytest.raises(ValueError, match="is not the device's"):
        store.register_device(info, subscription=other)
    assert store.device(info.eid) is None  # nothing stored
    mine = store.subscription_by_iccid(info.iccid)
    outcome = store.register_device(info, subscription=mine)
    assert (outcome.result, outcome.contract_id) == (RegistrationResult.REGISTERED, "C-1")
    assert outcome.device.msisdn == "+4915100000001"
