"""Registration ingest: new devices registering through the bridge (durable: each reply
is sent after its commit; signed registrations verified against enrolled keys) against
decode-only ingestion of the same messages, interleaved; and the registry's own rate
without MQTT, with a commit per registration and with commits batched, to show what the
commits cost."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker_bridge.model import DeviceKey
from broker_bridge.registry import Registry, SignaturePolicy
from broker_bridge.storage.base import Store
from mps_bench import dataset
from mps_bench.mqttload import LoadClient, Request, Run
from mps_bench.stats import Summary, ratio
from mps_wire import codec
from mps_wire.messages import DeviceInfo, ModelInfo
from mps_wire.topics import Topics

TARGETS = ("decode", "bridge")


@dataclass(frozen=True, slots=True)
class Signing:
    """How registrations are signed in this run (``key`` None: unsigned)."""

    key: Any
    kid: bytes
    public_der: bytes
    why_not: str = ""

    @property
    def signed(self) -> bool:
        return self.key is not None


def signing() -> Signing:
    """A P-256 key for the bench devices when this build signs registrations."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec

        from mps_wire.cose import key_id, public_key_der
    except ImportError as exc:  # pragma: no cover - a build before signed registrations
        return Signing(None, b"", b"", f"signatures not available in this build ({exc})")
    key = ec.generate_private_key(ec.SECP256R1())
    return Signing(key, key_id(key.public_key()), public_key_der(key.public_key()))


def device_info(n: int, *, seq: int = 1) -> DeviceInfo:
    """The registration of bench device ``n`` (whose subscription the dataset holds)."""
    return DeviceInfo(
        eid=dataset.eid(n), imei=dataset.imei(n), iccid=dataset.iccid(n),
        imsi=dataset.imsi(n), ip=(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",),
        capabilities=("lte", "gps"), model=ModelInfo(*dataset.MODEL),
        profile=dataset.PROFILE, seq=seq, ts=dataset.LOADED_AT + n)


def payload(n: int, sign: Signing) -> bytes:
    info = device_info(n)
    if not sign.signed:
        return codec.encode(info.to_wire())
    from mps_wire.registration import encode_registration

    return encode_registration(info, sign.key, kid=sign.kid)


def enroll(store: Store, numbers: range, sign: Signing) -> None:
    """Enroll the bench key for devices ``numbers``, in one transaction."""
    if not sign.signed:
        return
    with store.transaction():
        for n in numbers:
            store.put_device_key(DeviceKey(eid=dataset.eid(n), public_key=sign.public_der,
                                           kid=sign.kid, enrolled_at=dataset.LOADED_AT,
                                           enrolled_by="operator:bench"))


def requests(topics: Topics, numbers: Sequence[int], payloads: dict[int, bytes]
             ) -> list[Request]:
    return [Request(topics.device_register(dataset.eid(n)), payloads[n],
                    topics.device_reply(dataset.eid(n))) for n in numbers]


@dataclass
class IngestComparison:
    in_flight: int
    signed: bool
    runs: dict[str, list[Run]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    errors: int = 0

    def summary(self, target: str) -> Summary:
        runs = self.runs[target]
        return Summary.of([x for r in runs for x in r.latencies], sum(r.elapsed for r in runs))

    def to_json(self) -> dict[str, Any]:
        decode, bridge = self.summary("decode"), self.summary("bridge")
        return {"per_s": round(bridge.per_s, 1), "decode_per_s": round(decode.per_s, 1),
                "ratio": ratio(bridge.per_s, decode.per_s), "in_flight": self.in_flight,
                "signed": self.signed, "durable": True,
                "bridge": bridge.to_json(), "decode": decode.to_json(),
                "lost": {t: sum(r.lost for r in self.runs[t]) for t in TARGETS},
                "errors": self.errors}


def check_replies(replies: Sequence[bytes]) -> int:
    """Bridge replies that are not a fresh registration."""
    return sum(1 for p in replies if codec.decode(p).get("result") != "registered")


def compare(client: LoadClient, bridge_topics: Topics, base_topics: Topics,
            blocks: Sequence[range], payloads: dict[int, bytes], *, in_flight: int,
            signed: bool, timeout: float) -> IngestComparison:
    """One block of new devices per round through the bridge, the same messages through
    decode-only ingestion, alternating which goes first."""
    result = IngestComparison(in_flight=in_flight, signed=signed)
    for r, block in enumerate(blocks):
        order = TARGETS if r % 2 == 0 else TARGETS[::-1]
        for target in order:
            topics = bridge_topics if target == "bridge" else base_topics
            client.keep_replies = target == "bridge"
            run = client.run(requests(topics, block, payloads), in_flight=in_flight,
                             timeout=timeout)
            result.runs[target].append(run)
            if target == "bridge":
                result.errors += check_replies(run.replies)
    client.keep_replies = False
    return result


def registry_rate(store: Store, numbers: Sequence[int], payloads: dict[int, bytes], *,
                  batch: int, signed: bool) -> float:
    """Registrations per second through :class:`Registry` alone (no MQTT), ``batch``
    registrations per commit."""
    registry = Registry(store, signatures=SignaturePolicy.REQUIRED if signed
                        else SignaturePolicy.ENROLLED)
    started = time.perf_counter()
    for i in range(0, len(numbers), batch):
        # A batch as the bridge makes one: one commit, each registration on its own.
        with store.transaction() if batch == 1 else store.batch():
            for n in numbers[i:i + batch]:
                outcome = registry.handle_registration(dataset.eid(n), payloads[n])
                if not outcome.reply.is_ok:
                    raise RuntimeError(f"registration of bench device {n} refused: "
                                       f"{outcome.reply.message}")
    return len(numbers) / (time.perf_counter() - started)
