"""Registration needs proof of the subscription: an installation result of the SM-DP+ or an
operator binding puts the ICCID on this EID; IMSI and MSISDN are the operator's; one ICCID,
one device at a time, moved only by an explicit, audited swap.

SGP.22 v2.5 section 3.5 (ES9+.HandleNotification, the ProfileInstallationResult) is the SM-DP+'s
word that a profile is installed on an eUICC; section 2.6.6 binds it to that eUICC's EID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.cli import main
from broker_bridge.errors import SubscriptionInUseError, UnknownSubscriptionError
from broker_bridge.registry import Outcome, Registry
from broker_bridge.storage import SqliteStore
from mps_wire.messages import EventKind, InstallationOutcome, InstallationResult, PairRequest
from mps_wire.registration import encode_registration
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    add_contract,
    bind_devices,
    iccid_for,
    imsi_for,
    make_device,
    paul_and_apps,
    table_state,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=0, bind=False)
        yield s


@pytest.fixture
def registry(store: SqliteStore) -> Registry:
    return Registry(store)


def register(registry: Registry, n: int, **changes: Any) -> dict[str, Any]:
    info = make_device(n, **changes)
    return registry.handle_registration(info.eid, encode_registration(info)).reply.to_wire()


def installed(registry: Registry, n: int, sub: int, *, txn: str, ts: int = 1) -> Outcome:
    report = InstallationResult(seq=1, eid=make_device(n).eid, iccid=iccid_for(sub),
                                imsi=imsi_for(sub), msisdn=None,
                                result=InstallationOutcome.INSTALLED, transaction=txn,
                                smdp="smdp.example", ts=ts, matching_id="M",
                                pir=b"\x30\x03\x02\x01\x00", euicc_certificate=b"\x30\x00",
                                eum_certificate=b"\x30\x00")
    outcome = registry.installation(report)
    assert outcome.reply.is_ok
    return outcome


def test_a_known_iccid_without_installation_or_binding_is_refused(
        registry: Registry, store: SqliteStore) -> None:
    before = table_state(store)
    reply = register(registry, 1)
    assert (reply["status"], reply["code"]) == ("denied", "denied")
    assert "no installation record" in reply["message"]
    assert table_state(store) == before
    entry = store.audit()[-1]
    assert (entry.action, entry.outcome, entry.subject) == ("register", "denied",
                                                            make_device(1).eid)


def test_an_installation_result_or_an_operator_binding_lets_the_device_in(
        registry: Registry, store: SqliteStore) -> None:
    installed(registry, 1, 1, txn="tx-1")
    assert register(registry, 1)["result"] == "registered"
    registry.bind_subscription(iccid_for(2), make_device(2).eid)
    assert register(registry, 2)["result"] == "registered"
    binding = [e for e in store.audit() if e.action == "binding"]
    assert [(e.outcome, e.subject, e.contract_id) for e in binding] == \
        [("added", iccid_for(2), PAUL)]


def test_the_imsi_is_the_operators_and_a_contradicting_one_is_refused(
        registry: Registry, store: SqliteStore) -> None:
    bind_devices(store, [1, 2])
    reply = register(registry, 1, imsi="262019999999999")
    assert (reply["status"], reply["code"]) == ("denied", "denied")
    assert "IMSI" in reply["message"]
    assert store.device(make_device(1).eid) is None
    # A device that sends none gets the operator's; the number is the subscription's.
    assert register(registry, 2, imsi=None)["result"] == "registered"
    stored = store.device(make_device(2).eid)
    assert stored is not None and stored.imsi == imsi_for(2)


def test_the_store_keeps_the_operators_imsi_whatever_it_is_given(store: SqliteStore) -> None:
    add_contract(store, "C-X", subs=[20])
    outcome = store.register_device(make_device(20, imsi="262018888888888"))
    assert outcome.device.imsi == imsi_for(20)
    stored = store.device(make_device(20).eid)
    assert stored is not None and stored.imsi == imsi_for(20)


def test_a_bound_profile_moves_only_with_an_explicit_swap(
        registry: Registry, store: SqliteStore) -> None:
    bind_devices(store, [1])
    assert register(registry, 1)["result"] == "registered"
    new_eid = make_device(7).eid
    with pytest.raises(SubscriptionInUseError):
        registry.bind_subscription(iccid_for(1), new_eid)
    assert store.installation(iccid_for(1)).eid == make_device(1).eid  # type: ignore[union-attr]
    # The other device may not take it either.
    reply = register(registry, 7, sub=1)
    assert (reply["status"], reply["code"]) == ("denied", "denied")
    change, _effects = registry.bind_subscription(iccid_for(1), new_eid, swap=True)
    assert change.value == "updated"
    assert store.device(make_device(1).eid) is None  # one ICCID, one device
    swap = [e for e in store.audit() if e.action == "binding"][-1]
    assert swap.outcome == "swapped"
    assert swap.detail["from"] == make_device(1).eid
    assert swap.detail["devices_removed"] == [make_device(1).eid]
    assert register(registry, 7, sub=1)["result"] == "registered"
    assert [d.eid for d in store.devices_by_iccid(iccid_for(1))] == [new_eid]


def test_a_new_download_elsewhere_is_the_swap_and_the_old_device_leaves(
        registry: Registry, store: SqliteStore) -> None:
    installed(registry, 1, 1, txn="tx-1", ts=1)
    assert register(registry, 1)["result"] == "registered"
    # The care app (standing consent) is paired: it hears of the device leaving.
    assert registry.pair("care", PairRequest(PAUL_MSISDN, "support")).reply.is_ok
    swap = installed(registry, 7, 1, txn="tx-2", ts=2)
    assert store.device(make_device(1).eid) is None
    # The removal's event goes out with the report's outcome, not only on a later resume.
    assert [(e.app_id, e.kind) for e in swap.effects.events] == [
        ("care", EventKind.DEVICE_REMOVED)]
    entry = [e for e in store.audit() if e.action == "installation"][-1]
    assert entry.detail["devices_removed"] == [make_device(1).eid]
    assert register(registry, 1, seq=2)["code"] == "denied"
    assert register(registry, 7, sub=1)["result"] == "registered"


def test_two_devices_never_hold_one_iccid(registry: Registry, store: SqliteStore) -> None:
    # A record from before this rule: device 1 holds profile 1, but it is bound to 7.
    bind_devices(store, [1])
    store.register_device(make_device(1))
    with store.transaction():
        store._execute("UPDATE installations SET eid = ? WHERE iccid = ?",  # type: ignore[attr-defined]
                       (make_device(7).eid, iccid_for(1)))
    reply = register(registry, 7, sub=1)
    assert (reply["status"], reply["code"]) == ("denied", "denied")
    assert "in use by device" in reply["message"]


def test_binding_an_unknown_iccid_is_refused(registry: Registry) -> None:
    with pytest.raises(UnknownSubscriptionError):
        registry.bind_subscription(iccid_for(77), make_device(1).eid)
    with pytest.raises(ValueError):
        registry.bind_subscription(iccid_for(1), "123")


def test_operator_bind_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "registry.db")
    with SqliteStore(db) as s:
        paul_and_apps(s, devices=0, bind=False)
    eid, other = make_device(1).eid, make_device(7).eid
    args = ["operator", "bind", "--db", db, "--iccid", iccid_for(1)]
    assert main([*args, "--eid", eid]) == 0
    assert main([*args, "--eid", eid, "--json"]) == 0
    assert '"change": "unchanged"' in capsys.readouterr().out
    assert main([*args, "--eid", other]) == 1
    assert "--swap" in capsys.readouterr().err
    assert main([*args, "--eid", other, "--swap"]) == 0
    assert main([*args, "--eid", "8904"]) == 2
    with SqliteStore(db) as s:
        assert s.installation(iccid_for(1)).eid == other  # type: ignore[union-attr]
        assert [e.outcome for e in s.audit() if e.action == "binding"] == \
            ["added", "swapped"]


def test_the_device_record_shown_to_apps_carries_the_operators_numbers(
        registry: Registry, store: SqliteStore) -> None:
    bind_devices(store, [1])
    assert register(registry, 1, imsi=None)["result"] == "registered"
    device = store.device(make_device(1).eid)
    assert device is not None
    assert (device.imsi, device.msisdn) == (imsi_for(1), "+4915112345678")
