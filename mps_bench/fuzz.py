"""mps-bench fuzz: hypothesis at every edge where bytes come in from outside.

==============  ======================================================================
edge            what is fed in, and what must hold
==============  ======================================================================
cbor-bridge     CBOR (random bytes, random structures, mutated and re-signed valid
                messages) on every topic the registry serves, in-process: every payload
                gets a reply with a status and a stable code, nothing is stored unless
                the reply is ok, every refused registration is audited
cbor-broker     the same over a real Mosquitto, one request at a time: every request is
                answered without an internal error, the bridge keeps serving
der-lpa         ES10 responses (mutated real ones, random TLV trees, noise) into the
                LPA's ES10 client: only Es10Error comes out
apdu-euicc      hostile APDUs into the software eUICC (the strategies of
                tests/unit/test_euicc_fuzz.py): a status word every time, no 6F00;
                a case is one APDU (the strategy draws sequences of them)
at-agent        garbage modem answers into the agent's ModemLink (the strategies of
                tests/unit/test_modemlink.py): only ModemError, and it gets back in step
es9-smdp        ES9+ JSON bodies into the SM-DP+ (the strategies of
                tests/integration/test_smdp_http.py), in-process: only Es9StatusError
==============  ======================================================================

The last three reuse the test suite's strategies and need the source tree (run from the
repository); where it is not importable they are reported as skipped.

    mps-bench fuzz [--cases 10000] [--edge NAME]... [--json FILE] [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from broker_bridge.model import App, Contract, Installation, Subscription, TrustLevel
from broker_bridge.registry import Outcome
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore
from mps_bench.errors import BenchError
from mps_mqtt.client import BrokerURL
from mps_wire import codec
from mps_wire.cose import public_key_der
from mps_wire.errors import ErrorCode
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import DeviceInfo, ModelInfo, Status
from mps_wire.registration import encode_registration
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

DEFAULT_CASES = 10_000


class FuzzFailure(BenchError, AssertionError):
    """An edge broke its promise for some input (hypothesis shrinks it first)."""


@dataclass
class EdgeResult:
    name: str
    cases: int
    seconds: float
    status: str = "ok"  # ok, failed, skipped
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"edge": self.name, "cases": self.cases, "seconds": round(self.seconds, 3),
                "status": self.status, "detail": self.detail}


def run_cases(strategy: st.SearchStrategy[Any], check: Callable[[Any], object], cases: int, *,
              seed_value: int | None = None) -> int:
    """Feed ``cases`` examples of ``strategy`` to ``check``; return how many ran.

    Failures propagate after hypothesis shrank them to a small example.
    """
    ran = [0]

    def counted(value: Any) -> None:
        ran[0] += 1
        check(value)

    test = settings(max_examples=cases, deadline=None, database=None,
                    phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck))(given(strategy)(counted))
    if seed_value is not None:
        test = seed(seed_value)(test)
    test()
    return ran[0]


# --- CBOR into the registry -----------------------------------------------------------------

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
                                 "installation"]))
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
    reply = outcome.reply
    if not isinstance(reply.status, Status):
        raise FuzzFailure(f"reply without a status: {reply}")
    if reply.status in (Status.ERROR, Status.DENIED) and not isinstance(reply.code,
                                                                         ErrorCode):
        raise FuzzFailure(f"refusal without a stable code: {reply}")
    if reply.code is ErrorCode.INTERNAL:
        raise FuzzFailure(f"internal error for {payload[:60].hex()}: {reply.message}")
    codec.decode(codec.encode(reply.to_wire()), max_size=1 << 20)  # the reply is sendable
    new_entries = store.audit(after=before_audit)
    if checker is not None and new_entries:
        checker.audit_mark = new_entries[-1].id
    if "/devices/" in topic:
        after = store.device_count()
        if reply.status is not Status.OK and after != before_devices:
            raise FuzzFailure(f"a refused registration changed the devices: {reply}")
        if reply.status is not Status.OK and not new_entries:
            raise FuzzFailure(f"a refused registration was not audited: {reply}")
        if reply.status is Status.OK and store.device(topic.split("/")[-2]) is None:
            raise FuzzFailure("an accepted registration stored nothing")
    return outcome


def fuzz_bridge_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    with fuzz_bridge(workdir) as bridge:
        return run_cases(bridge_inputs(), BridgeChecker(bridge), cases, seed_value=seed_value)


def fuzz_broker_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    """Fuzzed payloads over a real broker: each request (with a Response Topic in the
    sender's namespace) must be answered, and the bridge must keep serving."""
    import random

    from mps_bench.attacks import RawClient
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
                    kind, ident, _leaf = Topics().parse(topic) if "installations" not in \
                        topic else ("operator", "installations", "")
                    if kind == "operator" and ident == "installations":
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
                good = fuzz_device(0, seq=2**40)
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


# --- DER into the LPA ------------------------------------------------------------------------

def lpa_calls() -> dict[str, Callable[[Any], object]]:
    iccid = make_iccid("894900000000000911")
    return {
        "get_eid": lambda c: c.get_eid(),
        "get_euicc_info1": lambda c: c.get_euicc_info1(),
        "get_euicc_info2": lambda c: c.get_euicc_info2(),
        "get_euicc_challenge": lambda c: c.get_euicc_challenge(),
        "get_configured_addresses": lambda c: c.get_configured_addresses(),
        "list_profiles": lambda c: c.list_profiles(),
        "enable_profile": lambda c: c.enable_profile(iccid=iccid),
        "disable_profile": lambda c: c.disable_profile(iccid=iccid),
        "delete_profile": lambda c: c.delete_profile(iccid=iccid),
        "set_nickname": lambda c: c.set_nickname(iccid, "nick"),
        "set_default_dp_address": lambda c: c.set_default_dp_address("smdp.example.com"),
        "list_notifications": lambda c: c.list_notifications(),
        "retrieve_notifications": lambda c: c.retrieve_notifications(),
        "notification_sent": lambda c: c.notification_sent(1),
        "cancel_session": lambda c: c.cancel_session(b"\x01" * 16, 0),
        "get_rat": lambda c: c.get_rat(),
    }


class ScriptedChannel:
    """An ISD-R channel answering the final STORE DATA block with a given response."""

    def __init__(self, data: bytes, sw: int) -> None:
        self.data = data
        self.sw = sw

    def transmit(self, apdu: bytes) -> Any:
        from mps_esim.iso7816 import Response

        if apdu[2] == 0x11:  # a block with more to come
            return Response(b"", 0x9000)
        return Response(self.data, self.sw)


class _RecordingChannel:
    """A real software eUICC's ISD-R on a logical channel; keeps its final answers."""

    def __init__(self, card: Any) -> None:
        from mps_esim.iso7816 import build_apdu, t0_transceive, with_channel

        self._card = card
        self._t0 = t0_transceive
        self._with = with_channel
        opened = t0_transceive(card.transmit, build_apdu(0x00, 0x70, 0x00, 0x00, le=1))
        self.number = opened.data[0]
        self.transmit(build_apdu(0x00, 0xA4, 0x04, 0x00, card.isdr_aid, le=0))
        self.last = b""

    def transmit(self, apdu: bytes) -> Any:
        response = self._t0(self._card.transmit, self._with(apdu, self.number))
        self.last = response.data
        return response


def real_es10_answers(workdir: Path) -> dict[str, bytes]:
    """What a real (software) eUICC answers to each call of :func:`lpa_calls`."""
    from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord
    from lpa_emulator.euicc.state import isdp_aid_for
    from mps_esim.lpa.es10 import Es10Client, Es10Error

    path = workdir / "der-card.json"
    CardState.new(eid=make_eid("890490320000000000000000009111"), profiles=[
        ProfileRecord(iccid=make_iccid("894900000000000911"), imsi="262019111111111",
                      isdp_aid=isdp_aid_for(0), enabled=True, smdp_address="s.example"),
        ProfileRecord(iccid=make_iccid("894900000000000912"), imsi="262019111111112",
                      isdp_aid=isdp_aid_for(1), smdp_address="s.example"),
    ]).save(path)
    channel = _RecordingChannel(EuiccCard.open(path))
    client = Es10Client(channel)
    answers: dict[str, bytes] = {}
    for name, call in lpa_calls().items():
        with contextlib.suppress(Es10Error):
            call(client)
        answers[name] = channel.last
    return answers


@st.composite
def _der_tree(draw: st.DrawFn, depth: int = 0) -> bytes:
    from mps_esim import tlv

    tag = draw(st.sampled_from([0x80, 0x81, 0x82, 0x5A, 0x4F, 0x5A, 0x90, 0x91, 0x92, 0x9F70,
                                0xA0, 0xA1, 0xA2, 0xE3, 0xBF2D, 0xBF3E, 0xBF20, 0xBF22,
                                0xBF2E, 0xBF3C, 0xBF28, 0xBF2B, 0xBF41, 0xBF43, 0x30, 0x04,
                                0x02, 0x0C, 0x1F, 0xFF]))
    constructed = bool(tag & 0x20) if tag < 0x100 else bool((tag >> 8) & 0x20)
    if constructed and depth < 4:
        body = b"".join(draw(st.lists(_der_tree(depth + 1), max_size=4)))
    else:
        body = draw(st.binary(max_size=24))
    try:
        return tlv.encode(tag, body)
    except Exception:  # a tag the encoder refuses: plain bytes instead
        return body


@st.composite
def lpa_inputs(draw: st.DrawFn, answers: Mapping[str, bytes]) -> tuple[str, bytes, int]:
    name = draw(st.sampled_from(sorted(answers)))
    real = answers[name]
    how = draw(st.sampled_from(["flip", "flip", "truncate", "extend", "tree", "noise",
                                "length"]))
    if how == "flip" and real:
        data = bytearray(real)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        payload = bytes(data)
    elif how == "truncate":
        payload = real[:draw(st.integers(0, max(0, len(real) - 1)))]
    elif how == "extend":
        payload = real + draw(st.binary(min_size=1, max_size=20))
    elif how == "length" and len(real) > 3:
        data = bytearray(real)
        i = draw(st.integers(1, min(len(data) - 1, 6)))
        data[i] = draw(st.integers(0, 255))
        payload = bytes(data)
    elif how == "tree":
        outer = real[:2] if real[:1] == b"\xbf" else real[:1]
        inner = b"".join(draw(st.lists(_der_tree(), max_size=4)))
        from mps_esim import tlv

        try:
            payload = tlv.encode(int.from_bytes(outer, "big"), inner) if outer else inner
        except Exception:  # the real answer's tag cannot be reused
            payload = inner
    else:
        payload = draw(st.binary(max_size=200))
    sw = draw(st.sampled_from([0x9000] * 8 + [0x6A80, 0x6985, 0x6F00, 0x6100, 0x9000]))
    return name, payload, sw


def check_lpa_input(case: tuple[str, bytes, int]) -> None:
    from mps_esim.lpa.es10 import Es10Client, Es10Error

    name, payload, sw = case
    client = Es10Client(ScriptedChannel(payload, sw))
    try:
        lpa_calls()[name](client)
    except Es10Error:
        pass
    except Exception as exc:  # what the fuzz is looking for
        raise FuzzFailure(f"{name} raised {type(exc).__name__} ({exc}) for the answer "
                          f"{payload.hex()} / {sw:04X}") from exc


def fuzz_lpa_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    answers = real_es10_answers(workdir)
    return run_cases(lpa_inputs(answers), check_lpa_input, cases, seed_value=seed_value)


# --- the test suite's own fuzz strategies, at bench size --------------------------------------

def _test_module(name: str) -> Any:
    # The test suite sits next to the packages in the source tree (editable installs).
    root = Path(__file__).resolve().parents[1]
    if (root / "tests" / "__init__.py").is_file() and str(root) not in sys.path:
        sys.path.append(str(root))
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _Skip(f"{name} is not importable here (run from the source tree): "
                    f"{exc}") from exc


class _Skip(Exception):
    pass


def fuzz_apdu_edge(_workdir: Path, cases: int, seed_value: int | None = None) -> int:
    """Sequences of hostile APDUs until ``cases`` APDUs went in; returns the APDU count."""
    module = _test_module("tests.unit.test_euicc_fuzz")
    apdus = [0]

    def check(groups: Any) -> None:
        apdus[0] += module.run_sequence(groups)

    rounds = 0
    while apdus[0] < cases:
        # About ten APDUs a sequence; a new round draws fresh sequences for the rest.
        left = cases - apdus[0]
        run_cases(module._sequence, check, max(10, left // 8),
                  seed_value=None if seed_value is None else seed_value + rounds)
        rounds += 1
    return apdus[0]


def fuzz_at_edge(_workdir: Path, cases: int, seed_value: int | None = None) -> int:
    module = _test_module("tests.unit.test_modemlink")
    from agent.errors import ModemError

    calls = st.sampled_from([("AT+CGSN", None, True), ('AT+CSIM=4,"0000"', "+CSIM:", False),
                             ("AT+CEREG?", "+CEREG:", False)])

    def check(case: tuple[bytes, tuple[str, str | None, bool]]) -> None:
        garbage, (cmd, prefix, bare) = case
        link = module.GarbageThenSane(garbage)
        link.resync_settle = 0.002
        link.open()
        with contextlib.suppress(ModemError):
            link.command(cmd, prefix=prefix, bare=bare, timeout=0.005)
        if link.command("AT+CGMI", bare=True, timeout=1.0)[-1:] != ["Quectel"]:
            raise FuzzFailure(f"the link did not get back in step after {garbage!r}")

    strategy = st.tuples(st.lists(module._CHUNKS, max_size=12).map(b"".join), calls)
    return run_cases(strategy, check, cases, seed_value=seed_value)


def fuzz_es9_edge(workdir: Path, cases: int, seed_value: int | None = None) -> int:
    module = _test_module("tests.integration.test_smdp_http")
    from lpa_emulator import pki
    from lpa_emulator.smdp.errors import Es9StatusError
    from lpa_emulator.smdp.orders import OrderStore
    from lpa_emulator.smdp.service import Smdp, SmdpCredentials

    pki_dir = workdir / "pki"
    pki.init_pki(pki_dir)
    smdp = Smdp(address="localhost", credentials=SmdpCredentials.from_dir(pki_dir),
                orders=OrderStore.in_dir(workdir / "smdp"))

    def check(case: tuple[str, dict[str, Any]]) -> None:
        function, body = case
        try:
            smdp.call(function, body)
        except Es9StatusError:
            pass
        except Exception as exc:  # what the fuzz is looking for
            raise FuzzFailure(f"{function} raised {type(exc).__name__} ({exc}) for "
                              f"{json.dumps(body)[:200]}") from exc

    strategy = st.tuples(st.sampled_from(module.FUNCTIONS),
                         st.dictionaries(module._fields, module._json_value | module._der_like,
                                         max_size=6))
    return run_cases(strategy, check, cases, seed_value=seed_value)


EDGES: dict[str, tuple[str, Callable[[Path, int, int | None], int]]] = {
    "cbor-bridge": ("CBOR into the registry, in-process", fuzz_bridge_edge),
    "cbor-broker": ("CBOR into the registry over Mosquitto", fuzz_broker_edge),
    "der-lpa": ("ES10 DER answers into the LPA", fuzz_lpa_edge),
    "apdu-euicc": ("APDUs into the software eUICC", fuzz_apdu_edge),
    "at-agent": ("modem answers into the agent's AT link", fuzz_at_edge),
    "es9-smdp": ("ES9+ JSON into the SM-DP+", fuzz_es9_edge),
}

def run_edges(workdir: Path, cases: int, names: list[str] | None = None, *,
              seed_value: int | None = None) -> list[EdgeResult]:
    results = []
    for name in names or list(EDGES):
        _description, run = EDGES[name]
        target = workdir / name
        target.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            ran = run(target, cases, seed_value)
        except _Skip as exc:
            results.append(EdgeResult(name, 0, time.monotonic() - started, "skipped",
                                      str(exc)))
            continue
        except Exception as exc:  # reported; the other edges still run
            results.append(EdgeResult(name, 0, time.monotonic() - started, "failed",
                                      f"{type(exc).__name__}: {exc}"[:2000]))
            continue
        results.append(EdgeResult(name, ran, time.monotonic() - started))
    return results


def cmd_fuzz(args: argparse.Namespace) -> int:
    if args.cases < 1:
        print("mps-bench: --cases must be at least 1", file=sys.stderr)
        return 2
    unknown = [e for e in args.edge or [] if e not in EDGES]
    if unknown:
        print(f"mps-bench: unknown edge {unknown[0]!r} (one of {', '.join(EDGES)})",
              file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="mps-fuzz-"))
    # The parts under fuzz warn about every broken input they survive; that is the point,
    # and thousands of such lines would bury the table.
    logging.disable(logging.WARNING)
    try:
        results = run_edges(workdir, args.cases, args.edge, seed_value=args.seed)
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(n) for n in EDGES)
    print(f"{'EDGE':<{width}}  {'CASES':>7}  {'SECONDS':>8}  {'CASES/S':>8}  STATUS")
    for r in results:
        rate = f"{r.cases / r.seconds:8.0f}" if r.seconds > 0 and r.cases else f"{'-':>8}"
        print(f"{r.name:<{width}}  {r.cases:>7}  {r.seconds:>8.1f}  {rate}  {r.status}"
              + (f": {r.detail}" if r.detail else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"cases_per_edge": args.cases,
                                               "edges": [r.to_json() for r in results]},
                                              indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.status == "failed" for r in results) else 0


def register(subparsers: Any) -> None:
    """Add ``fuzz`` to ``mps-bench``."""
    parser = subparsers.add_parser(
        "fuzz", help="long fuzzing of every edge (hypothesis)", description=__doc__)
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES,
                        help=f"cases per edge (default {DEFAULT_CASES})")
    parser.add_argument("--edge", action="append", metavar="NAME",
                        help=f"only this edge, repeatable ({', '.join(EDGES)})")
    parser.add_argument("--seed", type=int, help="hypothesis seed, for a repeatable run")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.set_defaults(func=cmd_fuzz)


__all__ = ["EDGES", "BridgeChecker", "EdgeResult", "FuzzFailure", "ScriptedChannel",
           "bridge_inputs", "check_bridge_input", "check_lpa_input", "fuzz_bridge",
           "lpa_calls", "lpa_inputs", "real_es10_answers", "register", "run_cases",
           "run_edges"]
