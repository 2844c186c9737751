"""References to the user besides the number: the contract reference the user gave the app,
and the pseudonymous id the registry gave the app at pairing. All three resolve to the same
contract and answer alike; before consent an unknown reference is answered like a
stranger's number (no enumeration), and a pseudonym is worth nothing to another app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from mps_wire.errors import ValidationError
from mps_wire.messages import DevicesRequest, PairRequest, UnpairRequest
from tests.helpers import PAUL, PAUL_MSISDN, paul_and_apps
from tests.unit.test_no_enumeration import STRANGER, Clock, shape
from tests.unit.test_read_model import _paired as _paired_health


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    clock = Clock()  # one instant: answers differ in nothing but their random values
    with SqliteStore(tmp_path / "registry.db", clock=clock) as s:
        paul_and_apps(s)
        yield Registry(s, clock=clock)


def devices(registry: Registry, app: str, **who: str) -> dict[str, Any]:
    return registry.app_request(app, DevicesRequest(**who)).reply.to_wire()


def never_paired(reply: dict[str, Any]) -> bool:
    """The answer to an app that asks about a number it is not paired with."""
    return (reply["status"], reply["code"], reply["reason"]) == ("denied", "denied",
                                                                 "not-paired")


def test_number_contract_reference_and_pseudonym_answer_alike(registry: Registry) -> None:
    paired = registry.app_request("care", PairRequest(PAUL_MSISDN, "support")).reply.to_wire()
    assert paired["state"] == "active"
    pseudonym = paired["contract"]
    by_number = devices(registry, "care", msisdn=PAUL_MSISDN)
    assert by_number["status"] == "ok" and len(by_number["devices"]) == 4
    assert devices(registry, "care", user=pseudonym) == by_number
    assert devices(registry, "care", user=PAUL) == by_number
    # Audited alike: every listing names the number it resolved to.
    listings = [e for e in registry.store.audit(app_id="care")
                if e.action == "devices"]
    assert [e.subject for e in listings][-3:] == [PAUL_MSISDN] * 3
    assert {e.contract_id for e in listings[-3:]} == {PAUL}


def test_a_pseudonym_is_per_app_and_issued_at_consent(registry: Registry) -> None:
    pending = registry.app_request("health", PairRequest(PAUL_MSISDN, "health-monitoring")
                                   ).reply.to_wire()
    # Before consent the reference is the number's (per app and number): it names no one,
    # answered as a number the app never paired with (no enumeration).
    assert never_paired(devices(registry, "health", user=pending["contract"]))
    _paired_health(registry)
    pseudonym = devices(registry, "health", msisdn=PAUL_MSISDN)["contract"]
    assert pseudonym.startswith("c") and pseudonym != PAUL
    assert devices(registry, "health", user=pseudonym) == devices(registry, "health",
                                                                  msisdn=PAUL_MSISDN)
    # health's pseudonym names nobody for care (a partner, paired by standing consent).
    assert devices(registry, "care", user=pseudonym)["code"] == "not-found"


def test_before_consent_an_unknown_reference_looks_like_any_other(registry: Registry) -> None:
    answers = {who: registry.app_request("health", PairRequest(**kw, purpose="health-monitoring")
                                         ).reply.to_wire()
               for who, kw in (("contract", {"msisdn": None, "user": PAUL}),
                               ("unknown", {"msisdn": None, "user": "C-NOBODY"}),
                               ("stranger", {"msisdn": STRANGER}))}
    assert len({shape(a) for a in answers.values()}) == 1, answers
    assert answers["contract"]["contract"] != answers["unknown"]["contract"]


def test_a_request_names_the_user_once() -> None:
    with pytest.raises(ValidationError) as err:
        DevicesRequest(msisdn=PAUL_MSISDN, user=PAUL)
    assert err.value.field == "user"
    with pytest.raises(ValidationError):
        DevicesRequest.from_wire({"op": "devices", "user": "has space"})


def test_a_pseudonym_names_nobody_once_the_pairing_ended(registry: Registry) -> None:
    pseudonym = registry.app_request("care", PairRequest(PAUL_MSISDN, "support")
                                     ).reply.to_wire()["contract"]
    _paired_health(registry)
    health_ref = devices(registry, "health", msisdn=PAUL_MSISDN)["contract"]
    assert registry.store.user_ref_contract("health", health_ref) == PAUL
    assert devices(registry, "care", user=pseudonym)["status"] == "ok"
    registry.app_request("health", UnpairRequest(msisdn=PAUL_MSISDN))
    assert never_paired(devices(registry, "health", user=health_ref))
