"""CBOR into the registry: fuzzed payloads on every topic the bridge serves, in-process
(cbor-bridge) and over a real broker (cbor-broker)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import strategies as st

from broker_bridge.model import App, Contract, Installation, Subscription, TrustLevel
from broker_bridge.registry import Outcome
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_bench.fuzz_cases import FuzzFailure, run_cases
from mps_mqtt.client import BrokerURL
from mps_wire import codec
from mps_wire.cose import public_key_der
from mps_wire.errors import ErrorCode
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import DeviceInfo, ModelInfo, Reply, Status
from mps_wire.registration import encode_registration
from mps_wire.topics import Topics

KNOWN = 4  # devices 0..3 hold subscriptions; 0 and 1 have enrolled keys
CONTRACT, MSISDN = "C-FUZZ", "+4915177000001"


def fuzz_device(n: int, **changes: Any) -> DeviceInfo:
    info = DeviceInfo(eid=make_eid(f"89049055{n:022d}"), imei=make_imei("35566600", f"{n:06d}"),
                      iccid=make_iccid(f"894926255{n:09d}"), imsi=f"26255{n:010d}",
                      ip=("10.5.5.5",), capabilities=("lte",),
                      model=ModelInfo("Fuzz", "F1", "1"), profile="fuzz", seq=1, ts=1)
    return DeviceInfo(**{**{f: getattr(info, f) for f in info.__dataclass_fields__},
                         **changes})


def fuzz_key(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(77_000 + n, ec.SECP256R1())


def prepare_fuzz_store(store: SqliteStore) -> None:
    with store.transaction():
        store.upsert_contract(Contract(CONTRACT, "Fuzz"))
        store.upsert_number(MSISDN, CONTRACT)
        for n in range(KNOWN):
            info = fuzz_device(n)
            store.upsert_subscription(Subscription(info.iccid, info.imsi, None, CONTRACT))
        store.upsert_app(App("fuzzapp", "Fuzz App", TrustLevel.VERIFIED, ("fuzzing",)))
        store.upsert_app(App("partner", "Partner", TrustLevel.PARTNER, ("support",),
                             standing_consent=True))
        store.record_installation(Installation(fuzz_device(3).iccid, fuzz_device(2).eid,
                                               "t", "smdp", 1))
    from broker_bridge.registry import Registry

    registry = Registry(store)
    for n in range(KNOWN):
        if n != 3:  # profile 3 is installed on device 2
            registry.bind_subscription(fuzz_device(n).iccid, fuzz_device(n).eid,
                                       actor="operator:fuzz")
    for n in (0, 1):
        registry.enroll_device_key(fuzz_device(n).eid, public_key_der(fuzz_key(n).public_key()),
                                   actor="operator:fuzz")


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True), st.text(max_size=40), st.binary(max_size=40))
_value = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=10)
_keys = st.sampled_from(["v", "eid", "imei", "iccid", "imsi", "ip", "capabilities", "model",
                         "profile", "seq", "ts", "op", "msisdn", "purpose", "pairing",
                         "limit", "prompt", "decision", "app", "contract", "holder",
                         "msisdns", "operator", "result", "pir", "x"])


_LOOKALIKES: list[Any] = [
    "+4915177000001", make_eid(f"89049055{1:022d}"), make_iccid(f"894926255{2:09d}"), 2**63,
    -1, 0, "pair", "devices", "events-since", "unpair", "approve", "x" * 200, [],
    {"manufacturer": "a"}, "10.0.0.1", "\x00"]


@st.composite
def _mutated_map(draw: st.DrawFn, base: Mapping[str, Any]) -> dict[str, Any]:
    msg = dict(base)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(_keys)
        action = draw(st.sampled_from(["set", "delete", "set-valid-looking"]))
        if action == "delete":
            msg.pop(key, None)
        elif action == "set":
            msg[key] = draw(_value)
        else:
            msg[key] = draw(st.sampled_from(_LOOKALIKES))
    return msg


@functools.cache
def _valid_messages() -> list[tuple[str, dict[str, Any]]]:
    """(topic kind, map) of well-formed messages to mutate."""
    device = fuzz_device(2).to_wire()
    return [
        ("device", device),
        ("app", {"op": "pair", "msisdn": MSISDN, "purpose": "fuzzing"}),
        ("app", {"op": "devices", "msisdn": MSISDN}),
        ("app", {"op": "events-since", "seq": 0, "limit": 10}),
        ("app", {"op": "unpair", "msisdn": MSISDN}),
        ("user", {"op": "consent-list"}),
        ("user", {"op": "consent-answer", "prompt": "cp-0123456789abcdef",
                  "decision": "approve"}),
        ("operator", {"op": "add-number", "msisdn": "+4915177000009", "contract": CONTRACT}),
        ("installation", {"v": 1, "seq": 1, "eid": fuzz_device(3).eid,
                          "iccid": fuzz_device(3).iccid, "imsi": "262550000000003",
                          "result": "installed", "transaction": "t2", "matching_id": "m",
                          "smdp": "smdp.example", "ts": 2, "pir": b"\x30\x00",
                          "euicc_certificate": b"\x30\x00", "eum_certificate": b"\x30\x00"}),
        ("profile", {"v": 1, "seq": 1, "eid": fuzz_device(1).eid,
                     "iccid": fuzz_device(1).iccid, "result": "deleted",
                     "transaction": "AB01", "eim": "eim.example", "ts": 2, "epr": b"\xbf\x51\x00"}),
    ]


@functools.cache
def _topic_for(topics: Topics, kind: str, pick: int) -> str:
    if kind == "device":
        return topics.device_register(fuzz_device(pick % (KNOWN + 1)).eid)
    if kind == "app":
        return topics.app_requests(("fuzzapp", "partner", "stranger")[pick % 3])
    if kind == "user":
        return topics.user_requests((CONTRACT, "C-NONE")[pick % 2])
    if kind == "operator":
        return topics.operator_requests("crm")
    if kind == "profile":
        return topics.operator("profiles")
    return topics.operator("installations")


@functools.cache
def _candidates(kind: str) -> list[dict[str, Any]]:
    return [m for k, m in _valid_messages() if k == kind]


_TOPICS = Topics()


@st.composite
def bridge_inputs(draw: st.DrawFn) -> tuple[str, bytes]:
    """(topic, payload) for :func:`check_bridge_input`."""
    topics = _TOPICS
    kind = draw(st.sampled_from(["device", "device", "app", "app", "user", "operator",
                                 "installation", "profile"]))
    pick = draw(st.integers(0, 11))
    how = draw(st.sampled_from(["bytes", "structure", "mutated", "mutated", "signed",
                                "truncated", "tagged"]))
    base = draw(st.sampled_from(_candidates(kind)))
    if how == "bytes":
        payload = draw(st.binary(max_size=400))
    elif how == "structure":
        payload = cbor2.dumps(draw(_value))
    elif how == "tagged":
        payload = cbor2.dumps(cbor2.CBORTag(draw(st.integers(0, 2**16)), draw(_value)))
    else:
        msg = draw(_mutated_map(base))
        try:
            payload = codec.encode(msg)
        except (TypeError, ValueError, OverflowError):
            payload = cbor2.dumps(msg)
        if how == "signed":
            signer = fuzz_key(draw(st.integers(0, 2)))
            try:
                info = DeviceInfo.from_wire(msg)
            except ValueError:
                info = fuzz_device(pick % KNOWN)
            payload = encode_registration(info, signer)
        elif how == "truncated":
            payload = payload[:draw(st.integers(0, max(0, len(payload) - 1)))]
    return _topic_for(topics, kind, pick), payload


@contextlib.contextmanager
def fuzz_bridge(workdir: Path) -> Iterator[Bridge]:
    """A bridge over a scratch registry for :func:`check_bridge_input` (not connected)."""
    store = SqliteStore(workdir / "fuzz-registry.db", synchronous="NORMAL")
    with store:
        prepare_fuzz_store(store)
        yield Bridge(store, BrokerURL.parse("mqtt://127.0.0.1:1"))


class BridgeChecker:
    """Dispatches fuzzed payloads into ``bridge`` and checks what it promises for each."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        entries = bridge.store.audit()
        self.audit_mark = entries[-1].id if entries else 0

    def __call__(self, case: tuple[str, bytes]) -> Outcome | None:
        return check_bridge_input(self.bridge, case, self)


def check_bridge_input(bridge: Bridge, case: tuple[str, bytes],
                       checker: BridgeChecker | None = None) -> Outcome | None:
    """Dispatch one fuzzed payload and check what the bridge promises for it."""
    topic, payload = case
    store = bridge.store
    before_devices = store.device_count()
    if checker is None:
        entries = store.audit()
        before_audit = entries[-1].id if entries else 0
    else:
        before_audit = checker.audit_mark
    outcome = bridge.dispatch(topic, payload)
    if outcome is None:
        raise FuzzFailure(f"the bridge does not serve {topic}")
    _check_reply(outcome.reply, payload)
    new_entries = store.audit(after=before_audit)
    if checker is not None and new_entries:
        checker.audit_mark = new_entries[-1].id
    if "/devices/" in topic:
        _check_registration(store, topic, outcome.reply, before_devices, bool(new_entries))
    if (topic.endswith("/operator/profiles") and outcome.reply.status is not Status.OK
            and store.device_count() != before_devices):
        raise FuzzFailure(f"a refused profile change changed the devices: {outcome.reply}")
    return outcome


def _check_reply(reply: Reply, payload: bytes) -> None:
    if not isinstance(reply.status, Status):
        raise FuzzFailure(f"reply without a status: {reply}")
    if reply.status in (Status.ERROR, Status.DENIED) and not isinstance(reply.code,
                                                                         ErrorCode):
        raise FuzzFailure(f"refusal without a stable code: {reply}")
    if reply.code is ErrorCode.INTERNAL:
        raise FuzzFailure(f"internal error for {payload[:60].hex()}: {reply.message}")
    codec.decode(codec.encode(reply.to_wire()), max_size=1 << 20)  # the reply is sendable


def _check_registration(store: Any, topic: str, reply: Reply, before_devices: int,
                        audited: bool) -> None:
    refused = reply.status is not Status.OK
    if refused and store.device_count() != before_devices:
        raise FuzzFailure(f"a refused registration changed the devices: {reply}")
    if refused and not audited:
        raise FuzzFailure(f"a refused registration was not audited: {reply}")
    if not refused and store.device(topic.split("/")[-2]) is None:
        raise FuzzFailure("an accepted registration stored nothing")


def fuzz_bridge_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    with fuzz_bridge(workdir) as bridge:
        return run_cases(bridge_inputs(), BridgeChecker(bridge), cases, seed_value=seed_value)


def fuzz_broker_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    """Fuzzed payloads over a real broker: each request (with a Response Topic in the
    sender's namespace) must be answered, and the bridge must keep serving."""
    import random

    from mps_bench.rawclient import RawClient
    from mps_testbed.stack.mosquitto import Mosquitto

    rng = random.Random(seed_value)
    strategy = bridge_inputs()
    samples: list[tuple[str, bytes]] = []
    run_cases(strategy, samples.append, cases, seed_value=rng.randrange(2**32))
    store = SqliteStore(workdir / "broker-fuzz.db", synchronous="NORMAL")
    with store, Mosquitto(workdir=workdir / "broker") as broker:
        prepare_fuzz_store(store)
        with Bridge(store, BrokerURL.parse(broker.url)) as bridge:
            client = RawClient(BrokerURL.parse(broker.url))
            try:
                client.subscribe("mps/v1/+/+/replies")
                client.subscribe("mps/v1/devices/+/reply")
                client.subscribe("mps/v1/operator/+/replies")
                answered = 0
                for topic, payload in samples:
                    leaf = topic.rsplit("/", 1)[-1]
                    kind, ident, _leaf = (Topics().parse(topic) if leaf not in (
                        "installations", "profiles") else ("operator", leaf, ""))
                    if kind == "operator" and ident in ("installations", "profiles"):
                        client.publish(topic, payload)  # not answered by design
                        answered += 1
                        continue
                    reply_topic = {"devices": Topics().device_reply,
                                   "apps": Topics().app_replies,
                                   "users": Topics().user_replies,
                                   "operator": Topics().operator_replies}[kind](ident)
                    reply = client.request(topic, payload, reply_topic, timeout=5)
                    if reply is None:
                        raise FuzzFailure(f"no reply on {topic} to {payload[:60].hex()}")
                    if reply.get("code") == ErrorCode.INTERNAL.value:
                        raise FuzzFailure(f"internal error on {topic}: {reply}")
                    answered += 1
                # Still serving: a valid registration goes through.
                last = bridge.store.last_registration(fuzz_device(0).eid)
                good = fuzz_device(0, seq=(last[0] if last else 0) + 1)
                ok = client.request(Topics().device_register(good.eid),
                                    encode_registration(good, fuzz_key(0)),
                                    Topics().device_reply(good.eid))
                if ok is None or ok.get("status") != "ok":
                    raise FuzzFailure(f"the bridge stopped serving: {ok}")
                if bridge.stats.received < len(samples):
                    raise FuzzFailure(f"{bridge.stats.received} of {len(samples)} received")
            finally:
                client.close()
    return answered
