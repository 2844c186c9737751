"""The user's choice of devices and fields, the page's scoped API, presence and the binding
history, on both store backends: what an app sees follows the choice from the next
message on, never more than its trust level allows, and nothing of another contract is
reachable through a portal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.model import PairingState
from broker_bridge.registry import Registry
from broker_bridge.registry.portal import (
    AlreadyDecided,
    ChoiceRefused,
    ContractPortal,
    NotFound,
)
from broker_bridge.storage.sql import SqlStore
from mps_wire.messages import DevicesRequest, EventKind, PairRequest, Status
from tests.helpers import LENA, PAUL, PAUL_MSISDN, iccid_for, make_device, paul_and_apps
from tests.postgres_support import BACKENDS, open_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with open_store(request.param, tmp_path) as s:
        paul_and_apps(s)
        yield s


@pytest.fixture
def registry(store: SqlStore) -> Registry:
    return Registry(store)


def eid(n: int) -> str:
    return make_device(n).eid


def ask(registry: Registry, app: str = "health", purpose: str = "health-monitoring") -> str:
    """Let ``app`` ask to pair with Paul; the prompt's id."""
    reply = registry.app_request(app, PairRequest(PAUL_MSISDN, purpose)).reply
    assert reply.status is Status.PENDING
    (prompt,) = [p for p in registry.portal(PAUL).prompts() if p.app == app]
    return prompt.prompt


def devices_of(registry: Registry, app: str = "health") -> list[dict[str, Any]]:
    reply = registry.app_request(app, DevicesRequest(PAUL_MSISDN)).reply
    assert reply.status is Status.OK, reply
    return list(reply.body["devices"])


def last_event(store: SqlStore, app: str) -> dict[str, Any]:
    return store.events_since(app, 0, limit=500)[-1].payload


def test_a_prompt_offers_the_trust_levels_fields_and_the_contracts_devices(
        registry: Registry) -> None:
    ask(registry)
    (prompt,) = registry.portal(PAUL).prompts()
    assert prompt.app_name == "Health Monitor" and prompt.trust == "verified"
    # A verified app may be shown ip, capabilities, model and presence, never identifiers.
    assert prompt.fields == ("capabilities", "ip", "model", "presence")
    assert [d.eid for d in prompt.devices] == [eid(n) for n in range(1, 5)]


def test_approval_with_a_choice_shows_the_app_exactly_that(registry: Registry,
                                                           store: SqlStore) -> None:
    prompt = ask(registry)
    registry.portal(PAUL).approve(prompt, devices=[eid(1), eid(3)], fields=["ip", "model"])
    granted = last_event(store, "health")
    assert granted["event"] == EventKind.PAIRING_GRANTED.value
    assert len(granted["devices"]) == 2
    for record in (*granted["devices"], *devices_of(registry)):
        assert record["ip"] and record["model"]["model"]
        assert record["capabilities"] == []  # not chosen: withheld like a trust level's
        assert "presence" not in record
    assert len(devices_of(registry)) == 2
    (pairing,) = registry.portal(PAUL).pairings()
    assert pairing.devices == (eid(1), eid(3)) and not pairing.all_devices
    assert pairing.fields == ("ip", "model")


def test_a_choice_beyond_the_trust_level_is_refused_and_changes_nothing(
        registry: Registry, store: SqlStore) -> None:
    prompt = ask(registry)
    portal = registry.portal(PAUL)
    with pytest.raises(ChoiceRefused, match="may not be shown imei") as caught:
        portal.approve(prompt, fields=["ip", "imei"])
    assert caught.value.reason == "field-not-allowed"
    with pytest.raises(ChoiceRefused, match="unknown field 'colour'"):
        portal.approve(prompt, fields=["colour"])
    with pytest.raises(ChoiceRefused, match="at least one device"):
        portal.approve(prompt, devices=[])
    # Still open: the refusals stored nothing, and each is in the audit log.
    assert [p.prompt for p in portal.prompts()] == [prompt]
    assert store.pairing_by_prompt(prompt).state is PairingState.PENDING  # type: ignore[union-attr]
    refused = [e for e in store.audit(contract_id=PAUL) if e.outcome == "refused"]
    assert [e.detail["reason"] for e in refused] == ["field-not-allowed", "unknown-field",
                                                     "empty-choice"]


def test_widening_and_narrowing_take_effect_on_the_next_answer(registry: Registry,
                                                              store: SqlStore) -> None:
    portal = registry.portal(PAUL)
    portal.approve(ask(registry), devices=[eid(1)], fields=["ip"])
    assert len(devices_of(registry)) == 1  # kept in the read model now
    assert len(devices_of(registry)) == 1
    (pairing,) = portal.pairings()
    portal.set_view(pairing.pairing, fields=["ip", "capabilities", "presence"])
    changed = last_event(store, "health")
    assert changed["event"] == EventKind.VIEW_CHANGED.value
    assert changed["fields"] == ["capabilities", "ip", "presence"]
    assert len(changed["devices"]) == 4
    # The very next answer follows the new view: no stale answer from the read model.
    answer = devices_of(registry)
    assert len(answer) == 4 and all(r["capabilities"] for r in answer)
    portal.set_view(pairing.pairing, devices=[eid(2)], fields=["model"])
    (only,) = devices_of(registry)
    assert only["ip"] == [] and only["model"]["model"]


def test_devices_chosen_by_name_exclude_later_ones_all_devices_include_them(
        registry: Registry, store: SqlStore) -> None:
    portal = registry.portal(PAUL)
    portal.approve(ask(registry), devices=[eid(1)])
    portal.approve(ask(registry, "coach", "fitness"))
    from tests.helpers import bind_devices

    bind_devices(store, [5])
    registry.register(make_device(5))
    assert last_event(store, "coach")["event"] == "device-added"
    assert [e.kind for e in store.events_since("health", 0)] == [EventKind.PAIRING_GRANTED]


def test_presence_reaches_only_the_apps_shown_it(registry: Registry, store: SqlStore) -> None:
    portal = registry.portal(PAUL)
    portal.approve(ask(registry), fields=["ip", "presence"])
    portal.approve(ask(registry, "coach", "fitness"), fields=["eid"])
    registry.record_presence(eid(2), True)
    event = last_event(store, "health")
    assert event["event"] == "device-updated" and event["changes"] == ["presence"]
    assert event["device"]["presence"]["state"] == "online"
    assert last_event(store, "coach")["event"] == "pairing-granted"
    # The same state again is no change: no event.
    seq = event["seq"]
    registry.record_presence(eid(2), True)
    assert last_event(store, "health")["seq"] == seq
    registry.record_presence(eid(2), False)
    (record,) = [r for r in devices_of(registry) if r.get("presence")]
    assert record["presence"]["state"] == "offline"
    assert [d.online for d in portal.devices()] == [None, False, None, None]


def test_binding_history_is_recorded_and_shown_to_partner_apps(registry: Registry,
                                                              store: SqlStore) -> None:
    registry.register(make_device(5))
    swapped = replace(make_device(5), seq=2, imei=make_device(50).imei)
    registry.register(swapped)
    # The operator moves profile 6 onto this eUICC, and the device registers with it.
    registry.bind_subscription(iccid_for(6), eid(5), swap=True, actor="operator:test")
    registry.register(replace(swapped, seq=3, iccid=iccid_for(6), imsi=None))
    history = registry.portal(PAUL).history(eid(5))
    assert [h.source for h in history] == ["registration", "swap", "binding", "swap"]
    assert (history[1].previous_imei, history[1].imei) == (make_device(5).imei,
                                                           make_device(50).imei)
    assert (history[3].previous_iccid, history[3].iccid) == (iccid_for(5), iccid_for(6))
    # care (partner, standing consent) sees it in its answers; health (verified) never.
    from mps_wire.messages import PairRequest as Pair

    assert registry.app_request("care", Pair(PAUL_MSISDN, "support")).reply.is_ok
    (care,) = [r for r in devices_of(registry, "care") if r.get("eid") == eid(5)]
    assert [h["source"] for h in care["history"]] == ["registration", "swap", "binding",
                                                      "swap"]
    registry.portal(PAUL).approve(ask(registry))
    assert all("history" not in r for r in devices_of(registry))


def test_a_portal_reaches_nothing_of_another_contract(registry: Registry) -> None:
    prompt = ask(registry)
    registry.portal(PAUL).approve(prompt)
    (pairing,) = registry.portal(PAUL).pairings()
    lena = registry.portal(LENA)
    assert lena.prompts() == [] and lena.pairings() == []
    assert all(d.eid != eid(1) for d in lena.devices())
    request = registry.request_esim(eid(1), "delete", make_device(1).iccid,
                                    actor="operator:test")
    for attempt in (lambda: lena.approve(prompt), lambda: lena.deny(prompt),
                    lambda: lena.set_view(pairing.pairing, fields=["ip"]),
                    lambda: lena.end(pairing.pairing), lambda: lena.history(eid(1)),
                    lambda: lena.approve_esim(request.id),
                    lambda: lena.refuse_esim(request.id)):
        with pytest.raises(NotFound):
            attempt()
    assert lena.esim_requests() == []
    assert [r.request for r in registry.portal(PAUL).esim_requests()] == [request.id]


def test_ending_a_pairing_tells_the_app(registry: Registry, store: SqlStore) -> None:
    portal: ContractPortal = registry.portal(PAUL)
    portal.approve(ask(registry))
    (pairing,) = portal.pairings()
    portal.end(pairing.pairing)
    assert last_event(store, "health")["event"] == "pairing-ended"
    assert portal.pairings() == []
    with pytest.raises(NotFound):
        portal.end(pairing.pairing)


def test_a_denied_or_answered_prompt_cannot_be_answered_again(registry: Registry) -> None:
    portal = registry.portal(PAUL)
    prompt = ask(registry)
    portal.deny(prompt)
    with pytest.raises(AlreadyDecided):
        portal.approve(prompt)


def test_an_installation_report_is_in_the_history(registry: Registry) -> None:
    from mps_wire.messages import InstallationOutcome, InstallationResult
    from tests.helpers import imsi_for

    registry.register(make_device(5))
    report = InstallationResult(seq=1, eid=eid(5), iccid=iccid_for(6), imsi=imsi_for(6),
                                msisdn=None, result=InstallationOutcome.INSTALLED,
                                transaction="t-6", smdp="smdp.example", ts=10**13,
                                matching_id="M", pir=b"\x30\x03\x02\x01\x00",
                                euicc_certificate=b"\x30\x00", eum_certificate=b"\x30\x00")
    assert registry.installation(report).reply.is_ok
    assert registry.installation(report).reply.body["change"] == "unchanged"
    history = registry.portal(PAUL).history(eid(5))
    assert [(h.source, h.iccid, h.previous_iccid) for h in history] == [
        ("registration", iccid_for(5), None), ("installation", iccid_for(6), iccid_for(5))]
