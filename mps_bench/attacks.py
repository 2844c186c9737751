"""The attack suite: a complete deployment on loopback (Mosquitto with the generated TLS
configuration, password logins and ACLs; a registry requiring signed registrations), and
every attack the issue names tried against it by clients holding real credentials.

An attack is *refused* when the registry answered with the expected refusal (and wrote
it to the audit log) or the broker refused it (CONNACK/SUBACK/PUBACK reason code 0x80 or
above, or a subscription through which nothing was ever delivered); anything else lets
the attacker in. ``mps-bench faults`` and the test suite run it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from broker_bridge.brokerconf import MosquittoConfig, write_broker_config
from broker_bridge.credentials import OperatorCA, issue
from broker_bridge.model import App, Contract, Installation, Role, Subscription, TrustLevel
from broker_bridge.registry import BINDING_SOURCE, Registry, SignaturePolicy
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore, Store
from mps_bench.rawclient import RawClient
from mps_mqtt.bundle import CredentialBundle
from mps_mqtt.client import (
    BrokerUnreachableError,
    BrokerURL,
    connect,
    disconnect,
    new_client,
)
from mps_testbed.stack.mosquitto import Mosquitto, free_port
from mps_wire import codec
from mps_wire.cose import load_private_key
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import ConsentAnswerRequest, Decision, DeviceInfo, ModelInfo
from mps_wire.registration import encode_registration
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

NOT_AUTHORIZED = 0x87
PAUL, PAUL_MSISDN = "C-PAUL", "+4915112345678"
LENA, LENA_MSISDN = "C-LENA", "+4917098765432"


def device(n: int, *, sub: int | None = None, seq: int = 1, **changes: Any) -> DeviceInfo:
    """Test device ``n`` holding subscription ``sub`` (default ``n``)."""
    s = n if sub is None else sub
    info = DeviceInfo(eid=make_eid(f"89049032{n:022d}"), imei=make_imei("35209900", f"{n:06d}"),
                      iccid=iccid(s), imsi=f"26201{s:010d}", ip=(f"10.0.0.{n}",),
                      capabilities=("lte",), model=ModelInfo("Quectel", "EC25", "R06"),
                      profile="attack-suite", seq=seq, ts=1_700_000_000_000 + seq)
    return replace(info, **changes) if changes else info


def iccid(sub: int) -> str:
    return make_iccid(f"894926201{sub:09d}")


@dataclass
class AttackResult:
    """One attack: refused or not, by whom (``registry`` or ``broker``), with what, and
    where the refusal is on record (``record``: ``audit log`` for the registry's, ``broker
    log`` for a refused login or PUBLISH; Mosquitto logs no refused SUBSCRIBE, whose
    record is the reason code the client got). ``recorded`` says the record was found.
    """

    name: str
    description: str
    refused: bool
    by: str
    outcome: str
    recorded: bool
    record: str = "audit log"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "refused": self.refused,
                "by": self.by, "outcome": self.outcome, "record": self.record,
                "recorded": self.recorded}


@dataclass
class AttackReport:
    results: list[AttackResult] = field(default_factory=list)
    seconds: float = 0.0
    # The suite's own connections (the registry's, the owners') that the broker closed for
    # a newer one under the same client id: an attack that did so measured a deployment
    # whose owners were knocked off, not the one under test.
    owners_closed: list[str] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return len(self.results)

    @property
    def let_in(self) -> int:
        return sum(1 for r in self.results if not r.refused)

    @property
    def unrecorded(self) -> list[str]:
        return [r.name for r in self.results if not r.recorded]

    def to_json(self) -> dict[str, Any]:
        return {"tried": self.tried, "let_in": self.let_in, "owners_closed": self.owners_closed,
                "attacks": [r.to_json() for r in self.results]}


@dataclass
class _Deployment:
    store: Store
    registry: Registry
    broker: Mosquitto
    ca: OperatorCA
    bundles: dict[str, Path]
    topics: Topics
    acl: str

    @property
    def bridge_username(self) -> str:
        return self.username("bridge")

    def username(self, who: str) -> str:
        """The broker login of ``who`` (also its client id: use_username_as_clientid)."""
        return CredentialBundle.load(self.bundles[who]).username

    def url(self, who: str) -> BrokerURL:
        return CredentialBundle.load(self.bundles[who]).broker_url(
            self.broker.tls_url(self.ca.cert_file))

    def key(self, who: str) -> ec.EllipticCurvePrivateKey:
        path = CredentialBundle.load(self.bundles[who]).signing_key_file
        if path is None:
            raise ValueError(f"{who} holds no signing key")
        return load_private_key(path.read_bytes())


@contextlib.contextmanager
def _deployment(workdir: Path, acl: str) -> Iterator[_Deployment]:
    workdir.mkdir(parents=True, exist_ok=True)
    with SqliteStore(workdir / "registry.db") as store:
        with store.transaction():
            for cid, holder, msisdn, subs in ((PAUL, "Paul", PAUL_MSISDN, (1, 2, 3)),
                                              (LENA, "Lena", LENA_MSISDN, (9,))):
                store.upsert_contract(Contract(cid, holder))
                store.upsert_number(msisdn, cid)
                for s in subs:
                    store.upsert_subscription(Subscription(iccid(s), f"26201{s:010d}",
                                                           None, cid))
                    # The operator put each profile on its device's eUICC.
                    store.record_installation(Installation(
                        iccid(s), device(s).device_id, f"bind-{s}", BINDING_SOURCE, 0))
            store.upsert_app(App("health", "Health", TrustLevel.VERIFIED,
                                 ("health-monitoring",)))
            store.upsert_app(App("care", "Care", TrustLevel.PARTNER, ("support",),
                                 standing_consent=True))
            store.upsert_app(App("tracker", "Tracker", TrustLevel.UNVERIFIED, ("fitness",)))
        registry = Registry(store, signatures=SignaturePolicy.REQUIRED)
        ca = OperatorCA.create(workdir / "ca")
        bundles: dict[str, Path] = {}
        for name, role, subject in (("bridge", Role.BRIDGE, "attack-suite"),
                                    ("a", Role.DEVICE, device(1).device_id),
                                    ("b", Role.DEVICE, device(9).device_id),
                                    ("c", Role.DEVICE, device(2).device_id),
                                    ("health", Role.APP, "health"), ("care", Role.APP, "care"),
                                    ("tracker", Role.APP, "tracker"),
                                    ("paul", Role.USER, PAUL)):
            bundles[name] = issue(registry, role, subject, workdir / "bundles" / name,
                                  ca=ca).directory
        tls_port = free_port()
        config = MosquittoConfig(port=None, tls_port=tls_port, acl=acl,
                              user="root" if os.geteuid() == 0 else None, persistence=False,
                              extra=("log_type all",))
        files = write_broker_config(workdir / "broker", config, store.identities(), ca=ca)
        with Mosquitto(config_file=files.conf, tls_port=tls_port,
                       workdir=workdir / "broker") as broker:
            yield _Deployment(store, registry, broker, ca, bundles, Topics(), acl)


def run_attacks(workdir: Path, *, acl: str | None = None, smdp_sessions: int = 10_000,
                smdp_slow: int = 1000) -> AttackReport:
    """Set up the deployment in ``workdir`` and try every attack; ``acl`` is the mode
    of :data:`~broker_bridge.brokerconf.ACL_MODES` to configure (default ``dynsec``).
    ``smdp_sessions`` and ``smdp_slow`` size the floods against the SM-DP+ (0: skip)."""
    from mps_bench.broker_attacks import BRIDGE_CLIENT_ID

    mode = acl or "dynsec"
    started = time.monotonic()
    report = AttackReport()
    with _deployment(workdir, mode) as dep, \
            Bridge(dep.store, dep.url("bridge"), signatures=SignaturePolicy.REQUIRED,
                   sweep_interval=0.2, relay_grace=1.0, client_id=BRIDGE_CLIENT_ID):
        clients: dict[str, RawClient] = {}
        try:
            t = dep.topics
            for name, reply_topic in (("a", t.device_reply(device(1).device_id)),
                                      ("c", t.device_reply(device(2).device_id)),
                                      ("health", t.app_replies("health")),
                                      ("care", t.app_replies("care")),
                                      ("paul", t.user_replies(PAUL))):
                clients[name] = RawClient(dep.url(name))
                clients[name].subscribe(reply_topic)
            _Attacks(dep, clients, report).run_all()
            log = (dep.broker.workdir / "mosquitto.log").read_text(errors="replace")
            report.owners_closed = [
                who for who in ("bridge", *clients) if f"Client {dep.username(who)} "
                "already connected, closing old connection" in log]
        finally:
            for client in clients.values():
                client.close()
    if smdp_sessions and smdp_slow:
        from mps_bench.smdp_attacks import run_smdp_attacks

        report.results += run_smdp_attacks(workdir / "smdp", sessions=smdp_sessions,
                                           slow=smdp_slow)
    report.seconds = time.monotonic() - started
    return report


class _Attacks:
    def __init__(self, dep: _Deployment, clients: dict[str, RawClient],
                 report: AttackReport) -> None:
        self.dep = dep
        self.c = clients
        self.report = report
        self.t = dep.topics

    # --- bookkeeping ---------------------------------------------------------------------

    def _audited(self, mark: int, actor: str, code: str | None = None,
                 outcome: str | None = None) -> bool:
        for entry in self.dep.store.audit(after=mark):
            if entry.actor != actor:
                continue
            if code is not None and entry.detail.get("code") != code:
                continue
            if outcome is not None and entry.outcome != outcome:
                continue
            return True
        return False

    def _mark(self) -> int:
        entries = self.dep.store.audit()
        return entries[-1].id if entries else 0

    def registry_refusal(self, name: str, description: str, actor: str,
                         attempt: Callable[[], dict[str, Any] | None], code: str) -> None:
        mark = self._mark()
        reply = attempt()
        got = "no reply" if reply is None else f"{reply.get('status')}/{reply.get('code')}"
        refused = reply is not None and reply.get("code") == code
        self.report.results.append(AttackResult(
            name, description, refused, "registry", got, self._audited(mark, actor, code)))

    def broker_log(self) -> str:
        path = self.dep.broker.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def publish_refusal(self, name: str, description: str, client: str, topic: str,
                        payload: bytes) -> None:
        code = self.c[client].publish(topic, payload)
        refused = code >= 0x80
        logged = wait_for(lambda: any("Denied PUBLISH" in line and f"'{topic}'" in line
                                      for line in self.broker_log().splitlines()))
        self.report.results.append(AttackResult(
            name, description, refused, "broker", f"PUBACK reason code 0x{code:02x}",
            recorded=refused and logged, record="broker log"))

    def register(self, who: str, info: DeviceInfo, payload: bytes | None = None
                 ) -> dict[str, Any] | None:
        eid = info.device_id  # the topic is always the sender's own
        body = payload if payload is not None else encode_registration(info, self.dep.key(who))
        return self.c[who].request(self.t.device_register(eid), body,
                                   self.t.device_reply(eid))

    def app_request(self, app: str, msg: dict[str, Any] | bytes, *,
                    reply_to: str | None = None) -> dict[str, Any] | None:
        payload = msg if isinstance(msg, bytes) else codec.encode(msg)
        return self.c[app].request(self.t.app_requests(app), payload,
                                   reply_to or self.t.app_replies(app), timeout=2.0)

    # --- the attacks ---------------------------------------------------------------------

    def run_all(self) -> None:
        a1 = device(1)
        pending = self._legitimate(a1)
        self._consented(pending)
        self._foreign_reply_topic()
        self._foreign_events()
        self._foreign_topics()
        self._registration_attacks(a1)
        self._size_attacks(a1)
        self._anonymous()
        from mps_bench.broker_attacks import run_broker_attacks
        from mps_bench.identity_attacks import run_identity_attacks

        run_identity_attacks(self)
        run_broker_attacks(self, a1.device_id)
        # Nothing the attacks tried may have changed device A.
        stored = self.dep.store.device(a1.device_id)
        if stored is None or stored.ip != ("10.9.9.9",) or stored.iccid != a1.iccid:
            raise RuntimeError(f"device A changed under attack: {stored}")

    def _legitimate(self, a1: DeviceInfo) -> dict[str, Any]:
        """Device A registers, the care app pairs with Paul, the health app asks (pending)."""
        t = self.t
        # Legitimate traffic first: device A registers, the care app pairs with Paul.
        first = self.register("a", a1)
        if first is None or first.get("status") != "ok":
            raise RuntimeError(f"the deployment does not work: device A got {first}")
        care_events = self.c["care"]
        care_events.subscribe(t.app_events("care"))
        paired = self.app_request("care", {"op": "pair", "msisdn": PAUL_MSISDN,
                                           "purpose": "support"})
        if paired is None or paired.get("status") != "ok":
            raise RuntimeError(f"the deployment does not work: care got {paired}")

        pending = self.app_request("health", {"op": "pair", "msisdn": PAUL_MSISDN,
                                              "purpose": "health-monitoring"})
        if pending is None or pending.get("status") != "pending":
            raise RuntimeError(f"the deployment does not work: health got {pending}")
        return pending

    def _consented(self, pending: dict[str, Any]) -> None:
        dep = self.dep
        self.registry_refusal(
            "app-without-consent", "a verified app asks for a contract's devices before "
            "the user consented", "app:health",
            lambda: self.app_request("health", {"op": "devices", "msisdn": PAUL_MSISDN}),
            "denied")
        # Paul consents; the health app is now paired with his contract, and only his.
        pairing = dep.store.pairing(str(pending.get("pairing")))
        if pairing is None or pairing.prompt_id is None:
            raise RuntimeError("the pending pairing has no consent prompt")
        approved = dep.registry.user_request(PAUL, ConsentAnswerRequest(pairing.prompt_id,
                                                                        Decision.APPROVE))
        if not approved.reply.is_ok:
            raise RuntimeError(f"Paul's consent was refused: {approved.reply}")
        self.registry_refusal(
            "app-other-contract", "a paired app asks for another contract's devices",
            "app:health", lambda: self.app_request("health", {"op": "devices",
                                                              "msisdn": LENA_MSISDN}),
            "denied")

    def _foreign_topics(self) -> None:
        t, dep = self.t, self.dep
        self.publish_refusal(
            "foreign-register-topic", "a device publishes on another device's register "
            "topic", "a", t.device_register(device(9).device_id),
            encode_registration(device(9), dep.key("a")))
        self.publish_refusal(
            "user-other-contract", "a user agent answers prompts of another contract",
            "paul", t.user_requests(LENA), codec.encode({"op": "consent-list"}))

    def _registration_attacks(self, a1: DeviceInfo) -> None:
        dep = self.dep
        dep.store.record_installation(Installation(iccid(2), device(2).device_id, "txn-c",
                                                   "smdp", 1))
        self.registry_refusal(
            "foreign-subscription", "a device registers with a profile installed on "
            "another eUICC", f"device:{a1.eid}",
            lambda: self.register("a", device(1, sub=2, seq=2)), "denied")
        self.registry_refusal(
            "claimed-eid", "a device registers another device's EID on its own topic",
            f"device:{a1.eid}",
            lambda: self.register("a", a1, encode_registration(
                replace(device(9), seq=5), dep.key("a"))), "bad-request")
        forger = ec.generate_private_key(ec.SECP256R1())
        self.registry_refusal(
            "forged-signature", "a registration signed with a key the operator did not "
            "enroll", f"device:{a1.eid}",
            lambda: self.register("a", a1, encode_registration(device(1, seq=3), forger)),
            "bad-signature")
        self.registry_refusal(
            "unsigned", "an unsigned registration from a device with an enrolled key",
            f"device:{a1.eid}",
            lambda: self.register("a", a1, encode_registration(device(1, seq=3))),
            "signature-required")
        old = encode_registration(a1, dep.key("a"))
        newer = self.register("a", device(1, seq=4, ip=("10.9.9.9",)))
        if newer is None or newer.get("status") != "ok":
            raise RuntimeError(f"a legitimate update was refused: {newer}")
        self.registry_refusal(
            "replayed-registration", "a captured registration sent again after a newer "
            "one", f"device:{a1.eid}", lambda: self.register("a", a1, old), "replay")

    def _size_attacks(self, a1: DeviceInfo) -> None:
        big = codec.encode({**a1.to_wire(), "pad": "x" * 20_000})
        deep = b"\x81" * 64 + b"\x00"
        self.registry_refusal("oversized-registration", "a 20 kB registration",
                              f"device:{a1.eid}", lambda: self.register("a", a1, big),
                              "too-large")
        self.registry_refusal("deeply-nested-registration", "a registration nested 64 deep",
                              f"device:{a1.eid}", lambda: self.register("a", a1, deep),
                              "too-large")
        self.registry_refusal("oversized-app-request", "a 20 kB app request", "app:health",
                              lambda: self.app_request("health", big), "too-large")
        self.registry_refusal("deeply-nested-app-request", "an app request nested 64 deep",
                              "app:health", lambda: self.app_request("health", deep),
                              "too-large")

    def _foreign_reply_topic(self) -> None:
        t = self.t
        mark = self._mark()
        health, care = self.c["health"], self.c["care"]
        care.drain(0.05)
        reply = self.app_request("health", {"op": "devices", "msisdn": PAUL_MSISDN},
                                 reply_to=t.app_replies("care"))
        stolen = [m for m in care.drain(0.5) if m[0] == t.app_replies("care")]
        refused = reply is None and not stolen
        self.report.results.append(AttackResult(
            "foreign-reply-topic", "an app names another app's replies as Response Topic",
            refused, "registry", "dropped" if refused else "answered",
            self._audited(mark, "app:health", "forbidden-topic")))
        health.drain(0.05)

    def _foreign_events(self) -> None:
        t = self.t
        health, care = self.c["health"], self.c["care"]
        code = health.subscribe(t.app_events("care"))
        wildcard = health.subscribe(t.app_namespace("care") + "#")
        care.drain(0.1)
        # A new device on Paul's contract: the care app is told, nobody else.
        c2 = device(2)
        self.c["c"].request(t.device_register(c2.device_id), encode_registration(
            c2, self.dep.key("c")), t.device_reply(c2.device_id))
        got_care = [m for m in care.drain(1.0) if m[0] == t.app_events("care")]
        leaked = [m for m in health.drain(0.3) if m[0].startswith(t.app_namespace("care"))]
        if not got_care:
            raise RuntimeError("the care app was not told about the new device")
        codes = f"SUBACK reason codes 0x{code:02x}, 0x{wildcard:02x}"
        both_refused = code >= 0x80 and wildcard >= 0x80
        self.report.results.append(AttackResult(
            "foreign-events-subscription", "an app subscribes to another app's events",
            not leaked, "broker", codes + ("" if both_refused else ", nothing delivered")
            if not leaked else codes + f", {len(leaked)} delivered",
            recorded=both_refused, record="reason code to the client"))

    def _refusals_above(self, count: int) -> bool:
        return self.broker_log().count("not authorised") > count

    def _anonymous(self) -> None:
        url = self.dep.url("health")
        for name, description, bad in (
                ("anonymous-login", "a client without credentials",
                 replace(url, username=None, password=None)),
                ("wrong-password", "an app with a guessed password",
                 replace(url, password=secrets.token_urlsafe(24)))):
            before = self.broker_log().count("not authorised")
            try:
                client = new_client()
                connect(client, bad, timeout=3)
            except BrokerUnreachableError:
                logged = wait_for(partial(self._refusals_above, before))
                self.report.results.append(AttackResult(
                    name, description, True, "broker", "CONNACK: not authorized", logged,
                    record="broker log"))
            else:
                disconnect(client)
                self.report.results.append(AttackResult(name, description, False, "broker",
                                                        "connected", False,
                                                        record="broker log"))


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
