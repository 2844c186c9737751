"""The read model: devices answers kept in memory under the store's versions, and never
stale. Two registries on two connections to one database stand for two bridge
processes: whatever one commits, the very next query of the other shows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from broker_bridge.auditing import FLUSH_AT, AuditWriter
from broker_bridge.errors import StoreError
from broker_bridge.model import App, AuditEntry, TrustLevel
from broker_bridge.registry import Registry
from broker_bridge.registry.listing import devices_number, plain_devices_number
from broker_bridge.registry.reads import ReadModel
from broker_bridge.storage.sql import SqlStore
from mps_wire import codec
from mps_wire.messages import (
    ConsentWithdrawRequest,
    Decision,
    DevicesRequest,
    PairRequest,
    Reply,
    Status,
    UnpairRequest,
)
from tests.helpers import LENA, PAUL, PAUL_MSISDN, add_contract, make_device, paul_and_apps
from tests.postgres_support import BACKENDS, open_store

DEVICES = DevicesRequest(PAUL_MSISDN).to_wire()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with open_store(request.param, tmp_path) as s:
        paul_and_apps(s)
        yield s


@pytest.fixture
def other(store: SqlStore) -> Iterator[SqlStore]:
    """A second connection to the same database: another bridge process."""
    second = store.sibling()
    assert second is not store
    with second:
        yield second  # type: ignore[misc]


def ask(registry: Registry, app: str) -> Reply:
    return registry.handle_app(app, DEVICES).reply


def kept(registry: Registry, app: str) -> bytes | None:
    """What the read model alone answers, None on a miss."""
    found = registry.kept_devices(app, DEVICES)
    return None if found is None else found[0].payload()


def test_versions_rise_with_every_change_to_a_contract_and_to_apps(store: SqlStore) -> None:
    """Database triggers raise the versions in the changing transaction, whoever writes."""
    def versions() -> tuple[str, int, int]:
        found = store.read_versions(PAUL_MSISDN)
        assert found is not None
        return found

    assert store.read_versions("+4915199999999") is None
    seen = [versions()]
    changes: list[Callable[[], object]] = [
        lambda: store.register_device(make_device(5)),
        lambda: store.register_device(make_device(5, ip=("10.9.9.9",))),
        lambda: store.remove_device(make_device(5).eid),
        lambda: store.upsert_app(App("care", "Care", TrustLevel.VERIFIED, ("support",))),
    ]
    for change in changes:
        change()
        seen.append(versions())
    contract_versions = [v[1] for v in seen]
    apps_versions = [v[2] for v in seen]
    assert contract_versions == [*sorted(set(contract_versions[:4])), contract_versions[3]]
    assert apps_versions[:4] == [apps_versions[0]] * 4 and apps_versions[4] > apps_versions[3]
    # A change to another contract leaves Paul's answers alone.
    store.register_device(make_device(9))
    assert versions() == seen[-1]


def test_a_kept_answer_is_the_answer_the_store_gives(store: SqlStore) -> None:
    registry = Registry(store)
    assert kept(registry, "care") is None  # cold: nothing kept yet
    full = ask(registry, "care")
    assert full.is_ok and len(full.body["devices"]) == 4
    payload = kept(registry, "care")
    assert payload is not None and codec.decode(payload) == full.to_wire()
    # Served from memory: the same reply, and an audit entry all the same.
    before = store.audit()
    again = ask(registry, "care")
    assert again == full
    added = store.audit(after=before[-1].id)
    assert [(e.actor, e.action, e.outcome, e.contract_id, e.detail["devices"])
            for e in added] == [("app:care", "devices", "ok", PAUL, 4)]


def _paired(registry: Registry) -> str:
    """Pair the verified app ``health`` with Paul's contract (the user approves)."""
    pending = registry.handle_app("health", PairRequest(
        PAUL_MSISDN, "health-monitoring").to_wire()).reply
    assert pending.status is Status.PENDING
    prompt = registry.store.pairing(pending.body["pairing"]).prompt_id  # type: ignore[union-attr]
    assert prompt is not None
    assert registry.answer(PAUL, prompt, Decision.APPROVE).reply.is_ok
    return str(pending.body["pairing"])


@pytest.mark.parametrize("change", ["unpair", "consent-withdrawal", "trust-downgrade",
                                    "device-removal", "new-device"])
def test_a_change_committed_by_one_registry_shows_in_the_next_answer_of_another(
        store: SqlStore, other: SqlStore, change: str) -> None:
    a, b = Registry(store), Registry(other)
    pairing = _paired(a)
    for app in ("health", "care"):
        assert ask(b, app).is_ok
        assert kept(b, app) is not None
    if change == "unpair":
        assert a.handle_app("health", UnpairRequest(pairing=pairing).to_wire()).reply.is_ok
    elif change == "consent-withdrawal":
        assert a.withdraw(PAUL, ConsentWithdrawRequest(app="health")).reply.is_ok
    elif change == "trust-downgrade":
        a.put_app(App("health", "Health Monitor", TrustLevel.UNVERIFIED,
                      ("health-monitoring",)))
        a.put_app(App("care", "Operator care", TrustLevel.VERIFIED, ("support",)))
    elif change == "device-removal":
        assert store.remove_device(make_device(2).eid)
    else:
        store.register_device(make_device(5))
    # B's memory no longer answers for the contract; the store does, with the change.
    assert kept(b, "health") is None and kept(b, "care") is None
    health, care = ask(b, "health"), ask(b, "care")
    if change in ("unpair", "consent-withdrawal", "trust-downgrade"):
        assert health.status is Status.DENIED
    if change == "trust-downgrade":
        assert care.status is Status.DENIED  # verified: no standing consent
    if change in ("device-removal", "new-device"):
        count = 3 if change == "device-removal" else 5
        assert len(health.body["devices"]) == len(care.body["devices"]) == count
        assert kept(b, "care") is not None  # kept again, at the new versions


def test_what_was_read_in_a_rolled_back_transaction_is_forgotten(store: SqlStore) -> None:
    registry = Registry(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.register_device(make_device(5))
        assert len(ask(registry, "care").body["devices"]) == 5  # uncommitted, kept
        raise RuntimeError("the group fails")
    assert kept(registry, "care") is None
    assert len(ask(registry, "care").body["devices"]) == 4


def test_warming_keeps_every_answer_an_app_may_get_now(store: SqlStore) -> None:
    add_contract(store, "C-EMPTY", subs=[20], msisdns=["+4915100000020"])
    registry = Registry(store)
    # care (partner, standing consent) sees every contract; the others none unpaired.
    assert registry.warm_reads() == 3
    payload = kept(registry, "care")
    assert payload is not None
    assert codec.decode(payload) == ask(Registry(store), "care").to_wire()
    assert kept(registry, "health") is None
    assert registry.warm_reads(limit=1) == 1
    small = Registry(store)
    small.reads.limit = 2
    assert small.warm_reads() == 2 and len(small.reads) == 2


def test_batched_audit_entries_continue_the_numbering_in_order(store: SqlStore) -> None:
    first = store.append_audit("registry", "test", "ok")
    entries = [AuditEntry(0, 1_000 + i, f"app:a{i}", "devices", "ok", contract_id=LENA,
                          app_id=f"a{i}", subject="+49", detail={"devices": i})
               for i in range(3)]
    written = store.append_audits(entries)
    assert [e.id for e in written] == [first.id + 1, first.id + 2, first.id + 3]
    assert store.audit(after=first.id) == written
    assert store.append_audits([]) == []
    assert store.append_audit("registry", "test", "ok").id == first.id + 4


def test_a_closed_store_refuses_batched_audit_entries(tmp_path: Path) -> None:
    with open_store("sqlite", tmp_path) as s:
        pass
    with pytest.raises(StoreError):
        s.append_audits([AuditEntry(0, 1, "registry", "test", "ok")])


class _Client:
    """What the audit writer uses of a paho client: ``ack``."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)


def _message(mid: int) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=mid, topic=b"mps/v1/apps/care/requests")
    msg.qos = 1
    return msg


def test_the_audit_writer_acknowledges_only_what_it_wrote(tmp_path: Path) -> None:
    with open_store("sqlite", tmp_path) as s:
        writer = AuditWriter(s, linger=0.005)
        client = _Client()
        writer.start(client)  # type: ignore[arg-type]
        for mid in (1, 2, 3):
            assert writer.put(AuditEntry(0, mid, "app:care", "devices", "ok", app_id="care"),
                              _message(mid))
        writer.stop()
        assert sorted(client.acked) == [1, 2, 3]
        assert [e.at for e in s.audit()] == [1, 2, 3]
        # Stopped, it takes nothing: the bridge must not answer what it cannot audit.
        assert not writer.put(AuditEntry(0, 9, "app:care", "devices", "ok"), _message(9))

        # A store that cannot write: nothing is acknowledged, the broker sends it again.
        refusing = AuditWriter(s, linger=0.0)
        s.sibling = lambda: s  # type: ignore[method-assign]
        refusing.start(client)  # type: ignore[arg-type]
        s.close()
        assert refusing.put(AuditEntry(0, 4, "app:care", "devices", "ok"), _message(4))
        time.sleep(0.05)
        refusing.stop()
        assert sorted(client.acked) == [1, 2, 3]


def test_the_audit_writer_writes_early_once_enough_entries_wait(tmp_path: Path) -> None:
    with open_store("sqlite", tmp_path) as s:
        writer = AuditWriter(s, linger=60.0)
        client = _Client()
        writer.start(client)  # type: ignore[arg-type]
        try:
            for mid in range(1, FLUSH_AT):
                assert writer.put(AuditEntry(0, mid, "app:care", "devices", "ok"),
                                  _message(mid))
            time.sleep(0.2)
            assert writer.written == 0  # lingering: fewer than FLUSH_AT wait
            assert writer.put(AuditEntry(0, FLUSH_AT, "app:care", "devices", "ok"),
                              _message(FLUSH_AT))
            deadline = time.monotonic() + 20
            while writer.written < FLUSH_AT and time.monotonic() < deadline:
                time.sleep(0.01)
            assert writer.written == FLUSH_AT  # long before the linger's minute
        finally:
            started = time.monotonic()
            writer.stop()
            assert time.monotonic() - started < 20  # stopping does not linger either
        assert [e.at for e in s.audit()] == list(range(1, FLUSH_AT + 1))


def test_the_audit_writer_checks_its_linger() -> None:
    for bad in (-1, True):
        with pytest.raises(ValueError, match="linger"):
            AuditWriter(None, linger=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("msg", [
    {"op": "devices", "msisdn": "+4915112345678"},
    {"op": "devices", "msisdn": "+12"},
    {"op": "devices", "msisdn": "+123456789012345"},
    {"op": "devices", "msisdn": "+49 151 1234"},  # separators: decoded the long way
    {"op": "devices", "msisdn": "+0151"},  # no country code starts with 0 (E.164)
    {"op": "devices", "msisdn": "+1234567890123456"},  # 16 digits: over E.164's 15
    {"op": "devices", "user": "ref-1"},
    {"msisdn": "+4915112345678", "op": "devices"},  # encoded in canonical order all the same
    {"op": "pair", "msisdn": "+4915112345678", "purpose": "support"},
])
def test_a_devices_number_read_from_the_bytes_is_the_decoded_one(msg: dict[str, str]) -> None:
    """The byte-level read of a plain ``devices`` request (CBOR, RFC 8949 section 3.1)
    gives the number decoding gives, or leaves the payload to decoding."""
    payload = codec.encode(msg)
    plain = plain_devices_number(payload)
    assert plain is None or plain == devices_number(codec.decode(payload))
    plain_form = sorted(msg) == ["msisdn", "op"] and msg["op"] == "devices"
    assert (plain is not None) == (plain_form and devices_number(msg) == msg["msisdn"])
    for cut in (payload[:-1], payload + b"\x00", payload[:-1] + b"\n"):
        assert plain_devices_number(cut) is None


def test_a_kept_answer_larger_than_a_request_may_be_is_still_the_reply() -> None:
    # A contract with many devices answers with more than the 16 KiB a received payload
    # may have; the kept answer is the registry's own and reads back whole.
    big = Reply.ok(devices=[{"device_id": f"d-{n:05d}", "model": "x" * 40}
                            for n in range(600)])
    encoded = codec.encode(big.to_wire())
    assert len(encoded) > codec.MAX_PAYLOAD
    assert ReadModel.reply(encoded) == big


def test_warming_in_chunks_keeps_what_warming_at_once_keeps(store: SqlStore) -> None:
    """Contracts read a few at a time give the very answers the read model would keep
    reading everything at once, and the read of some contracts holds theirs only."""
    for n in range(6):
        add_contract(store, f"C-MORE-{n}", subs=[30 + n], msisdns=[f"+49151000000{30 + n}"])
        store.register_device(make_device(30 + n))
    whole, chunked = Registry(store), Registry(store)
    assert whole.warm_reads() == chunked.warm_reads(chunk=2) == 8
    for registry in (whole, chunked):
        payload = kept(registry, "care")
        assert payload is not None
        assert codec.decode(payload) == ask(Registry(store), "care").to_wire()
    some = store.devices_by_contract(["C-MORE-1", "C-MORE-4", "C-NONE"])
    assert sorted(some) == ["C-MORE-1", "C-MORE-4"]
    assert [d.eid for d in some["C-MORE-4"]] == [make_device(34).eid]
    assert store.devices_by_contract([]) == {}


def test_a_large_registry_is_warmed_while_serving(store: SqlStore, other: SqlStore) -> None:
    """Above the threshold the read model fills on a thread over a connection of its own;
    until then and after, every answer is the store's."""
    from broker_bridge.warming import Warming

    registry = Registry(store)
    warming = Warming(registry, store, background_above=0)
    warming.start()
    assert warming.background
    assert ask(registry, "care").status is Status.OK  # answered while filling
    assert warming.wait(30) and warming.kept == 2
    assert kept(registry, "care") is not None
    other.remove_device(make_device(1).eid)  # another process changes the contract
    assert kept(registry, "care") is None
    small = Warming(Registry(store), store)
    small.start()
    assert not small.background and small.done.is_set() and small.kept == 2


def test_a_failed_warming_leaves_the_store_to_answer(store: SqlStore,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from broker_bridge.warming import Warming

    registry = Registry(store)

    def broken(**_kw: object) -> int:
        raise StoreError("the database went away")

    registry.warm_reads = broken  # type: ignore[method-assign]
    warming = Warming(registry, store, background_above=0)
    warming.start()
    assert warming.wait(30) and warming.kept == 0
    assert "filling the read model failed" in caplog.text
    assert ask(registry, "care").status is Status.OK


def test_a_read_model_filled_while_serving_is_left_out_of_collections(
        store: SqlStore) -> None:
    """What the bridge reads at start is frozen (gc.freeze) so that full collections do
    not walk it; answers filled later on the warming thread are frozen once filled."""
    import gc

    from broker_bridge.warming import Warming

    gc.unfreeze()
    try:
        warming = Warming(Registry(store), store, background_above=0)
        warming.freeze_when_filled()
        assert gc.get_freeze_count() == 0  # not filled yet: nothing frozen
        warming.start()
        assert warming.wait(30)
        deadline = time.monotonic() + 10
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_warming_commits_nothing_once_started(store: SqlStore, other: SqlStore) -> None:
    """The versions the network thread knows stay known only while no other connection
    commits: the registry's first commit of its own (its pseudonym key, made on first use)
    comes before a background fill starts, not during it."""
    from broker_bridge.warming import Warming

    if other.data_version() is None:
        pytest.skip("the backend has no data_version")
    registry = Registry(store)
    warming = Warming(registry, store, background_above=0)
    warming.start()
    taken = other.data_version()
    assert warming.wait(30) and warming.kept == 2
    assert other.data_version() == taken
