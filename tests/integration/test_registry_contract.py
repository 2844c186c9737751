"""The wire contract holds for real traffic: every message a device (the agent's own
publisher), the apps, the user agent, the operator and the bridge exchanged in a full run
over Mosquitto is checked against the CDDL, and the AsyncAPI document names every topic
and payload."""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.publisher import Publisher
from broker_bridge.model import OtherOperator
from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from lpa_emulator.smdp.report import InstallationReport
from mps_sdk.client import PairingClient
from mps_sdk.consent import ConsentClient
from mps_sdk.errors import RequestError
from mps_testbed.stack import Mosquitto
from mps_wire import codec, schema
from mps_wire.cose import decode_sign1
from mps_wire.errors import ValidationError
from mps_wire.topics import Topics
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    MqttProbe,
    Received,
    iccid_for,
    imsi_for,
    make_device,
    paul_and_apps,
    random_topics,
    running_bridge,
    wait_until,
)

pytest.importorskip("pycddl", reason="checking against the CDDL needs pycddl")

RULE_BY_LEAF = {
    ("devices", "register"): "device-info",
    ("devices", "reply"): "registration-reply",
    ("devices", "state"): "device-state",
    ("apps", "requests"): "app-request",
    ("apps", "replies"): "app-reply",
    ("apps", "events"): "app-event",
    ("users", "consent"): "consent-prompts",
    ("users", "requests"): "user-request",
    ("users", "replies"): "user-reply",
    ("operator", "requests"): "operator-request",
    ("operator", "replies"): "operator-reply",
    ("operator", "installations"): "installation-result",
    ("devices", "orders"): "esim-order",
    ("devices", "order-results"): "esim-order-result",
    ("devices", "esim-requests"): "esim-device-ask",
}


#: Published by the eIM (see test_eim) and by the consent page (see test_consent_codes): not
#: part of the registry's own full run below.
OTHER_RULES = {("operator", "profiles"): "profile-change",
               ("users", "sign-in"): "sign-in-code"}


def rule_of(topics: Topics, topic: str) -> str:
    for kind, leaf in (*RULE_BY_LEAF, *OTHER_RULES):
        if kind == "operator" and topic == topics.operator(leaf):
            return {**RULE_BY_LEAF, **OTHER_RULES}[(kind, leaf)]
    kind, _ident, leaf = topics.parse(topic)
    return {**RULE_BY_LEAF, **OTHER_RULES}[(kind, leaf)]


@pytest.fixture
def topics() -> Topics:
    return random_topics()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "registry.db") as s:
        paul_and_apps(s, devices=0)
        s.upsert_operator(OtherOperator("other", "Other Mobile", "mqtts://reg.other.example",
                                        "mps/v1", ("+49160",)))
        yield s


def installation_report(eid: str, iccid: str, *, transaction: str = "t-1",
                        result: str = "installed") -> InstallationReport:
    """A report as the SM-DP+ sends it (its own class), with stand-in signature bytes."""
    return InstallationReport(
        eid=eid, iccid=iccid, imsi=imsi_for(1), msisdn=None, result=result,
        transaction=transaction, matching_id="MATCH-1", smdp="smdp.operator.example",
        ts=1_700_000_000_000, pir=b"\x30\x03\x02\x01\x00", euicc_certificate=b"\x30\x00",
        eum_certificate=b"\x30\x00", reason=None if result == "installed" else "8")


def _refused(call: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(RequestError):
        call(*args, **kw)


def _esim_round(broker: str, topics: Topics, store: SqliteStore) -> None:
    """A device asks for a profile operation, the user approves it on the page, the bridge
    sends the signed order, the device reports it done."""
    eid = make_device(1).eid
    with MqttProbe(broker) as device:
        device.client.publish(topics.device_esim_requests(eid), codec.encode(
            {"v": 1, "action": "disable", "iccid": iccid_for(1)}), qos=1).wait_for_publish(5)
        device.listen(topics.device_orders(eid))
        portal = Registry(store).portal(PAUL)
        assert wait_until(lambda: bool(portal.esim_requests()), 5)
        (request,) = portal.esim_requests()
        portal.approve_esim(request.request)
        order = device.next(timeout=5)
        assert decode_sign1(order.payload)
        device.client.publish(topics.device_order_results(eid), codec.encode(
            {"v": 1, "op": request.request, "eid": eid, "outcome": "done"}), qos=1
        ).wait_for_publish(5)
        assert wait_until(lambda: portal.esim_requests(open_only=False)[0].state == "done", 5)


def _scenario(broker: str, topics: Topics, tmp_path: Path, store: SqliteStore) -> None:
    """A run that makes every kind of message at least once."""
    with MqttProbe(broker) as smdp:
        smdp.client.publish(topics.operator("installations"), codec.encode(
            installation_report(make_device(1).eid, iccid_for(1)).to_wire(1)), qos=1
        ).wait_for_publish(5)
    for n in (1, 2):
        with Publisher(broker, make_device(n).eid, prefix=topics.prefix,
                       presence=True) as device:
            assert device.register(make_device(n), timeout=5).is_ok
    with Publisher(broker, make_device(8, sub=88).eid, prefix=topics.prefix) as stranger:
        assert not stranger.register(make_device(8, sub=88), timeout=5).is_ok

    opts = {"topics": topics, "timeout": 5}
    with PairingClient(broker, "health", **opts) as health, \
            PairingClient(broker, "care", **opts) as care, \
            PairingClient(broker, "coach", **opts) as coach, \
            PairingClient(broker, "tracker", **opts) as tracker, \
            ConsentClient(broker, PAUL, **opts) as user:
        pending = health.pair(PAUL_MSISDN, "health-monitoring")
        user.consent()
        user.approve(user.wait_for_prompt(app="health", timeout=5).prompt)
        health.wait_for_decision(pending.pairing, timeout=5)
        assert care.pair(PAUL_MSISDN, "support").active
        coach_pending = coach.pair(PAUL_MSISDN, "fitness")
        user.deny(user.wait_for_prompt(app="coach", timeout=5).prompt)
        coach.wait_for_decision(coach_pending.pairing, timeout=5)
        health.devices(PAUL_MSISDN)
        care.fetch_events(0, limit=2)
        _refused(tracker.pair, PAUL_MSISDN, "fitness")
        _refused(care.pair, "+4916012345678", "support")  # redirect (a partner)
        assert health.pair("+4916012345678", "health-monitoring").state == "pending"
        _refused(care.devices, "+4915199999999")  # not found (a partner)
        _refused(user.approve, "cp-unknown")
        with Publisher(broker, make_device(3).eid, prefix=topics.prefix) as device:
            device.register(make_device(3), timeout=5)  # device-added
        with Publisher(broker, make_device(1).eid, prefix=topics.prefix) as device:
            device.register(make_device(1), timeout=5)  # unchanged
            changed = replace(make_device(1), seq=2, imei=make_device(30).imei,
                              ip=("10.9.0.1",))
            reply = device.register(changed, timeout=5)  # device-updated
            assert reply.body["changes"] == ["device-swap", "ip"]
        with MqttProbe(broker) as operator:
            replies = topics.operator_replies("crm")
            operator.listen(replies)
            for msg in ({"op": "add-contract", "contract": "C-X", "holder": "X",
                         "msisdns": ["+4915100000090"]},
                        {"op": "add-number", "msisdn": "+4915100000091", "contract": "C-X"},
                        {"op": "port-in", "msisdn": "+4915100000092", "contract": "C-X"},
                        {"op": "add-subscription", "iccid": iccid_for(40), "imsi": imsi_for(40),
                         "msisdn": "+4915100000093", "contract": "C-X"},
                        {"op": "remove-number", "msisdn": "+4915100000091"},
                        {"op": "port-out", "msisdn": "+4915100000092", "operator": "other"},
                        {"op": "remove-subscription", "iccid": iccid_for(2)},  # removed
                        {"op": "remove-subscription", "iccid": iccid_for(77)}):  # error
                operator.request(topics.operator_requests("crm"), codec.encode(msg), replies)
        (granted,) = [g for g in user.consent().granted if g.app == "health"]
        Registry(store).portal(PAUL).set_view(granted.pairing, fields=["ip"])  # view-changed
        _esim_round(broker, topics, store)
        user.withdraw(app="health")  # pairing-ended
        care.unpair(PAUL_MSISDN)
        # a prompt left to expire: pairing-denied (expired)
        coach.pair(PAUL_MSISDN, "fitness")


def test_every_message_of_a_full_run_matches_the_cddl(
        store: SqliteStore, mosquitto: Mosquitto, topics: Topics, tmp_path: Path) -> None:
    with MqttProbe(mosquitto.url) as tap:
        tap.listen(f"{topics.prefix}/#")
        with running_bridge(store, mosquitto.url, topics, consent_ttl=0.5):
            _scenario(mosquitto.url, topics, tmp_path, store)
            assert wait_until(lambda: any(e.kind.value == "pairing-denied" and
                                          e.payload.get("reason") == "expired"
                                          for e in store.events_since("coach", 0)), 5)
            time.sleep(0.2)  # the last publications reach the tap
        captured: list[Received] = []
        while True:
            try:
                captured.append(tap.next(timeout=0.3))
            except queue.Empty:
                break

    rules: Counter[str] = Counter()
    shapes: set[str] = set()
    for message in captured:
        rule = rule_of(topics, message.topic)
        if not message.payload:
            continue  # a retained message being cleared
        payload = message.payload
        try:
            if rule == "esim-order":  # signed: the COSE_Sign1, then the order inside
                schema.validate("signed-esim-order", payload)
                payload = decode_sign1(payload).payload
            schema.validate(rule, payload)
        except ValidationError as exc:
            pytest.fail(f"{message.topic}: {codec.decode(message.payload)}\n{exc}")
        rules[rule] += 1
        body = codec.decode(payload, max_size=1 << 20)
        shapes.add(f"{rule}:{body.get('event') or body.get('op') or body.get('status')}")
    assert set(rules) == set(RULE_BY_LEAF.values())
    events = {s.split(":")[1] for s in shapes if s.startswith("app-event:")}
    assert events == {"device-added", "device-updated", "device-removed", "pairing-granted",
                      "pairing-denied", "pairing-ended", "view-changed"}
    statuses = {s.split(":")[1] for s in shapes if s.startswith("app-reply:")}
    assert statuses == {"ok", "pending", "denied", "redirect", "error"}
    operator_ops = {s.split(":")[1] for s in shapes if s.startswith("operator-request:")}
    assert len(operator_ops) == 7
    assert rules["installation-result"] == 1


def test_the_cddl_refuses_what_the_contract_does_not_allow() -> None:
    good = make_device(1).to_wire()
    schema.validate("device-info", codec.encode(good))
    for bad in ({**good, "imei": "12345"}, {**good, "v": 2},
                {k: v for k, v in good.items() if k != "model"}, {**good, "extra": 1}):
        with pytest.raises(ValidationError):
            schema.validate("device-info", codec.encode(bad))
    with pytest.raises(ValueError, match="no rule"):
        schema.validate("no-such-rule", b"\xa0")


def test_the_asyncapi_document_names_every_topic_and_payload() -> None:
    yaml = pytest.importorskip("yaml", reason="reading the AsyncAPI document needs PyYAML")
    doc = yaml.safe_load(schema.ASYNCAPI_FILE.read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("3.")
    assert doc["defaultContentType"] == "application/cbor"
    t = Topics()
    built = {
        t.device_register("EID"), t.device_reply("EID"), t.device_state("EID"),
        t.app_requests("APP"), t.app_replies("APP"), t.app_events("APP"),
        t.user_consent("CONTRACT"), t.user_requests("CONTRACT"),
        t.user_replies("CONTRACT"), t.user_sign_in("CONTRACT"),
        t.operator_requests("SOURCE"),
        t.operator_replies("SOURCE"), t.operator("installations"),
        t.device_orders("EID"), t.device_order_results("EID"), t.device_esim_requests("EID"),
        t.operator("profiles"),
    }
    expected = {topic.replace("/EID/", "/{eid}/").replace("/APP/", "/{app}/")
                .replace("/CONTRACT/", "/{contract}/").replace("/SOURCE/", "/{source}/")
                for topic in built}
    assert {c["address"] for c in doc["channels"].values()} == expected
    defined = set(schema.rules())
    named = {m["x-cddl"] for m in doc["components"]["messages"].values()}
    assert named <= defined
    assert named == set(RULE_BY_LEAF.values()) | set(OTHER_RULES.values())
    # Each channel's message is the one whose payload its topic carries.
    for channel in doc["channels"].values():
        address = channel["address"].replace("{", "x").replace("}", "x")
        (message,) = channel["messages"].values()
        name = message["$ref"].rsplit("/", 1)[-1]
        assert doc["components"]["messages"][name]["x-cddl"] == rule_of(t, address)
    # Every operation points at a channel that exists.
    for operation in doc["operations"].values():
        assert operation["channel"]["$ref"].rsplit("/", 1)[-1] in doc["channels"]
