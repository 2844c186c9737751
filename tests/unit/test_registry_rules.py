"""The registry's rules without a broker: request parsing, the operator file's new parts,
number routing, pseudonyms, consent and trust changes, and the audit trail."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker_bridge.errors import OperatorDataError
from broker_bridge.model import App, Change, OtherOperator, PairingState, TrustLevel
from broker_bridge.operator import import_operator_file, parse_operator_data
from broker_bridge.registry import Registry
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from broker_bridge.storage.sql import SqlStore
from mps_mqtt.client import BrokerURL
from mps_wire import codec
from mps_wire.errors import DecodeError, ErrorCode, ValidationError
from mps_wire.messages import (
    ConsentAnswerRequest,
    Decision,
    EventKind,
    EventsSinceRequest,
    OperatorOp,
    PairRequest,
    Reason,
    Status,
    UnpairRequest,
    parse_app_request,
    parse_operator_request,
    parse_user_request,
)
from mps_wire.topics import Topics
from tests.helpers import (
    LENA,
    PAUL,
    PAUL_MSISDN,
    iccid_for,
    imsi_for,
    make_device,
    paul_and_apps,
)
from tests.postgres_support import BACKENDS, open_store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with open_store(request.param, tmp_path) as s:
        paul_and_apps(s)
        yield s


@pytest.fixture
def registry(store: SqlStore) -> Registry:
    return Registry(store)


# --- requests on the wire ------------------------------------------------------------

def test_app_requests_parse_and_round_trip() -> None:
    for request in (PairRequest(PAUL_MSISDN, "health-monitoring"),
                    UnpairRequest(pairing="pr-1"), UnpairRequest(msisdn=PAUL_MSISDN),
                    EventsSinceRequest(7, 50)):
        assert parse_app_request(codec.decode(codec.encode(request.to_wire()))) == request
    assert parse_app_request({"op": "events-since", "seq": 3}) == EventsSinceRequest(3, 100)
    assert parse_app_request({"op": "pair", "msisdn": "+49 151 12345678",
                              "purpose": "x"}).msisdn == PAUL_MSISDN  # type: ignore[union-attr]


@pytest.mark.parametrize(("msg", "field", "code"), [
    ({"op": "pair", "msisdn": PAUL_MSISDN}, "purpose", ErrorCode.BAD_REQUEST),
    ({"op": "pair", "msisdn": PAUL_MSISDN, "purpose": "Has Spaces"}, "purpose",
     ErrorCode.BAD_REQUEST),
    ({"op": "pair", "msisdn": 4915112345678, "purpose": "x"}, "msisdn",
     ErrorCode.BAD_REQUEST),
    ({"op": "pair", "msisdn": "015112345678", "purpose": "x"}, "msisdn",
     ErrorCode.INVALID_IDENTIFIER),
    ({"op": "pair", "msisdn": PAUL_MSISDN, "purpose": "x", "force": True}, "force",
     ErrorCode.BAD_REQUEST),
    ({"op": "unpair", "msisdn": PAUL_MSISDN, "pairing": "pr-1"}, "pairing",
     ErrorCode.BAD_REQUEST),
    ({"op": "unpair", "pairing": "a/b"}, "pairing", ErrorCode.BAD_REQUEST),
    ({"op": "events-since", "seq": True}, "seq", ErrorCode.BAD_REQUEST),
    ({"op": "events-since", "seq": 0, "limit": 0}, "limit", ErrorCode.BAD_REQUEST),
    ({"op": "events-since", "seq": 0, "limit": 501}, "limit", ErrorCode.BAD_REQUEST),
    ({"op": "devices"}, "msisdn", ErrorCode.BAD_REQUEST),
    ({"op": 1}, "op", ErrorCode.BAD_REQUEST),
])
def test_bad_app_requests_name_the_field(msg: dict[str, Any], field: str,
                                         code: ErrorCode) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_app_request(msg)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_user_and_operator_requests() -> None:
    answer = ConsentAnswerRequest("cp-1", Decision.DENY)
    assert parse_user_request(answer.to_wire()) == answer
    with pytest.raises(ValidationError, match="approve"):
        parse_user_request({"op": "consent-answer", "prompt": "cp-1", "decision": "yes"})
    with pytest.raises(ValidationError):
        parse_user_request({"op": "consent-withdraw", "app": "a", "pairing": "p"})
    request = parse_operator_request({"op": "add-subscription", "iccid": iccid_for(1),
                                      "imsi": imsi_for(1), "contract": "C-1"})
    assert (request.op, request.msisdn) == (OperatorOp.ADD_SUBSCRIPTION, None)
    assert parse_operator_request(request.to_wire()) == request
    with pytest.raises(ValidationError) as caught:
        parse_operator_request({"op": "add-contract", "contract": "C-1", "holder": " "})
    assert caught.value.field == "holder"
    with pytest.raises(ValidationError) as caught:
        parse_operator_request({"op": "port-out", "msisdn": PAUL_MSISDN})
    assert caught.value.field == "operator"


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["op", "msisdn", "purpose", "pairing", "seq", "limit",
                                        "prompt", "decision", "app", "iccid", "contract"]),
                       st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                       | st.lists(st.text(max_size=3), max_size=3), max_size=5))
def test_request_parsers_only_raise_validation_errors(msg: dict[str, Any]) -> None:
    for parse in (parse_app_request, parse_user_request, parse_operator_request):
        with contextlib.suppress(ValidationError):
            parse(msg)
    with contextlib.suppress(DecodeError, ValidationError):
        parse_app_request(codec.decode(cbor2.dumps(msg)))


def test_topics_of_users_and_operators() -> None:
    t = Topics("op/x")
    assert t.user_requests("C-1") == "op/x/users/C-1/requests"
    assert t.operator_replies("crm") == "op/x/operator/crm/replies"
    assert t.parse("op/x/operator/crm/requests") == ("operator", "crm", "requests")
    assert Topics.shared("g", t.all_user_requests()) == "$share/g/op/x/users/+/requests"
    with pytest.raises(ValueError, match="operator source"):
        t.parse("op/x/operator/a+b/requests")


# --- the operator file ---------------------------------------------------------------

def _doc(**extra: Any) -> dict[str, Any]:
    return {"contracts": [{"id": "C-1", "holder": "Paul", "msisdns": ["+4915100000001"],
                           "subscriptions": [{"iccid": iccid_for(1), "imsi": imsi_for(1)}]}],
            **extra}


def test_operators_ported_numbers_and_standing_consent(tmp_path: Path) -> None:
    doc = _doc(
        apps=[{"id": "p", "name": "P", "trust": "partner"},
              {"id": "q", "name": "Q", "trust": "partner", "standing_consent": False},
              {"id": "v", "name": "V", "trust": "verified"}],
        operators=[{"id": "other", "name": "Other", "registry": "mqtts://reg.example:8883",
                    "number_prefixes": ["+49160", "+49176"]}],
        ported=[{"msisdn": "+4915199990000", "operator": "other"}])
    data = parse_operator_data(doc, "ops.json")
    assert [(a.id, a.standing_consent) for a in data.apps] == [("p", True), ("q", False),
                                                               ("v", False)]
    assert data.operators == (OtherOperator("other", "Other", "mqtts://reg.example:8883",
                                            "mps/v1", ("+49160", "+49176")),)
    path = tmp_path / "ops.json"
    path.write_text(json.dumps(doc))
    with SqliteStore(tmp_path / "r.db") as store:
        report = import_operator_file(store, path)
        assert report.changes["operators"][Change.ADDED] == ["other"]
        assert report.changes["ported"][Change.ADDED] == ["+4915199990000"]
        assert store.ported_to("+4915199990000") == data.operators[0]
        again = import_operator_file(store, path)
        assert again.count(Change.ADDED) == again.count(Change.UPDATED) == 0
        assert [e.action for e in store.audit()].count("operator:import") == 1


@pytest.mark.parametrize(("extra", "where", "what"), [
    ({"apps": [{"id": "a", "name": "A", "trust": "trusted"}]}, "apps[0].trust",
     "'trusted' is now 'partner' with standing_consent = true"),
    ({"apps": [{"id": "a", "name": "A", "trust": "verified", "standing_consent": True}]},
     "apps[0].standing_consent", "only partner apps"),
    ({"apps": [{"id": "a", "name": "A", "trust": "partner", "standing_consent": "yes"}]},
     "apps[0].standing_consent", "true or false"),
    ({"operators": [{"id": "o", "name": "O", "registry": "http://x"}]},
     "operators[0].registry", "mqtt://"),
    ({"operators": [{"id": "o", "name": "O", "registry": "mqtt://x",
                     "number_prefixes": ["49160"]}]},
     "operators[0].number_prefixes[0]", "+ and 1 to 15 digits"),
    ({"ported": [{"msisdn": "+4915100000001", "operator": "o"}]}, "ported[0].msisdn",
     "listed for contract C-1"),
    ({"ported": [{"operator": "o"}]}, "ported[0].msisdn", "is required"),
])
def test_bad_new_entries_are_named(extra: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(OperatorDataError) as caught:
        parse_operator_data(_doc(**extra), "ops.toml")
    assert any(p.where == where and what in p.what for p in caught.value.problems), \
        caught.value.problems


def test_a_ported_number_needs_a_known_operator(tmp_path: Path) -> None:
    path = tmp_path / "ops.json"
    path.write_text(json.dumps(_doc(ported=[{"msisdn": "+4915199990000",
                                             "operator": "ghost"}])))
    with SqliteStore(tmp_path / "r.db") as store:
        with pytest.raises(OperatorDataError, match=r"ported\[0\]\.operator"):
            import_operator_file(store, path)
        assert store.contract("C-1") is None  # all or nothing


# --- routing, pseudonyms, consent ----------------------------------------------------

def test_routing_prefers_our_numbers_then_ported_then_prefixes(
        store: SqliteStore, registry: Registry) -> None:
    store.upsert_operator(OtherOperator("a", "A", "mqtt://a", "mps/v1", ("+4915",)))
    store.upsert_operator(OtherOperator("b", "B", "mqtt://b", "b/v1", ("+491512",)))
    assert registry.route(PAUL_MSISDN) == store.contract(PAUL)  # ours despite the prefixes
    routed = registry.route("+4915122223333")
    assert not isinstance(routed, type(store.contract(PAUL)))
    assert routed.status is Status.REDIRECT and routed.body["operator"] == "b"  # longest
    assert routed.body["prefix"] == "b/v1"
    assert registry.route("+4915922223333").body["operator"] == "a"  # type: ignore[union-attr]
    store.set_ported("+4915922223333", "b")
    assert registry.route("+4915922223333").body["operator"] == "b"  # type: ignore[union-attr]
    unknown = registry.route("+3312345678")
    assert unknown.status is Status.ERROR and unknown.code is ErrorCode.NOT_FOUND  # type: ignore[union-attr]


def test_pseudonyms_are_stable_and_kept_with_the_database(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with SqliteStore(db) as s:
        paul_and_apps(s)
        app = s.app("health")
        assert app is not None
        first = Registry(s).view(app)
        ids = first.device_id(make_device(1).eid), first.contract_ref(PAUL)
    with SqliteStore(db) as s:
        again = Registry(s).view(app)
        assert (again.device_id(make_device(1).eid), again.contract_ref(PAUL)) == ids
        other = Registry(s).view(App("care", "C", TrustLevel.PARTNER))
        assert other.device_id(make_device(1).eid) != ids[0]
        assert other.contract_ref(PAUL) == PAUL
        assert len(ids[0]) == 32 and ids[0].startswith("d")


def test_pairing_repeats_and_prompts(store: SqliteStore) -> None:
    now = [1_000_000]
    registry = Registry(store, consent_ttl=60, clock=lambda: now[0])
    first = registry.pair("health", PairRequest(PAUL_MSISDN, "health-monitoring"))
    assert first.reply.status is Status.PENDING and first.effects.consent == {PAUL}
    again = registry.pair("health", PairRequest(PAUL_MSISDN, "health-monitoring"))
    assert again.reply.body["pairing"] == first.reply.body["pairing"]
    assert not again.effects  # a repeat changes nothing
    view = registry.consent_view(PAUL)
    assert [p["app"] for p in view["prompts"]] == ["health"]
    revision, snapshot = registry.consent_snapshot(PAUL)
    assert snapshot["rev"] == revision == 1
    # Past its expiry the prompt is no longer shown; housekeeping then expires it.
    now[0] += 61_000
    assert registry.consent_view(PAUL)["prompts"] == []
    effects = registry.expire_prompts()
    assert [e.kind for e in effects.events] == [EventKind.PAIRING_DENIED]
    assert effects.events[0].payload["reason"] == Reason.EXPIRED
    assert registry.expire_prompts().events == []  # once only
    # A new request after expiry makes a new prompt.
    third = registry.pair("health", PairRequest(PAUL_MSISDN, "health-monitoring"))
    assert third.reply.body["pairing"] != first.reply.body["pairing"]


def test_losing_a_purpose_ends_the_pairings_made_for_it(
        store: SqliteStore, registry: Registry) -> None:
    granted = registry.pair("care", PairRequest(PAUL_MSISDN, "support"))
    assert granted.reply.is_ok
    change, effects = registry.put_app(App("care", "Operator care", TrustLevel.PARTNER,
                                           ("billing",), standing_consent=True))
    assert change is Change.UPDATED
    assert [(e.kind, e.payload["reason"]) for e in effects.events] == [
        (EventKind.PAIRING_ENDED, Reason.PURPOSE_REVOKED)]
    pairing = store.pairing(granted.reply.body["pairing"])
    assert pairing is not None and pairing.state is PairingState.ENDED
    assert pairing.ended_by == "operator:cli"


def test_a_user_consent_survives_a_change_of_trust(store: SqliteStore,
                                                   registry: Registry) -> None:
    pending = registry.pair("coach", PairRequest(PAUL_MSISDN, "fitness"))
    prompt = registry.consent_view(PAUL)["prompts"][0]["prompt"]
    assert registry.answer(PAUL, prompt, Decision.APPROVE).reply.is_ok
    _change, effects = registry.put_app(App("coach", "Coach", TrustLevel.VERIFIED,
                                            ("fitness",)))
    assert effects.events == []
    records = registry.devices("coach", parse_app_request(
        {"op": "devices", "msisdn": PAUL_MSISDN})).reply.body["devices"]  # type: ignore[arg-type]
    assert len(records) == 4 and all("imei" not in r for r in records)  # now sees less
    assert store.pairing(pending.reply.body["pairing"]).state is PairingState.ACTIVE  # type: ignore[union-attr]


def test_a_refused_answer_changes_nothing_but_the_audit(store: SqliteStore,
                                                        registry: Registry) -> None:
    registry.pair("health", PairRequest(PAUL_MSISDN, "health-monitoring"))
    prompt = registry.consent_view(PAUL)["prompts"][0]["prompt"]
    before = store.pairings()
    wrong_contract = registry.answer(LENA, prompt, Decision.APPROVE).reply
    assert (wrong_contract.code, wrong_contract.body["reason"]) == (
        ErrorCode.NOT_FOUND, Reason.UNKNOWN_PROMPT)
    assert store.pairings() == before
    assert store.audit()[-1].outcome == "not-found"


def test_the_bridge_checks_its_options(store: SqliteStore) -> None:
    broker = BrokerURL.parse("mqtt://127.0.0.1:1")
    for bad in ({"consent_ttl": 0}, {"sweep_interval": -1}, {"relay_grace": True}):
        with pytest.raises(ValueError):
            Bridge(store, broker, **bad)  # type: ignore[arg-type]
