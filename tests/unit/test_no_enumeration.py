"""No enumeration: before the user consents, a pairing request tells an app nothing about
the number. A customer's, a stranger's and a ported number get the same answer shape
(``pending``), a repeat the same pairing, and each expires with the same event; contract
references are per app and per number until consent, so two numbers of one contract are
not linked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.model import OtherOperator
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from mps_wire.messages import PairRequest
from tests.helpers import PAUL, PAUL_MSISDN, add_contract, paul_and_apps

STRANGER = "+4915199999999"  # nobody's number
PORTED = "+4917012345678"  # another operator's range
SECOND = "+4915100000002"  # Paul's second number


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(tmp_path: Path, clock: Clock) -> Iterator[Registry]:
    with SqliteStore(tmp_path / "registry.db", clock=clock) as s:
        paul_and_apps(s)
        add_contract(s, PAUL, subs=[], msisdns=[PAUL_MSISDN, SECOND], holder="Paul Becker")
        s.upsert_operator(OtherOperator("other", "Other Mobile", "mqtt://other.example:1883",
                                        number_prefixes=("+49170",)))
        yield Registry(s, clock=clock)


def pair(registry: Registry, msisdn: str, app: str = "health",
         purpose: str = "health-monitoring") -> dict[str, Any]:
    return registry.app_request(app, PairRequest(msisdn, purpose)).reply.to_wire()


def shape(reply: dict[str, Any]) -> tuple[Any, ...]:
    """Everything an app could tell numbers apart by, but the random values."""
    return (reply["status"], tuple(sorted(reply)), reply["state"], len(reply["pairing"]),
            len(reply["contract"]), reply["contract"][0], reply["expires_at"])


def test_customers_strangers_and_ported_numbers_get_the_same_answer(
        registry: Registry) -> None:
    answers = {n: pair(registry, n) for n in (PAUL_MSISDN, STRANGER, PORTED)}
    assert len({shape(a) for a in answers.values()}) == 1, answers
    assert answers[STRANGER]["status"] == "pending"
    assert "redirect" not in str(answers[PORTED]) and "other" not in str(answers[PORTED])
    # A repeat answers about the same pairing, whichever the number.
    for number, first in answers.items():
        again = pair(registry, number)
        assert (again["pairing"], again["expires_at"]) == (first["pairing"],
                                                           first["expires_at"])
    # Nothing is asked of anyone for the stranger's number.
    assert len(registry.store.pairings(app_id="health")) == 1


def test_a_refusal_depends_on_the_app_and_purpose_alone(registry: Registry) -> None:
    for number in (PAUL_MSISDN, STRANGER, PORTED):
        reply = pair(registry, number, app="tracker", purpose="fitness")
        assert (reply["status"], reply.get("reason")) == ("denied", "untrusted"), reply
        reply = pair(registry, number, purpose="advertising")
        assert reply["status"] == "denied", reply


def test_two_numbers_of_one_contract_are_not_linked_before_consent(
        registry: Registry) -> None:
    first, second = pair(registry, PAUL_MSISDN), pair(registry, SECOND)
    assert first["contract"] != second["contract"]
    # The reference is the app's own: another app sees another one for the number.
    coach = pair(registry, PAUL_MSISDN, app="coach", purpose="fitness")
    assert coach["contract"] != first["contract"]


def test_a_stranger_request_expires_with_the_event_of_an_unanswered_prompt(
        registry: Registry, clock: Clock) -> None:
    real, decoy = pair(registry, PAUL_MSISDN), pair(registry, STRANGER)
    clock.now += registry.consent_ttl_ms + 1
    effects = registry.expire_prompts()
    events = {e.payload["pairing"]: e.payload for e in effects.events}
    assert set(events) == {real["pairing"], decoy["pairing"]}
    kinds = {(p["event"], p["reason"], tuple(sorted(p))) for p in events.values()}
    assert len(kinds) == 1, events
    assert events[decoy["pairing"]]["contract"] == decoy["contract"]
    assert registry.expire_prompts().events == []  # each once
    again = pair(registry, STRANGER)  # a new request after expiry: a new pairing
    assert again["status"] == "pending" and again["pairing"] != decoy["pairing"]


def test_partners_with_standing_consent_still_learn_where_a_number_is_served(
        registry: Registry) -> None:
    assert pair(registry, PORTED, app="care", purpose="support")["status"] == "redirect"
    assert pair(registry, STRANGER, app="care", purpose="support")["code"] == "not-found"


def ask(registry: Registry, msg: dict[str, Any], app: str = "health") -> dict[str, Any]:
    return registry.handle_app(app, msg).reply.to_wire()


def answer_shape(reply: dict[str, Any]) -> tuple[Any, ...]:
    """What an app could tell numbers apart by in a refusal or an unpairing."""
    return (reply["status"], reply.get("code"), reply.get("reason"), reply.get("message"),
            tuple(sorted(reply)), reply.get("state"), len(reply.get("contract", "")))


@pytest.mark.parametrize("op", ["devices", "unpair"])
def test_devices_and_unpair_tell_nothing_of_a_number_before_consent(
        registry: Registry, op: str) -> None:
    # Never asked about: a customer's, a stranger's and a ported number answer alike.
    before = {n: ask(registry, {"op": op, "msisdn": n}) for n in (SECOND, STRANGER, PORTED)}
    assert len({answer_shape(a) for a in before.values()}) == 1, before
    assert before[STRANGER]["status"] != "redirect" and "other" not in str(before[PORTED])
    # Asked about (a prompt for the customer, a decoy for the others): alike again.
    pairings = {n: pair(registry, n) for n in (SECOND, STRANGER, PORTED)}
    during = {n: ask(registry, {"op": op, "msisdn": n}) for n in pairings}
    assert len({answer_shape(a) for a in during.values()}) == 1, during
    if op == "unpair":
        assert during[STRANGER]["status"] == "ok"
        assert during[STRANGER]["state"] == "ended"
        for number, first in pairings.items():
            # The number's own reference, not the contract's: nothing linked.
            assert during[number]["contract"] == first["contract"]
            by_id = ask(registry, {"op": "unpair", "pairing": first["pairing"]})
            assert (by_id["status"], by_id["state"]) == ("ok", "ended"), by_id
        again = {n: ask(registry, {"op": op, "msisdn": n}) for n in pairings}
        assert len({answer_shape(a) for a in again.values()}) == 1, again
    else:
        assert during[STRANGER]["status"] == "pending"
    # Partners with standing consent still learn where a number is served.
    assert ask(registry, {"op": op, "msisdn": PORTED}, app="care")["status"] == "redirect"


def test_an_unpaired_decoy_ends_with_the_event_of_an_unpaired_prompt(
        registry: Registry) -> None:
    ended = {}
    for number in (PAUL_MSISDN, STRANGER):
        pairing = pair(registry, number)["pairing"]
        outcome = registry.handle_app("health", {"op": "unpair", "msisdn": number})
        (event,) = outcome.effects.events
        assert event.payload["pairing"] == pairing
        ended[number] = event.payload
    kinds = {(p["event"], p["reason"], tuple(sorted(p))) for p in ended.values()}
    assert len(kinds) == 1, ended
    # Closed: housekeeping does not expire it later.
    assert registry.store.expired_decoys(1 << 62) == []
