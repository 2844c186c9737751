"""Every message type of the wire contract against the CDDL and the AsyncAPI document.

The field tables (``cls.wire``) are the code's definition of each message: instances
encoded through them must match the message's CDDL rule, CDDL-conforming maps must decode
through them, and the AsyncAPI document must name the same messages, keys and choices.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_wire import codec, messages, orders, records, reports, requests, schema, signin
from mps_wire.errors import ErrorCode
from mps_wire.fields import Choice, WireMessage, WireTable
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import (
    ChangeKind,
    DeviceInfo,
    EventKind,
    InstallationResult,
    ModelInfo,
    OperatorOp,
    OperatorRequest,
    ProfileChange,
    Reply,
    Status,
)
from mps_wire.orders import EsimDeviceAsk, EsimOrder, EsimOrderResult
from mps_wire.records import BindingChange, DevicePresence, DeviceRecord, Event
from mps_wire.requests import APP_REQUESTS, OPERATOR_VARIANTS, USER_REQUESTS
from mps_wire.topics import Topics
from tests.wire_samples import sample_event, sample_messages, sample_record

yaml = pytest.importorskip("yaml", reason="reading the AsyncAPI document needs PyYAML")

SAMPLES = sample_messages()


def message_types() -> set[type[WireMessage]]:
    """Every message class the wire modules define."""
    found = set()
    for module in (messages, requests, reports, records, orders, signin):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, WireMessage) and value is not WireMessage:
                found.add(value)
    return found


def conforms(message: WireMessage) -> bytes:
    raw = codec.encode(message.to_wire())
    schema.validate(type(message).wire.rule, raw)
    return raw


def test_every_message_type_has_samples_and_a_cddl_rule() -> None:
    assert set(SAMPLES) == message_types()
    defined = set(schema.rules())
    for cls in SAMPLES:
        assert cls.wire.rule in defined, cls.__name__


@pytest.mark.parametrize("message", [m for items in SAMPLES.values() for m in items],
                         ids=lambda m: type(m).__name__)
def test_samples_match_their_cddl_rule_and_round_trip(message: WireMessage) -> None:
    raw = conforms(message)
    assert type(message).from_wire(codec.decode(raw)) == message


# Maps written by hand from the CDDL, not by the code: the tables must read them.
CONFORMING: list[tuple[type[WireMessage], dict[str, Any]]] = [
    (ModelInfo, {"manufacturer": "u-blox", "model": "SARA-R5", "revision": "A"}),
    (DeviceInfo, {"v": 1, "eid": make_eid("89049032" + "0" * 20 + "42"),
                  "imei": make_imei("35209900", "000042"),
                  "iccid": make_iccid("8949000000000000042"), "ip": ["2001:db8::1"],
                  "capabilities": ["lte", "nb-iot"],
                  "model": {"manufacturer": "Quectel", "model": "BG96", "revision": "R2"},
                  "profile": "pi-bg96", "seq": 3, "ts": 0}),
    (Reply, {"status": "redirect", "message": "ask operator B", "msisdn": "+4915112345678",
             "operator": "op-b", "name": "B", "registry": "mqtts://b.example:8883",
             "prefix": "mps/v1"}),
    (Reply, {"status": "ok", "events": [], "last": 0, "more": False}),
    (requests.UnpairRequest, {"op": "unpair", "pairing": "pair-7"}),
    (requests.EventsSinceRequest, {"op": "events-since", "seq": 12}),
    (OperatorRequest, {"op": "add-contract", "contract": "c-9", "holder": "Zoë"}),
    (OperatorRequest, {"op": "port-out", "msisdn": "+4915112345678", "operator": "op-b"}),
    (DeviceRecord, {"device_id": "d-1", "ip": [], "capabilities": [],
                    "model": {"manufacturer": "", "model": "", "revision": ""},
                    "registered_at": 1, "updated_at": 2}),
    (Event, {"event": "pairing-ended", "seq": 9, "ts": 5, "pairing": "p-1",
             "contract": "c-1", "purpose": "fitness", "reason": "unpaired"}),
]


@pytest.mark.parametrize(("cls", "wire"), CONFORMING, ids=lambda v: getattr(v, "__name__", ""))
def test_cddl_conforming_maps_decode_and_encode_back(cls: type[WireMessage],
                                                     wire: dict[str, Any]) -> None:
    schema.validate(cls.wire.rule, codec.encode(wire))
    message = cls.from_wire(wire)
    back = message.to_wire()
    # Defaults the sender left out are sent explicitly, nothing else changes.
    assert {key: back[key] for key in wire} == wire
    assert cls.from_wire(codec.decode(conforms(message))) == message


# --- generated messages --------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", categories=["L", "N", "P"], include_characters=" "),
               max_size=32)
_REF = st.from_regex(r"[A-Za-z0-9_.:@=\-]{1,30}", fullmatch=True)
_MSISDN = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
_UINT = st.integers(0, 2**63 - 1)
_CAPS = st.lists(st.from_regex(r"[a-z0-9][a-z0-9._:\-]{0,20}", fullmatch=True),
                 max_size=5).map(tuple)


@st.composite
def device_infos(draw: st.DrawFn) -> DeviceInfo:
    n = draw(st.integers(0, 999_999))
    return DeviceInfo(
        eid=make_eid(f"{draw(st.integers(0, 10**30 - 1)):030d}"),
        imei=make_imei(f"{draw(st.integers(0, 10**8 - 1)):08d}", f"{n:06d}"),
        iccid=make_iccid(f"89{draw(st.integers(0, 10**16 - 1)):016d}"),
        imsi=draw(st.none() | st.from_regex(r"[0-9]{6,15}", fullmatch=True)),
        ip=tuple(draw(st.lists(st.ip_addresses().map(str), max_size=4))),
        capabilities=draw(_CAPS),
        model=ModelInfo(draw(_TEXT), draw(_TEXT), draw(_TEXT)),
        profile=draw(st.text(st.characters(codec="utf-8", categories=["L", "N"]),
                             max_size=21)),
        seq=draw(_UINT), ts=draw(_UINT))


@st.composite
def operator_requests(draw: st.DrawFn) -> OperatorRequest:
    op = draw(st.sampled_from(list(OperatorOp)))
    variant = OPERATOR_VARIANTS[op]
    values: dict[str, Any] = {
        "contract": draw(_REF), "operator": draw(_REF), "msisdn": draw(_MSISDN),
        "holder": draw(_TEXT.filter(str.strip)), "imsi": "26201" + "0" * 10,
        "iccid": make_iccid(f"89{draw(st.integers(0, 10**16 - 1)):016d}"),
        "msisdns": tuple(draw(st.lists(_MSISDN, max_size=3))),
    }
    chosen = {f.name for f in variant.fields if f.required or draw(st.booleans())}
    return OperatorRequest(op, **{k: v for k, v in values.items() if k in chosen})


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(list(EventKind)))
    event = sample_event(kind, seq=draw(st.integers(1, 2**40)))
    if kind is EventKind.DEVICE_UPDATED:
        changes = draw(st.lists(st.sampled_from([c.value for c in ChangeKind]), max_size=3))
        return Event(**{**_fields(event), "changes": tuple(changes)})
    if kind is EventKind.PAIRING_GRANTED:
        count = draw(st.integers(0, 3))
        records = tuple(sample_record(n, partner=n % 2 == 0) for n in range(1, count + 1))
        return Event(**{**_fields(event), "devices": records})
    return event


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


@settings(max_examples=60, deadline=None)
@given(st.one_of(device_infos(), operator_requests(), events()))
def test_generated_messages_match_the_cddl(message: WireMessage) -> None:
    raw = conforms(message)
    assert type(message).from_wire(codec.decode(raw)) == message


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(ErrorCode)), _TEXT, st.sampled_from(
    [Status.ERROR, Status.DENIED, Status.PENDING]))
def test_generated_error_replies_match_the_cddl(code: ErrorCode, text: str,
                                                status: Status) -> None:
    conforms(Reply.error(code, text, status=status))


# --- the AsyncAPI document -----------------------------------------------------------------

# The CDDL rule of each AsyncAPI message and the code's message types for it; maps the
# code builds without a table (presence, retained prompts) have none.
TABLES_BY_RULE: dict[str, list[type[WireMessage]]] = {
    "device-info": [DeviceInfo],
    "registration-reply": [Reply], "app-reply": [Reply], "user-reply": [Reply],
    "operator-reply": [Reply],
    "app-request": list(APP_REQUESTS.values()),
    "user-request": list(USER_REQUESTS.values()),
    "operator-request": [OperatorRequest],
    "installation-result": [InstallationResult],
    "profile-change": [ProfileChange],
    "app-event": [Event],
    "device-state": [], "consent-prompts": [],
    "esim-order": [EsimOrder], "esim-order-result": [EsimOrderResult],
    "esim-device-ask": [EsimDeviceAsk],
    "sign-in-code": [signin.SignInCode],
}


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(schema.ASYNCAPI_FILE.read_text(encoding="utf-8"))
    return doc


def payload(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A payload schema with its $ref followed."""
    while "$ref" in node:
        target: Any = doc
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


OPERATOR_OPS = [op.value for op in OperatorOp]


def keys_of(tables: Iterable[WireTable]) -> set[str]:
    return set().union(*(t.keys for t in tables))


def test_asyncapi_names_exactly_the_messages_the_code_defines(
        asyncapi: dict[str, Any]) -> None:
    named = {m["x-cddl"] for m in asyncapi["components"]["messages"].values()}
    assert named == set(TABLES_BY_RULE)
    typed = {cls for classes in TABLES_BY_RULE.values() for cls in classes}
    # Every top-level message type is carried by some topic; the others are nested.
    assert message_types() - typed == {ModelInfo, DeviceRecord, DevicePresence, BindingChange}
    for cls in typed:
        allowed = schema.rules()
        assert cls.wire.rule in allowed


@pytest.mark.parametrize("rule", [r for r, classes in TABLES_BY_RULE.items()
                                  if classes and classes != [Reply]])
def test_asyncapi_payload_keys_are_the_field_tables(asyncapi: dict[str, Any],
                                                    rule: str) -> None:
    (message,) = [m for m in asyncapi["components"]["messages"].values()
                  if m["x-cddl"] == rule]
    body = payload(asyncapi, message["payload"])
    tables = [cls.wire for cls in TABLES_BY_RULE[rule]]
    assert set(body["properties"]) == keys_of(tables)
    # Required are the keys every variant of the message requires.
    assert set(body["required"]) == set.intersection(*(set(t.required_keys)
                                                       for t in tables))
    for table in tables:
        for field in table.fields:
            if isinstance(field.kind, Choice):
                assert body["properties"][field.wire_key]["enum"] == list(field.kind.choices)
    if rule.endswith("-request"):
        ops = [str(t.consts["op"]) for t in tables if "op" in t.consts]
        assert sorted(body["properties"]["op"]["enum"]) == sorted(ops or OPERATOR_OPS)


def test_asyncapi_shared_schemas_are_the_field_tables(asyncapi: dict[str, Any]) -> None:
    schemas = asyncapi["components"]["schemas"]
    for name, cls in (("model", ModelInfo), ("deviceRecord", DeviceRecord)):
        assert set(schemas[name]["properties"]) == cls.wire.keys, name
        assert set(schemas[name]["required"]) == cls.wire.required_keys, name
    reply = Reply.wire
    assert schemas["reply"]["required"] == sorted(reply.required_keys)
    for key in ("status", "code"):
        kind = reply.field(key).kind
        assert isinstance(kind, Choice)
        assert schemas["reply"]["properties"][key]["enum"] == list(kind.choices)
    event = asyncapi["components"]["messages"]["appEvent"]["payload"]["properties"]
    assert event["changes"]["items"]["enum"] == [c.value for c in ChangeKind]


def test_asyncapi_channels_are_the_topics(asyncapi: dict[str, Any]) -> None:
    t = Topics()
    built = {
        "deviceRegister": t.device_register("EID"), "deviceReply": t.device_reply("EID"),
        "deviceState": t.device_state("EID"), "appRequests": t.app_requests("APP"),
        "deviceOrders": t.device_orders("EID"),
        "deviceOrderResults": t.device_order_results("EID"),
        "deviceEsimRequests": t.device_esim_requests("EID"),
        "appReplies": t.app_replies("APP"), "appEvents": t.app_events("APP"),
        "userConsent": t.user_consent("CONTRACT"),
        "userRequests": t.user_requests("CONTRACT"),
        "userReplies": t.user_replies("CONTRACT"),
        "userSignIn": t.user_sign_in("CONTRACT"),
        "operatorRequests": t.operator_requests("SOURCE"),
        "operatorReplies": t.operator_replies("SOURCE"),
        "operatorInstallations": t.operator(messages.INSTALLATIONS),
        "operatorProfiles": t.operator(messages.PROFILES),
    }
    for name in ("EID", "APP", "CONTRACT", "SOURCE"):
        built = {k: v.replace(f"/{name}/", f"/{{{name.lower()}}}/") for k, v in built.items()}
    assert {name: c["address"] for name, c in asyncapi["channels"].items()} == built
