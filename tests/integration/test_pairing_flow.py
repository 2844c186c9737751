"""Pairing over a real Mosquitto: trust levels, consent prompts and answers, the device
fields each level sees, unpairing and withdrawal, and bad input that changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.model import OtherOperator, PairingState, TrustLevel
from broker_bridge.policy import FIELDS_BY_TRUST
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_sdk.client import PairingClient
from mps_sdk.consent import ConsentClient
from mps_sdk.errors import DeniedError, NotFoundError, RedirectError, RequestError
from mps_testbed.stack import Mosquitto
from mps_wire import codec
from mps_wire.messages import EventKind, Reason
from mps_wire.topics import Topics
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    MqttProbe,
    make_device,
    paul_and_apps,
    running_bridge,
    table_state,
    wait_until,
)

PURPOSE = "health-monitoring"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s)
        s.upsert_operator(OtherOperator("other", "Other Mobile", "mqtts://reg.other.example",
                                        "mps/v1", ("+49160",)))
        s.set_ported("+4915199990000", "other")
        yield s


def app_client(mosquitto: Mosquitto, topics: Topics, app: str) -> PairingClient:
    return PairingClient(mosquitto.url, app, topics=topics, timeout=5)


@pytest.fixture
def health(bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> Iterator[PairingClient]:
    with app_client(mosquitto, topics, "health") as c:
        yield c


@pytest.fixture
def user(bridge: Bridge, mosquitto: Mosquitto, topics: Topics) -> Iterator[ConsentClient]:
    with ConsentClient(mosquitto.url, PAUL, topics=topics, timeout=5) as c:
        yield c


def test_a_verified_app_waits_for_consent_then_gets_every_device(
        health: PairingClient, user: ConsentClient, store: SqliteStore) -> None:
    answer = health.pair(PAUL_MSISDN, PURPOSE)
    assert (answer.state, answer.devices) == ("pending", ())
    assert answer.expires_at is not None and answer.expires_at > time.time() * 1000
    with pytest.raises(DeniedError) as caught:  # not paired yet
        health.devices(PAUL_MSISDN)
    assert caught.value.reason == Reason.CONSENT_PENDING

    # The prompt is retained on the consent topic: a user agent connecting now sees it.
    prompt = user.wait_for_prompt(app="health", timeout=5)
    assert (prompt.pairing, prompt.purpose, prompt.trust) == (answer.pairing, PURPOSE,
                                                              "verified")
    assert set(prompt.fields) == {"device_id", "ip", "capabilities", "model",
                                  "presence"}
    assert [p.prompt for p in user.consent().prompts] == [prompt.prompt]

    assert user.approve(prompt.prompt) == answer.pairing
    granted = health.wait_for_decision(answer.pairing, timeout=5)
    assert granted.kind is EventKind.PAIRING_GRANTED and granted.consent == "user"
    assert len(granted.devices) == 4  # all of Paul's devices, at once
    # A verified app sees pseudonymous ids, model, capabilities and addresses, no more.
    for record in granted.devices:
        assert record.eid is record.imei is record.iccid is record.imsi is None
        assert record.msisdn is None and record.ip and record.model.model == "EC25"
    assert sorted(r.ip for r in health.devices(PAUL_MSISDN)) == sorted(
        r.ip for r in granted.devices)
    assert user.consent().prompts == ()
    assert [g.app for g in user.consent().granted] == ["health"]
    pairing = store.pairing(answer.pairing)
    assert pairing is not None and pairing.state is PairingState.ACTIVE
    assert pairing.decided_by == f"user:{PAUL}"
    # Asking again is harmless: the same pairing, answered at once now.
    again = health.pair(PAUL_MSISDN, PURPOSE)
    assert (again.pairing, again.state, len(again.devices)) == (answer.pairing, "active", 4)


def test_a_denied_prompt_tells_the_app_and_pairs_nothing(
        health: PairingClient, user: ConsentClient, store: SqliteStore) -> None:
    answer = health.pair(PAUL_MSISDN, PURPOSE)
    prompt = user.wait_for_prompt(app="health", timeout=5)
    assert user.deny(prompt.prompt) == answer.pairing
    decision = health.wait_for_decision(answer.pairing, timeout=5)
    assert (decision.kind, decision.reason) == (EventKind.PAIRING_DENIED, Reason.USER_DENIED)
    assert decision.devices == ()
    with pytest.raises(DeniedError) as caught:
        health.devices(PAUL_MSISDN)
    assert caught.value.reason == Reason.NOT_PAIRED
    with pytest.raises(NotFoundError, match="already denied"):
        user.approve(prompt.prompt)  # a decision is final


def test_an_unanswered_prompt_expires(store: SqliteStore, mosquitto: Mosquitto,
                                      topics: Topics) -> None:
    with running_bridge(store, mosquitto.url, topics, consent_ttl=0.3), \
            app_client(mosquitto, topics, "health") as health, \
            ConsentClient(mosquitto.url, PAUL, topics=topics, timeout=5) as user:
        answer = health.pair(PAUL_MSISDN, PURPOSE)
        prompt = user.wait_for_prompt(app="health", timeout=5)
        decision = health.wait_for_decision(answer.pairing, timeout=5)
        assert (decision.kind, decision.reason) == (EventKind.PAIRING_DENIED, Reason.EXPIRED)
        with pytest.raises(NotFoundError, match="expired"):
            user.approve(prompt.prompt)
        # The retained consent message no longer shows the prompt.
        assert next(user.watch_prompts(timeout=2)) == ()
        assert store.pairing(answer.pairing).state is PairingState.EXPIRED  # type: ignore[union-attr]


def test_a_partner_with_standing_consent_is_answered_at_once_and_sees_more(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, store: SqliteStore) -> None:
    with app_client(mosquitto, topics, "care") as care:
        answer = care.pair(PAUL_MSISDN, "support")
        assert (answer.state, answer.consent, answer.contract) == ("active", "standing", PAUL)
        assert len(answer.devices) == 4
        infos = {make_device(n).eid: make_device(n) for n in range(1, 5)}
        for record in answer.devices:
            info = infos[record.eid or ""]
            assert (record.imei, record.iccid, record.imsi) == (info.imei, info.iccid,
                                                                info.imsi)
            assert record.device_id != record.eid  # the app's own pseudonym
        # The same grant is the first event of its stream.
        first = next(care.events(0, timeout=5))
        assert first.kind is EventKind.PAIRING_GRANTED and first.consent == "standing"
        assert [d.device_id for d in first.devices] == [d.device_id for d in answer.devices]
    assert store.consent_revision(PAUL) == 0  # the user was never asked


def test_a_partner_without_standing_consent_asks_the_user(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, user: ConsentClient) -> None:
    with app_client(mosquitto, topics, "coach") as coach:
        answer = coach.pair(PAUL_MSISDN, "fitness")
        assert answer.state == "pending"
        prompt = user.wait_for_prompt(app="coach", timeout=5)
        assert "imei" in prompt.fields and prompt.trust == "partner"
        user.approve(prompt.prompt)
        granted = coach.wait_for_decision(answer.pairing, timeout=5)
        assert all(d.imei for d in granted.devices)


def test_device_ids_are_stable_per_app_and_differ_between_apps(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, store: SqliteStore) -> None:
    with app_client(mosquitto, topics, "care") as care:
        first = {d.eid: d.device_id for d in care.pair(PAUL_MSISDN, "support").devices}
        again = {d.eid: d.device_id for d in care.devices(PAUL_MSISDN)}
    assert first == again
    other = bridge.registry.view(store.app("health"))  # type: ignore[arg-type]
    assert {other.device_id(eid) for eid in first}.isdisjoint(first.values())
    assert other.contract_ref(PAUL) != PAUL  # verified apps see a pseudonymous reference


def test_the_field_table() -> None:
    assert FIELDS_BY_TRUST[TrustLevel.PARTNER] >= {"eid", "imei", "iccid", "imsi", "msisdn",
                                                   "ip", "capabilities", "model"}
    assert FIELDS_BY_TRUST[TrustLevel.VERIFIED] == {"ip", "capabilities", "model"}
    assert FIELDS_BY_TRUST[TrustLevel.UNVERIFIED] == frozenset()


# --- refusals: each one answered, none changes the registry's state --------------------

def _refused(client: PairingClient, call: str, *args: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        getattr(client, call)(*args)
    return caught.value


def test_refusals_change_nothing_and_the_bridge_keeps_serving(
        bridge: Bridge, mosquitto: Mosquitto, topics: Topics, store: SqliteStore,
        user: ConsentClient) -> None:
    before = table_state(store)
    with app_client(mosquitto, topics, "health") as health, \
            app_client(mosquitto, topics, "tracker") as tracker, \
            app_client(mosquitto, topics, "stranger") as stranger:
        # Not a customer: answered as a customer's number is, and left to expire.
        assert health.pair("+4915100000077", PURPOSE).state == "pending"
        purpose = _refused(health, "pair", PAUL_MSISDN, "advertising")
        assert isinstance(purpose, DeniedError)
        assert purpose.reason == Reason.PURPOSE_NOT_ALLOWED
        untrusted = _refused(tracker, "pair", PAUL_MSISDN, "fitness")
        assert isinstance(untrusted, DeniedError) and untrusted.reason == Reason.UNTRUSTED
        assert _refused(tracker, "devices", PAUL_MSISDN).code.value == "denied"
        nobody = _refused(stranger, "pair", PAUL_MSISDN, PURPOSE)
        assert isinstance(nobody, DeniedError) and nobody.reason == Reason.UNKNOWN_APP
        not_paired = _refused(health, "unpair", PAUL_MSISDN)
        assert isinstance(not_paired, NotFoundError)
        with pytest.raises(NotFoundError, match="no consent prompt"):
            user.approve("cp-0000000000000000")
        with pytest.raises(NotFoundError):
            user.withdraw(app="health")
    # Requests the SDK would never send: straight onto the topic.
    with MqttProbe(mosquitto.url) as probe:
        replies = topics.app_replies("health")
        probe.listen(replies)
        requests = topics.app_requests("health")
        for payload, code in (
                ({"op": "pair", "msisdn": PAUL_MSISDN}, "bad-request"),
                ({"op": "pair", "msisdn": PAUL_MSISDN, "purpose": 7}, "bad-request"),
                ({"op": "pair", "msisdn": "0151", "purpose": PURPOSE}, "invalid-identifier"),
                ({"op": "pair", "msisdn": PAUL_MSISDN, "purpose": PURPOSE, "x": 1},
                 "bad-request"),
                ({"op": "events-since", "seq": -1}, "bad-request"),
                ({"op": "unpair"}, "bad-request"),
                ({"op": "fly"}, "bad-request")):
            reply = probe.request(requests, codec.encode(payload), replies)
            assert (reply["status"], reply["code"]) == ("error", code), payload
        user_requests = topics.user_requests(PAUL)
        user_replies = topics.user_replies(PAUL)
        probe.listen(user_replies)
        for payload in ({"op": "consent-answer", "prompt": "cp-1"},
                        {"op": "consent-answer", "prompt": "cp-1", "decision": "maybe"},
                        {"op": "consent-withdraw"}):
            reply = probe.request(user_requests, codec.encode(payload), user_replies)
            assert reply["code"] == "bad-request", payload
        assert probe.request(user_requests, b"\xff", user_replies)["code"] == "malformed"
    assert table_state(store) == before
    # ...and it still serves: a real pairing goes through afterwards.
    with app_client(mosquitto, topics, "care") as care:
        assert care.pair(PAUL_MSISDN, "support").active
    # Refusals of known parties are in the audit log, with their answer.
    outcomes = {(e.actor, e.outcome, e.detail.get("reason")) for e in store.audit()}
    decoys = [e for e in store.audit() if e.detail.get("decoy")]
    assert [(e.actor, e.outcome, e.subject) for e in decoys] == \
        [("app:health", "pending", "+4915100000077")]  # the unknown number, for the operator
    assert ("app:health", "denied", "purpose-not-allowed") in outcomes
    assert ("app:tracker", "denied", "untrusted") in outcomes
    assert ("app:stranger", "denied", "unknown-app") in outcomes
    assert (f"user:{PAUL}", "not-found", "unknown-prompt") in outcomes


def test_numbers_of_other_operators_are_redirected(
        health: PairingClient, mosquitto: Mosquitto, topics: Topics) -> None:
    for number in ("+4916012345678", "+4915199990000"):  # a prefix, a ported number
        # Before consent, an app that must ask the user learns nothing of the number.
        assert health.pair(number, PURPOSE).state == "pending"
        with app_client(mosquitto, topics, "care") as care, \
                pytest.raises(RedirectError) as caught:
            care.pair(number, "support")
        redirect = caught.value
        assert (redirect.operator, redirect.registry, redirect.prefix) == (
            "other", "mqtts://reg.other.example", "mps/v1")
        assert redirect.status.value == "redirect"


# --- the end of a pairing --------------------------------------------------------------

def _paired(client: PairingClient, user: ConsentClient) -> str:
    answer = client.pair(PAUL_MSISDN, PURPOSE)
    user.approve(user.wait_for_prompt(app=client.app_id, timeout=5).prompt)
    client.wait_for_decision(answer.pairing, timeout=5)
    return answer.pairing


def _stream(client: PairingClient) -> list[Any]:
    return list(client.events(0, timeout=0.5))


def test_unpairing_ends_the_pairing_and_nothing_follows(
        health: PairingClient, user: ConsentClient, bridge: Bridge) -> None:
    pairing = _paired(health, user)
    assert health.unpair(PAUL_MSISDN) == pairing
    bridge.registry.register(make_device(5))  # a new device after the end: not announced
    events = _stream(health)
    assert [e.kind for e in events] == [EventKind.PAIRING_GRANTED, EventKind.PAIRING_ENDED]
    assert (events[-1].pairing, events[-1].reason) == (pairing, Reason.UNPAIRED)
    with pytest.raises(DeniedError):
        health.devices(PAUL_MSISDN)
    assert user.consent().granted == ()
    assert health.unpair(pairing=pairing) == pairing  # by id, once more: still ended


def test_withdrawing_consent_ends_the_pairing(
        health: PairingClient, user: ConsentClient, bridge: Bridge, store: SqliteStore
        ) -> None:
    pairing = _paired(health, user)
    assert user.withdraw(app="health") == [pairing]
    bridge.registry.register(make_device(5))
    events = _stream(health)
    assert [e.kind for e in events][-1] is EventKind.PAIRING_ENDED
    assert events[-1].reason == Reason.CONSENT_WITHDRAWN
    assert all(e.kind is not EventKind.DEVICE_ADDED for e in events)
    ended = store.pairing(pairing)
    assert ended is not None and ended.ended_by == f"user:{PAUL}"
    decisions = [(e.action, e.outcome) for e in store.audit(contract_id=PAUL)
                 if e.actor.startswith("user:")]
    assert decisions == [("consent", "approve"), ("consent-withdraw", "ok")]
    assert wait_until(lambda: store.unpublished_events(10**15) == [])
