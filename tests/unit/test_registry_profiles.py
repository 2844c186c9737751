"""The eIM's profile state changes in the registry: a deletion (SGP.32 3.4.3, a PSMO of an
eUICC package) unbinds the profile from the eUICC that deleted it and removes the device
that used it there; repeats, deletions elsewhere, stale reports and enable/disable leave
the bindings as they are; malformed reports are refused with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from broker_bridge.cli import main
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from mps_wire.errors import ErrorCode
from mps_wire.messages import EventKind, ProfileChange, ProfileOutcome, Status
from tests.helpers import PAUL, iccid_for, make_device, paul_and_apps, table_state


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=2)  # devices 1 and 2 hold subscriptions 1 and 2
        yield s


@pytest.fixture
def registry(store: SqliteStore) -> Registry:
    return Registry(store)


def change(n: int, result: ProfileOutcome = ProfileOutcome.DELETED, *, sub: int | None = None,
           txn: str = "AA01", ts: int = 1_700_000_000_000) -> ProfileChange:
    return ProfileChange(seq=1, eid=make_device(n).eid, iccid=iccid_for(n if sub is None
                                                                        else sub),
                         result=result, transaction=txn, eim="eim.test", ts=ts,
                         epr=b"\xbf\x51\x00")


def test_a_deletion_unbinds_the_profile_and_removes_its_device(
        registry: Registry, store: SqliteStore) -> None:
    outcome = registry.profile_change(change(1))
    assert outcome.reply.body == {"iccid": iccid_for(1), "change": "removed"}
    assert store.installation(iccid_for(1)) is None and store.device(make_device(1).eid) is None
    assert store.device(make_device(2).eid) is not None  # the other device stays
    (entry,) = [e for e in store.audit() if e.action == "profile"]
    assert (entry.actor, entry.outcome, entry.contract_id) == ("operator:eim", "deleted", PAUL)
    # No pairing on Paul's contract yet: nothing to tell.
    assert outcome.effects.events == []
    # The same report again: nothing more happens, nothing more is audited.
    again = registry.profile_change(change(1))
    assert again.reply.body["change"] == "unchanged"
    assert len([e for e in store.audit() if e.action == "profile"]) == 1


def test_the_event_goes_to_paired_apps(registry: Registry, store: SqliteStore) -> None:
    from mps_wire.messages import PairRequest
    assert registry.handle_app("care", PairRequest("+4915112345678", "support").to_wire()
                               ).reply.is_ok
    outcome = registry.profile_change(change(2))
    kinds = [(e.kind, e.payload.get("reason")) for e in outcome.effects.events]
    assert kinds == [(EventKind.DEVICE_REMOVED, "subscription-removed")]


def test_what_leaves_the_bindings_alone(registry: Registry, store: SqliteStore) -> None:
    before = table_state(store)
    # Enable and disable are audited only (the device re-registers if its profile changes).
    for result in (ProfileOutcome.DISABLED, ProfileOutcome.ENABLED):
        assert registry.profile_change(change(1, result)).reply.body["change"] == "unchanged"
    # A deletion reported by an eUICC the profile is not bound to.
    assert registry.profile_change(change(2, sub=1)).reply.body["change"] == "unchanged"
    # A deletion older than the binding (the profile came back since).
    store.record_installation(replace(store.installation(iccid_for(1)),  # type: ignore[type-var]
                                      transaction="again", ts=1_800_000_000_000), rebind=True)
    assert registry.profile_change(change(1)).reply.body["change"] == "unchanged"
    assert table_state(store) == before
    outcomes = [e.outcome for e in store.audit() if e.action == "profile"]
    assert outcomes == ["disabled", "enabled"]


def test_malformed_reports_are_refused(registry: Registry, store: SqliteStore) -> None:
    before = table_state(store)
    wire = change(1).to_wire()
    for bad in ({**wire, "result": "exploded"}, {**wire, "eid": "123"},
                {**wire, "v": 2}, {k: v for k, v in wire.items() if k != "iccid"},
                {**wire, "extra": 1}):
        reply = registry.handle_profile_change(bad).reply
        assert reply.status is Status.ERROR and isinstance(reply.code, ErrorCode)
    assert table_state(store) == before


def test_devices_show(store: SqliteStore, registry: Registry, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    eid = make_device(1).eid
    db = str(tmp_path / "registry.db")
    assert main(["devices", "show", eid, "--db", db]) == 0
    out = capsys.readouterr().out
    assert f"device of contract {PAUL} with profile {iccid_for(1)}" in out
    registry.profile_change(change(1))
    assert main(["devices", "show", eid, "--db", db]) == 1
    assert "no device registered" in capsys.readouterr().out
    assert main(["devices", "show", "12345", "--db", db]) == 2


def test_only_the_eim_source_may_publish_profile_changes() -> None:
    from broker_bridge.brokerconf import acl_rules
    from broker_bridge.model import BrokerIdentity, Role
    from mps_wire.topics import Topics

    topics = Topics()
    profiles = topics.operator("profiles")

    def rules(role: Role, subject: str) -> list[tuple[str, str]]:
        return acl_rules(BrokerIdentity(f"{role.value}.{subject}", role, subject, 0), topics)

    assert ("write", profiles) in rules(Role.OPERATOR, "eim")
    assert ("write", profiles) not in rules(Role.OPERATOR, "smdp")
    assert ("write", profiles) not in rules(Role.OPERATOR, "crm")
    assert ("read", profiles) in rules(Role.BRIDGE, "one")
