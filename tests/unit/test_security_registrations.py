"""Signed registrations, replays and the audit of every refusal, on the registry's rules
without a broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker_bridge.errors import ReplayError
from broker_bridge.model import Installation
from broker_bridge.registry import Effects, Registry, SignaturePolicy
from broker_bridge.storage import SqliteStore
from mps_wire import codec
from mps_wire.cose import sign1
from mps_wire.registration import encode_registration
from tests.helpers import add_contract, iccid_for, make_device, table_state

KEY = ec.derive_private_key(0xC0FFEE_1234, ec.SECP256R1())
THIEF = ec.derive_private_key(0xBAD_5EED, ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        add_contract(s, "C-1", subs=[1, 2, 3], msisdns=["+4915100000001"])
        add_contract(s, "C-2", subs=[4])
        yield s


@pytest.fixture
def registry(store: SqliteStore) -> Registry:
    return Registry(store)


def register(registry: Registry, payload: bytes, device_id: str | None = None
             ) -> dict[str, Any]:
    eid = device_id or make_device(1).eid
    return registry.handle_registration(eid, payload).reply.to_wire()


def last_audit(registry: Registry) -> dict[str, Any]:
    entry = registry.store.audit()[-1]
    return {"actor": entry.actor, "action": entry.action, "outcome": entry.outcome,
            "subject": entry.subject, **entry.detail}


def test_an_enrolled_device_must_sign_and_a_good_signature_registers(
        registry: Registry) -> None:
    info = make_device(1)
    registry.enroll_device_key(info.eid, public_pem(KEY))
    reply = register(registry, encode_registration(info))
    assert (reply["status"], reply["code"]) == ("denied", "signature-required")
    assert last_audit(registry) == {
        "actor": f"device:{info.eid}", "action": "register", "outcome": "denied",
        "subject": info.eid, "code": "signature-required", "seq": 1,
        "iccid": info.iccid, "signed": False}
    assert registry.store.device(info.eid) is None
    reply = register(registry, encode_registration(info, KEY))
    assert (reply["status"], reply["result"]) == ("ok", "registered")
    assert registry.store.device(info.eid) is not None


def test_forged_and_foreign_signatures_are_refused(registry: Registry,
                                                   store: SqliteStore) -> None:
    info = make_device(1)
    registry.enroll_device_key(info.eid, public_pem(KEY))
    before = table_state(store)
    forged = encode_registration(info, THIEF)
    reply = register(registry, forged)
    assert (reply["status"], reply["code"]) == ("denied", "bad-signature")
    assert "key id" in reply["message"]
    # The thief's key with the enrolled key's id: the signature itself fails.
    from mps_wire.cose import key_id

    disguised = encode_registration(info, THIEF, kid=key_id(KEY.public_key()))
    assert register(registry, disguised)["code"] == "bad-signature"
    # A genuine signature over a changed payload.
    items = list(cbor2.loads(encode_registration(info, KEY)).value)
    items[2] = codec.encode(replace(info, ip=("203.0.113.66",)).to_wire())
    tampered = cbor2.dumps(cbor2.CBORTag(18, items))
    assert register(registry, tampered)["code"] == "bad-signature"
    # Signed for something else than a registration (no external AAD).
    other_use = sign1(codec.encode(info.to_wire()), KEY)
    assert register(registry, other_use)["code"] == "bad-signature"
    assert table_state(store) == before
    codes = [e.detail.get("code") for e in store.audit() if e.action == "register"]
    assert codes == ["bad-signature"] * 4


def test_a_signed_registration_without_an_enrolled_key_is_refused(registry: Registry
                                                                  ) -> None:
    reply = register(registry, encode_registration(make_device(1), KEY))
    assert reply["code"] == "signature-required"
    assert "enroll" in reply["message"]


def test_required_policy_refuses_devices_without_keys(store: SqliteStore) -> None:
    strict = Registry(store, signatures=SignaturePolicy.REQUIRED)
    info = make_device(2)
    assert register(strict, encode_registration(info), info.eid)["code"] == \
        "signature-required"
    strict.enroll_device_key(info.eid, public_pem(KEY))
    assert register(strict, encode_registration(info, KEY), info.eid)["status"] == "ok"
    # Withdrawn: nothing gets in under the strict policy, unsigned gets in again under the
    # compatible one.
    assert strict.withdraw_device_key(info.eid)
    later = replace(info, seq=2)
    assert register(strict, encode_registration(later, KEY), info.eid)["code"] == \
        "signature-required"
    assert register(Registry(store), encode_registration(later), info.eid)["status"] == "ok"


def test_replays_are_refused_and_repeats_are_answered_as_before(registry: Registry,
                                                                store: SqliteStore) -> None:
    info = make_device(1, seq=5)
    registry.enroll_device_key(info.eid, public_pem(KEY))
    first = register(registry, encode_registration(info, KEY))
    assert first["result"] == "registered"
    # The same message again (QoS 1 redelivery, a lost reply): the same answer, no change.
    before = table_state(store)
    again = register(registry, encode_registration(info, KEY))
    assert again["result"] == "unchanged"
    assert table_state(store) == before
    # An older one, and another message under the same number: replays.
    for stale in (replace(info, seq=4), replace(info, seq=5, ip=("198.51.100.1",))):
        reply = register(registry, encode_registration(stale, KEY))
        assert (reply["status"], reply["code"], reply["last_seq"]) == ("denied", "replay", 5)
        assert last_audit(registry)["code"] == "replay"
    assert table_state(store) == before
    newer = register(registry, encode_registration(replace(info, seq=6, ip=("198.51.100.1",)),
                                                   KEY))
    assert newer["result"] == "updated"
    assert registry.store.last_registration(info.eid) is not None
    assert registry.store.last_registration(info.eid)[0] == 6  # type: ignore[index]


def test_a_replay_after_the_device_was_removed_is_still_one(registry: Registry,
                                                           store: SqliteStore) -> None:
    info = make_device(1, seq=9)
    assert register(registry, encode_registration(info))["result"] == "registered"
    registry.drop_subscription(info.iccid, Effects())
    assert store.device(info.eid) is None
    with pytest.raises(ReplayError) as caught:
        registry.register(replace(info, seq=3, iccid=iccid_for(2)))
    assert (caught.value.seq, caught.value.last_seq) == (3, 9)


def test_unsigned_devices_also_get_replay_protection(registry: Registry) -> None:
    info = make_device(1, seq=3)
    assert register(registry, encode_registration(info))["status"] == "ok"
    assert register(registry, encode_registration(replace(info, seq=2)))["code"] == "replay"


def test_the_subscription_binding_and_the_topic_are_checked_and_audited(
        registry: Registry, store: SqliteStore) -> None:
    other = make_device(7)
    store.record_installation(Installation(iccid_for(3), other.eid, "t-1", "smdp", 1))
    thief = make_device(1, sub=3)
    reply = register(registry, encode_registration(thief))
    assert (reply["status"], reply["code"]) == ("denied", "denied")
    assert last_audit(registry)["installed_on"] == other.eid
    reply = register(registry, encode_registration(make_device(2)))  # topic of device 1
    assert reply["code"] == "bad-request" and "topic" in reply["message"]
    assert last_audit(registry)["eid"] == make_device(2).eid
    assert register(registry, encode_registration(make_device(1, sub=99)))["code"] == \
        "unknown-subscription"
    assert [e.outcome for e in store.audit() if e.action == "register"] == \
        ["denied", "error", "error"]


@pytest.mark.parametrize(("payload", "code"), [
    (b"\xa1\x61", "malformed"),
    (codec.encode({"pad": "x" * 20_000}), "too-large"),
    (b"\x81" * 40 + b"\x00", "too-large"),
    (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""])), "bad-signature"),
    (codec.encode({"v": 1}), "bad-request"),
], ids=["malformed", "oversized", "deep", "bad-cose", "missing-fields"])
def test_undecodable_registrations_are_refused_and_audited(registry: Registry,
                                                          payload: bytes, code: str) -> None:
    reply = register(registry, payload)
    assert reply["status"] == "error" or reply["status"] == "denied"
    assert reply["code"] == code
    entry = last_audit(registry)
    assert (entry["action"], entry["code"]) == ("register", code)
    assert registry.store.device_count() == 0


def test_key_enrollment_is_validated_and_audited(registry: Registry) -> None:
    eid = make_device(1).eid
    record, change = registry.enroll_device_key(eid, public_pem(KEY))
    assert change.value == "added"
    assert registry.enroll_device_key(eid, public_pem(KEY))[1].value == "unchanged"
    assert registry.enroll_device_key(eid, public_pem(THIEF))[1].value == "updated"
    assert [e.outcome for e in registry.store.audit() if e.action == "device-key"] == \
        ["added", "updated"]
    with pytest.raises(ValueError):
        registry.enroll_device_key("1234", public_pem(KEY))
    with pytest.raises(ValueError):
        registry.enroll_device_key(eid, b"not a key")
    assert record.kid and registry.store.device_key(eid) is not None


def test_the_internal_error_path_loses_nothing(registry: Registry, store: SqliteStore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    info = make_device(1)
    assert register(registry, encode_registration(info))["status"] == "ok"
    before = table_state(store)

    def broken(*_a: object, **_k: object) -> None:
        from broker_bridge.errors import StoreError

        raise StoreError("disk full")

    monkeypatch.setattr(store, "note_registration", broken)
    from broker_bridge.errors import StoreError

    with pytest.raises(StoreError):
        registry.handle_registration(info.eid, encode_registration(
            replace(info, seq=2, ip=("192.0.2.99",))))
    assert table_state(store) == before  # the half-done transaction was rolled back


def test_migration_4_keeps_the_replay_state_of_devices_registered_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from broker_bridge.storage import sql

    db = tmp_path / "old.db"
    with monkeypatch.context() as patch:  # a registry of schema version 3
        patch.setattr(sql, "MIGRATIONS", sql.MIGRATIONS[:3])
        patch.setattr(sql, "LATEST_VERSION", 3)
        with SqliteStore(db) as old:
            add_contract(old, "C-1", subs=[1])
            old.register_device(make_device(1, seq=7))
    with SqliteStore(db) as store:
        assert store.schema_version() == sql.LATEST_VERSION
        assert store.last_registration(make_device(1).eid) == (7, "")
        registry = Registry(store)
        assert register(registry, encode_registration(make_device(1, seq=6)))["code"] == \
            "replay"
        # The same number again is taken as a repeat: the old schema kept no digest.
        assert register(registry, encode_registration(make_device(1, seq=7)))["result"] == \
            "unchanged"
        assert store.last_registration(make_device(1).eid)[1] != ""  # type: ignore[index]
