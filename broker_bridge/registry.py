"""The registry's rules, each one transaction of the store.

:class:`Registry` is what the MQTT service (:class:`broker_bridge.service.Bridge`) and the
administration commands share: registrations, pairing with trust levels and consent,
operator data changes, app administration and the housekeeping (expiring prompts).
Every change and the events it causes are written in one transaction: an app's events
(``device-added`` when a device joins its paired contract, ...) get their sequence
numbers there, so nothing is announced that was not stored and nothing stored goes
unannounced. Publishing is the caller's job, after the commit: each operation returns
:class:`Effects` naming the events to publish and the contracts whose consent prompts
changed.

Refused requests change no registry state; requests from a known party (an app, a user
agent, the operator) are recorded in the audit log with their answer, refused ones too,
while undecodable or malformed requests are only logged.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from broker_bridge.errors import (
    ForeignSubscriptionError,
    ReplayError,
    UnknownContractError,
    UnknownEntityError,
    UnknownSubscriptionError,
)
from broker_bridge.model import (
    App,
    AuditEntry,
    Change,
    ConsentSource,
    Contract,
    Device,
    DeviceKey,
    Installation,
    OtherOperator,
    Pairing,
    PairingState,
    RegistrationOutcome,
    StoredEvent,
    Subscription,
    now_ms,
)
from broker_bridge.policy import AccessPolicy, ConsentRule, Decision, TrustPolicy
from broker_bridge.storage.base import Store
from broker_bridge.views import AppView
from mps_wire import codec
from mps_wire.cose import CoseError, key_id, load_public_key, public_key_der
from mps_wire.errors import ErrorCode, WireError
from mps_wire.identifiers import validate_eid
from mps_wire.messages import (
    AppOp,
    AppRequest,
    ChangeKind,
    ConsentAnswerRequest,
    ConsentListRequest,
    ConsentWithdrawRequest,
    DeviceInfo,
    DevicesRequest,
    EventKind,
    EventsSinceRequest,
    InstallationOutcome,
    InstallationResult,
    OperatorOp,
    OperatorRequest,
    PairRequest,
    Reason,
    RegistrationResult,
    Reply,
    Status,
    UnpairRequest,
    UserRequest,
    parse_app_request,
    parse_operator_request,
    parse_user_request,
)
from mps_wire.messages import (
    Decision as UserDecision,
)
from mps_wire.registration import Registration, decode_registration, digest_of

log = logging.getLogger(__name__)

DEFAULT_CONSENT_TTL = 900.0
"""Seconds a consent prompt stays open before it expires (and the app is denied)."""

EVENTS_PAGE_BYTES = 48 * 1024
"""About how much event data one ``events-since`` reply carries; the rest is ``more``."""

_PSEUDONYM_KEY_NAME = "pseudonyms"
INSTALLATIONS_SOURCE = "smdp"
"""The operator source named in the audit log for installation results."""
_APP_OPS = frozenset(op.value for op in AppOp)
_KEY_CACHE_SIZE = 100_000


class SignaturePolicy(enum.StrEnum):
    """Which registrations must be signed (COSE_Sign1, ES256) by the device's enrolled key.

    Under both, a device whose key the operator enrolled is refused unless it signs with
    that key: enrolling a key can never be undone by an attacker sending unsigned
    messages.
    """

    REQUIRED = "required"  # every registration; a device without a key cannot register
    ENROLLED = "enrolled"  # devices with a key; the others may register unsigned


def new_id(kind: str) -> str:
    """A fresh random id: ``pr-`` for pairings, ``cp-`` for consent prompts."""
    return f"{kind}-{secrets.token_hex(8)}"


@dataclass(slots=True)
class Effects:
    """What a committed operation asks its caller to publish."""

    events: list[StoredEvent] = field(default_factory=list)
    consent: set[str] = field(default_factory=set)  # contracts whose open prompts changed

    def add(self, other: Effects) -> None:
        self.events += other.events
        self.consent |= other.consent

    def __bool__(self) -> bool:
        return bool(self.events or self.consent)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A request's reply and the effects to publish once it is committed."""

    reply: Reply
    effects: Effects = field(default_factory=Effects)
    #: Nothing but its audit entry was written: the reply tells only what was already
    #: committed, so it may go out before that entry commits (see the bridge).
    read_only: bool = False


class _Refused(Exception):
    """Raised inside a transaction to roll it back and answer ``reply``."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.message)
        self.reply = reply


def refusal(status: Status, code: ErrorCode, message: str, reason: str | None = None
            ) -> Reply:
    """A refusing reply with a stable ``reason`` in its body."""
    return Reply(status, code=code, message=message,
                 body={"reason": str(reason)} if reason else {})


def _denied(decision: Decision) -> Reply:
    return refusal(Status.DENIED, ErrorCode.DENIED, decision.message or "not allowed",
                   decision.reason or None)


class Registry:
    """The registry's operations over ``store``; see the module documentation.

    ``consent_ttl`` is how long (seconds) a consent prompt stays open; ``signatures``
    which registrations must be signed (default: those of devices with an enrolled key,
    so that devices provisioned without keys keep working). Constructing does no I/O.
    Safe to use from several threads, and from several processes sharing a store.
    """

    def __init__(self, store: Store, *, policy: AccessPolicy | None = None,
                 consent_ttl: float = DEFAULT_CONSENT_TTL,
                 signatures: SignaturePolicy = SignaturePolicy.ENROLLED,
                 clock: Callable[[], int] = now_ms) -> None:
        if isinstance(consent_ttl, bool) or not consent_ttl > 0:
            raise ValueError(f"consent_ttl must be a positive number of seconds, "
                             f"not {consent_ttl!r}")
        self.signatures = SignaturePolicy(signatures)
        self.store = store
        self.policy: AccessPolicy = policy or TrustPolicy()
        self.consent_ttl_ms = int(consent_ttl * 1000)
        self._clock = clock
        self._secret: bytes | None = None
        self._keys: dict[bytes, ec.EllipticCurvePublicKey] = {}  # parsed public keys by their DER

    # --- helpers -------------------------------------------------------------------------

    def view(self, app: App) -> AppView:
        """How ``app`` sees devices and contracts under the policy."""
        if self._secret is None:
            self._secret = self.store.secret(_PSEUDONYM_KEY_NAME)
        disclosed = self.policy.disclose(app)
        return AppView(app.id, self._secret, disclosed.fields,
                       real_contract=disclosed.real_contract)

    def _audit(self, actor: str, action: str, outcome: str, **kw: Any) -> AuditEntry:
        return self.store.append_audit(actor, action, outcome, now=self._clock(), **kw)

    def route(self, msisdn: str) -> Contract | Reply:
        """The contract behind a number, or the reply for a number not served here.

        A number filed under a contract is ours (ported in or not); a number ported away
        or in another operator's prefix range gets ``redirect`` to that operator's
        registry; anything else is ``not-found``.
        """
        contract = self.store.contract_by_msisdn(msisdn)
        if contract is not None:
            return contract
        other = self.store.ported_to(msisdn) or self.store.operator_by_prefix(msisdn)
        if other is not None:
            return Reply(Status.REDIRECT, message=f"the number {msisdn} is served by "
                         f"{other.name}; ask its registry",
                         body={"msisdn": msisdn, "operator": other.id, "name": other.name,
                               "registry": other.registry, "prefix": other.prefix})
        return refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                       f"no contract for the number {msisdn}")

    def refuse(self, actor: str, action: str, reply: Reply, **kw: Any) -> Outcome:
        """Record a refusal in the audit log and return it as the outcome.

        ``kw`` are the audit entry's fields (``subject``, ``app_id``, ``contract_id``,
        ``detail``); the reply's code and reason are added to the detail.
        """
        return self._refused(actor, action, reply, **kw)

    def _refused(self, actor: str, action: str, reply: Reply, **kw: Any) -> Outcome:
        self._audit(actor, action, reply.status.value,
                    detail={**kw.pop("detail", {}), **_reply_detail(reply)}, **kw)
        return Outcome(reply)

    # --- registrations -------------------------------------------------------------------

    def handle_registration(self, device_id: str, payload: bytes) -> Outcome:
        """Answer a register payload that arrived on the topic of ``device_id``.

        The payload is decoded with the contract's limits, its signature checked against
        the device's enrolled key (see :class:`SignaturePolicy`), its sequence number
        against the last one accepted (replays are refused), and its subscription against
        the SM-DP+'s installation results. Every refusal is written to the audit log.
        """
        actor = f"device:{device_id}"
        try:
            registration = decode_registration(payload)
        except WireError as exc:
            return self._refused(actor, "register", refusal(Status.ERROR, exc.code,
                                                            exc.message),
                                 subject=device_id, detail={"bytes": len(payload)})
        info = registration.info
        detail: dict[str, Any] = {"seq": info.seq, "iccid": info.iccid,
                                  "signed": registration.signed is not None}
        if info.eid != device_id:
            return self._refused(actor, "register", refusal(
                Status.ERROR, ErrorCode.BAD_REQUEST,
                f"the EID {info.eid} is not the device id {device_id} of the topic"),
                subject=device_id, detail={**detail, "eid": info.eid})
        problem = self._check_signature(registration)
        if problem is not None:
            return self._refused(actor, "register", problem, subject=device_id,
                                 detail=detail)
        try:
            outcome, effects = self.register(info, digest=registration.digest)
        except ReplayError as exc:
            reply = Reply(Status.DENIED, code=exc.code, message=str(exc),
                          body={"last_seq": exc.last_seq})
            return self._refused(actor, "register", reply, subject=device_id,
                                 detail={**detail, "last_seq": exc.last_seq})
        except UnknownSubscriptionError as exc:
            return self._refused(actor, "register", refusal(Status.ERROR, exc.code, str(exc)),
                                 subject=device_id, detail=detail)
        except ForeignSubscriptionError as exc:
            log.warning("registration of %s refused: %s (installed on %s)", device_id, exc,
                        exc.installed_on)
            return self._refused(actor, "register", refusal(Status.DENIED, exc.code, str(exc)),
                                 subject=device_id,
                                 detail={**detail, "installed_on": exc.installed_on})
        body: dict[str, Any] = {"result": outcome.result.value, "device_id": info.device_id,
                                "contract": outcome.contract_id}
        if outcome.changes:
            body["changes"] = [c.value for c in outcome.changes]
        return Outcome(Reply.ok(**body), effects)

    def enroll_device_key(self, eid: str, public_key: bytes, *,
                          actor: str = "operator:cli") -> tuple[DeviceKey, Change]:
        """Enroll a device's P-256 public key (PEM or DER); from now on the device must
        sign its registrations with it. ValueError for an invalid EID or key."""
        validate_eid(eid)
        key = load_public_key(public_key)
        record = DeviceKey(eid=eid, public_key=public_key_der(key), kid=key_id(key),
                           enrolled_at=self._clock(), enrolled_by=actor)
        with self.store.transaction():
            change = self.store.put_device_key(record)
            if change is not Change.UNCHANGED:
                self._audit(actor, "device-key", change.value, subject=eid,
                            detail={"kid": record.kid.hex()})
        return record, change

    def withdraw_device_key(self, eid: str, *, actor: str = "operator:cli") -> bool:
        """Withdraw a device's key (it is lost or compromised); False if there was none.

        Under :attr:`SignaturePolicy.REQUIRED` the device cannot register until a new key
        is enrolled.
        """
        with self.store.transaction():
            removed = self.store.remove_device_key(eid)
            if removed:
                self._audit(actor, "device-key", "removed", subject=eid)
        return removed

    def _check_signature(self, registration: Registration) -> Reply | None:
        """The refusal for a registration whose signature the policy does not accept."""
        eid = registration.info.eid
        key = self.store.device_key(eid)
        if registration.signed is None:
            if key is not None:
                # Never a downgrade: a device with a key signs, or is refused.
                return refusal(Status.DENIED, ErrorCode.SIGNATURE_REQUIRED,
                               f"device {eid} has an enrolled key; its registrations must "
                               "be signed")
            if self.signatures is SignaturePolicy.REQUIRED:
                return refusal(Status.DENIED, ErrorCode.SIGNATURE_REQUIRED,
                               "this registry accepts signed registrations only")
            return None
        if key is None:
            return refusal(Status.DENIED, ErrorCode.SIGNATURE_REQUIRED,
                           f"no signing key is enrolled for device {eid}; the operator "
                           "must enroll its public key first")
        signed = registration.signed
        if signed.kid and signed.kid != key.kid:
            return refusal(Status.DENIED, ErrorCode.BAD_SIGNATURE,
                           f"signed with key id {signed.kid.hex()}, but the key enrolled "
                           f"for {eid} is {key.kid.hex()}")
        try:
            registration.verify(self._public_key(key.public_key))
        except (CoseError, ValueError) as exc:
            return refusal(Status.DENIED, ErrorCode.BAD_SIGNATURE, str(exc))
        return None

    def _public_key(self, der: bytes) -> ec.EllipticCurvePublicKey:
        """The enrolled key ``der`` parsed, once per key (parsing costs more than half a
        verification)."""
        found = self._keys.get(der)
        if found is None:
            found = load_public_key(der)
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[der] = found
        return found

    def register(self, info: DeviceInfo, *, digest: str | None = None
                 ) -> tuple[RegistrationOutcome, Effects]:
        """Store a registration and announce it to the apps paired with its contract.

        Raises UnknownSubscriptionError (nothing stored) for an ICCID the operator does not
        know, ForeignSubscriptionError for a profile the SM-DP+ reported installed on
        another eUICC, ReplayError for a sequence number below the last one accepted from
        the device, or equal to it with different content. The same message again (a
        QoS 1 redelivery, a device retrying after a lost reply) is answered as before.
        ``digest`` is the message's :func:`~mps_wire.registration.digest_of`.
        """
        digest = digest or digest_of(info)
        effects = Effects()
        with self.store.transaction():
            now = self._clock()
            last = self.store.last_registration(info.eid)
            if last is not None:
                last_seq, last_digest = last
                if info.seq < last_seq or (info.seq == last_seq and last_digest
                                           and last_digest != digest):
                    raise ReplayError(info.eid, info.seq, last_seq)
            installed = self.store.installation(info.iccid)
            if installed is not None and installed.eid != info.eid:
                # The SM-DP+ installed this profile on another eUICC: whoever presents it
                # here does not hold it.
                raise ForeignSubscriptionError(info.iccid, info.eid, installed.eid)
            outcome = self.store.register_device(info, now=now)
            if last is None or info.seq > last[0] or not last[1]:
                self.store.note_registration(info.eid, info.seq, digest, now=now)
            device = outcome.device
            actor = f"device:{device.eid}"
            if outcome.result is RegistrationResult.REGISTERED:
                self._announce(outcome.contract_id, EventKind.DEVICE_ADDED, device, now,
                               effects)
                self._audit(actor, "register", outcome.result.value,
                            contract_id=outcome.contract_id, subject=device.eid,
                            detail={"imei": device.imei, "iccid": device.iccid})
            elif outcome.result is RegistrationResult.UPDATED and outcome.previous:
                before = outcome.previous
                detail: dict[str, Any] = {"changes": [c.value for c in outcome.changes]}
                if before.contract_id != outcome.contract_id:
                    self._announce(before.contract_id, EventKind.DEVICE_REMOVED, before, now,
                                   effects, reason=Reason.LEFT_CONTRACT)
                    self._announce(outcome.contract_id, EventKind.DEVICE_ADDED, device, now,
                                   effects)
                    detail["contract"] = [before.contract_id, outcome.contract_id]
                elif outcome.changes:
                    self._announce(outcome.contract_id, EventKind.DEVICE_UPDATED, device, now,
                                   effects, changes=outcome.changes)
                if ChangeKind.DEVICE_SWAP in outcome.changes:
                    detail["imei"] = [before.imei, device.imei]
                if ChangeKind.SIM_SWAP in outcome.changes:
                    detail["iccid"] = [before.iccid, device.iccid]
                self._audit(actor, "register", outcome.result.value,
                            contract_id=outcome.contract_id, subject=device.eid, detail=detail)
        return outcome, effects

    def _announce(self, contract_id: str, kind: EventKind, device: Device, now: int,
                  effects: Effects, *, changes: Iterable[ChangeKind] = (),
                  reason: str | None = None) -> None:
        """Append a device event for every app with an active pairing on the contract."""
        for pairing in self.store.pairings(contract_id=contract_id,
                                           states=(PairingState.ACTIVE,)):
            app = self.store.app(pairing.app_id)
            if app is None:
                continue
            view = self.view(app)
            payload: dict[str, Any] = {
                "event": kind.value, "ts": now, "pairing": pairing.id,
                "contract": view.contract_ref(contract_id),
                "device": view.record(device).to_wire(),
            }
            if kind is EventKind.DEVICE_UPDATED:
                payload["changes"] = [c.value for c in changes]
            if reason is not None:
                payload["reason"] = str(reason)
            effects.events.append(self.store.append_event(
                app.id, kind, payload, contract_id=contract_id, pairing_id=pairing.id,
                now=now))

    # --- entry points for decoded messages ------------------------------------------------

    def handle_app(self, app_id: str, msg: Mapping[str, Any]) -> Outcome:
        """Answer a decoded app request: unknown apps are denied before anything else."""
        app = self._admit(app_id)
        if isinstance(app, Reply):
            op = msg.get("op")
            return self._refused(f"app:{app_id}", op if isinstance(op, str) and
                                 op in _APP_OPS else "request", app, app_id=app_id)
        try:
            request = parse_app_request(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.app_request(app_id, request, admitted=app)

    def handle_user(self, contract_id: str, msg: Mapping[str, Any]) -> Outcome:
        """Answer a decoded request of the user agent of ``contract_id``."""
        try:
            request = parse_user_request(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.user_request(contract_id, request)

    def handle_operator(self, source: str, msg: Mapping[str, Any]) -> Outcome:
        """Apply a decoded operator data change from ``source``."""
        try:
            request = parse_operator_request(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.operator_request(source, request)

    def handle_installation(self, msg: Mapping[str, Any]) -> Outcome:
        """Record a decoded installation result of the SM-DP+."""
        try:
            report = InstallationResult.from_wire(msg)
        except WireError as exc:
            return Outcome(refusal(Status.ERROR, exc.code, exc.message))
        return self.installation(report)

    def installation(self, report: InstallationResult) -> Outcome:
        """Bind the profile to the eUICC that installed it (a later registration of the
        profile from another EID is refused); a failed installation is only recorded in
        the audit log. A report that arrives twice changes nothing the second time."""
        actor = f"operator:{INSTALLATIONS_SOURCE}"
        with self.store.transaction():
            change = Change.UNCHANGED
            detail: dict[str, Any] = {"eid": report.eid, "transaction": report.transaction,
                                      "smdp": report.smdp, "seq": report.seq}
            if report.result is InstallationOutcome.INSTALLED:
                change = self.store.record_installation(Installation(
                    report.iccid, report.eid, report.transaction, report.smdp, report.ts))
                others = [d.eid for d in self.store.devices_by_iccid(report.iccid)
                          if d.eid != report.eid]
                if others:
                    # Registered before the report came; the operator should look at it.
                    detail["registered_elsewhere"] = others
                    log.warning("profile %s was installed on %s but is registered by %s",
                                report.iccid, report.eid, ", ".join(others))
            elif report.reason:
                detail["reason"] = report.reason
            if change is not Change.UNCHANGED or report.result is InstallationOutcome.FAILED:
                sub = self.store.subscription_by_iccid(report.iccid)
                self._audit(actor, "installation", report.result.value,
                            contract_id=sub.contract_id if sub else None,
                            subject=report.iccid, detail={**detail, "change": change.value})
        return Outcome(Reply.ok(iccid=report.iccid, change=change.value))

    # --- app requests --------------------------------------------------------------------

    def app_request(self, app_id: str, request: AppRequest, *, admitted: App | None = None
                    ) -> Outcome:
        """Answer one validated app request; ``admitted`` is the app when the caller has
        just admitted it."""
        if isinstance(request, PairRequest):
            return self.pair(app_id, request, admitted=admitted)
        if isinstance(request, DevicesRequest):
            return self.devices(app_id, request, admitted=admitted)
        if isinstance(request, UnpairRequest):
            return self.unpair(app_id, request, admitted=admitted)
        return self.events_since(app_id, request, admitted=admitted)

    def _admit(self, app_id: str, admitted: App | None = None) -> App | Reply:
        if admitted is not None and admitted.id == app_id:
            return admitted
        app = self.store.app(app_id)
        decision = self.policy.admit(app_id, app)
        if app is None or not decision.allowed:
            return _denied(decision)
        return app

    def pair(self, app_id: str, request: PairRequest, *,
             admitted: App | None = None) -> Outcome:
        """Pair the app with the contract behind the number, asking the user if needed.

        ``ok`` with every device of the contract when paired at once (standing consent,
        or already paired); ``pending`` while the user is asked; ``denied`` for an app
        whose trust or purposes do not allow it; ``redirect``/``not-found`` for a number
        not served here. An app has at most one live pairing per contract: asking again
        while one is pending or active answers about that one.
        """
        actor = f"app:{app_id}"
        audit = {"app_id": app_id, "subject": request.msisdn,
                 "detail": {"purpose": request.purpose}}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self._refused(actor, "pair", app, **audit)
        routed = self.route(request.msisdn)
        if isinstance(routed, Reply):
            return self._refused(actor, "pair", routed, **audit)
        contract = routed
        decision = self.policy.pairing(app, request.purpose)
        if not decision.allowed:
            return self._refused(actor, "pair", _denied(decision), contract_id=contract.id,
                                 **audit)
        effects = Effects()
        with self.store.transaction():
            now = self._clock()
            live = self.store.live_pairing(app.id, contract.id)
            if (live is not None and live.state is PairingState.PENDING
                    and (live.expires_at or 0) <= now):
                self._expire(live, now, effects)
                live = None
            repeat = live is not None
            if live is None:
                live = self._start_pairing(app, decision, contract, request, now, effects)
            reply = self._pairing_reply(app, live, now)
            self._audit(actor, "pair", reply.status.value, contract_id=contract.id,
                        app_id=app.id, subject=request.msisdn,
                        detail={"purpose": request.purpose, "pairing": live.id,
                                "repeat": repeat, "consent": decision.consent.value})
        return Outcome(reply, effects)

    def _start_pairing(self, app: App, decision: Decision, contract: Contract,
                       request: PairRequest, now: int, effects: Effects) -> Pairing:
        pairing = Pairing(id=new_id("pr"), app_id=app.id, contract_id=contract.id,
                          msisdn=request.msisdn, purpose=request.purpose,
                          state=PairingState.PENDING, created_at=now)
        if decision.consent is ConsentRule.STANDING:
            pairing = replace(pairing, state=PairingState.ACTIVE,
                              consent=ConsentSource.STANDING, decided_at=now,
                              decided_by="operator")
            self.store.add_pairing(pairing)
            self._granted(app, pairing, now, effects)
        else:
            pairing = replace(pairing, prompt_id=new_id("cp"),
                              expires_at=now + self.consent_ttl_ms)
            self.store.add_pairing(pairing)
            self.store.bump_consent_revision(contract.id)
            effects.consent.add(contract.id)
        return pairing

    def _granted(self, app: App, pairing: Pairing, now: int, effects: Effects) -> None:
        view = self.view(app)
        devices = self.store.devices_of_contract(pairing.contract_id)
        payload = {
            "event": EventKind.PAIRING_GRANTED.value, "ts": now, "pairing": pairing.id,
            "contract": view.contract_ref(pairing.contract_id), "purpose": pairing.purpose,
            "consent": (pairing.consent or ConsentSource.USER).value,
            "devices": [view.record(d).to_wire() for d in devices],
        }
        effects.events.append(self.store.append_event(
            app.id, EventKind.PAIRING_GRANTED, payload, contract_id=pairing.contract_id,
            pairing_id=pairing.id, now=now))

    def _pairing_reply(self, app: App, pairing: Pairing, now: int) -> Reply:
        view = self.view(app)
        body: dict[str, Any] = {"pairing": pairing.id, "state": pairing.state.value,
                                "contract": view.contract_ref(pairing.contract_id),
                                "purpose": pairing.purpose}
        if pairing.state is PairingState.PENDING:
            body["expires_at"] = pairing.expires_at or now
            return Reply(Status.PENDING, message="waiting for the user's consent", body=body)
        body["consent"] = (pairing.consent or ConsentSource.USER).value
        body["devices"] = [view.record(d).to_wire()
                           for d in self.store.devices_of_contract(pairing.contract_id)]
        return Reply.ok(**body)

    def devices(self, app_id: str, request: DevicesRequest, *,
                admitted: App | None = None) -> Outcome:
        """Every device of the contract behind the number, for a paired app (or one with
        standing consent)."""
        actor = f"app:{app_id}"
        audit = {"app_id": app_id, "subject": request.msisdn}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self._refused(actor, "devices", app, **audit)
        routed = self.route(request.msisdn)
        if isinstance(routed, Reply):
            return self._refused(actor, "devices", routed, **audit)
        contract = routed
        live = self.store.live_pairing(app.id, contract.id)
        if live is None or live.state is not PairingState.ACTIVE:
            decision = self.policy.pairing(app, None)
            if not decision.allowed:
                return self._refused(actor, "devices", _denied(decision),
                                     contract_id=contract.id, **audit)
            if decision.consent is not ConsentRule.STANDING:
                if live is not None:
                    reply = refusal(Status.PENDING, ErrorCode.DENIED,
                                    "the user has not answered the consent prompt yet",
                                    Reason.CONSENT_PENDING)
                else:
                    reply = refusal(Status.DENIED, ErrorCode.DENIED,
                                    f"app {app.id} is not paired with this contract; "
                                    "ask to pair first", Reason.NOT_PAIRED)
                return self._refused(actor, "devices", reply, contract_id=contract.id,
                                     **audit)
        view = self.view(app)
        records = [view.record(d).to_wire() for d in self.store.devices_of_contract(contract.id)]
        self._audit(actor, "devices", Status.OK.value, contract_id=contract.id, **audit,
                    detail={"devices": len(records),
                            "pairing": live.id if live is not None else None})
        return Outcome(Reply.ok(contract=view.contract_ref(contract.id), devices=records),
                       read_only=True)

    def unpair(self, app_id: str, request: UnpairRequest, *,
               admitted: App | None = None) -> Outcome:
        """End the app's pairing (named by id, or by the number it was made with)."""
        actor = f"app:{app_id}"
        audit: dict[str, Any] = {"app_id": app_id,
                                 "subject": request.msisdn or request.pairing}
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return self._refused(actor, "unpair", app, **audit)
        pairing: Pairing | None
        if request.pairing is not None:
            pairing = self.store.pairing(request.pairing)
            if pairing is not None and pairing.app_id != app.id:
                pairing = None  # another app's pairing: as if it did not exist
        else:
            routed = self.route(request.msisdn or "")
            if isinstance(routed, Reply):
                return self._refused(actor, "unpair", routed, **audit)
            pairing = self.store.live_pairing(app.id, routed.id)
        if pairing is None:
            return self._refused(actor, "unpair", refusal(
                Status.ERROR, ErrorCode.NOT_FOUND, "no such pairing of this app",
                Reason.NOT_PAIRED), **audit)
        effects = Effects()
        with self.store.transaction():
            now = self._clock()
            if pairing.state.live:
                self._end(app, pairing, now, effects, by=actor, reason=Reason.UNPAIRED)
            current = self.store.pairing(pairing.id) or pairing
            self._audit(actor, "unpair", Status.OK.value, contract_id=pairing.contract_id,
                        **audit, detail={"pairing": pairing.id, "was": pairing.state.value})
        view = self.view(app)
        return Outcome(Reply.ok(pairing=pairing.id, state=current.state.value,
                                contract=view.contract_ref(pairing.contract_id)), effects)

    def _end(self, app: App, pairing: Pairing, now: int, effects: Effects, *, by: str,
             reason: str) -> bool:
        ended = replace(pairing, state=PairingState.ENDED, ended_at=now, ended_by=by,
                        end_reason=str(reason))
        if not self.store.update_pairing(ended, expect=pairing.state):
            return False
        if pairing.state is PairingState.PENDING:
            self.store.bump_consent_revision(pairing.contract_id)
            effects.consent.add(pairing.contract_id)
        view = self.view(app)
        payload = {"event": EventKind.PAIRING_ENDED.value, "ts": now, "pairing": pairing.id,
                   "contract": view.contract_ref(pairing.contract_id),
                   "purpose": pairing.purpose, "reason": str(reason)}
        effects.events.append(self.store.append_event(
            app.id, EventKind.PAIRING_ENDED, payload, contract_id=pairing.contract_id,
            pairing_id=pairing.id, now=now))
        return True

    def events_since(self, app_id: str, request: EventsSinceRequest, *,
                     admitted: App | None = None) -> Outcome:
        """The app's events after its cursor ``seq``, a page at a time."""
        app = self._admit(app_id, admitted)
        if isinstance(app, Reply):
            return Outcome(app)
        last = self.store.last_event_seq(app.id)
        fetched = self.store.events_since(app.id, request.seq, limit=request.limit)
        page: list[dict[str, Any]] = []
        size = 0
        for event in fetched:
            size += len(codec.encode(event.payload))
            if page and size > EVENTS_PAGE_BYTES:
                break
            page.append(event.payload)
        more = bool(page) and page[-1]["seq"] < last
        return Outcome(Reply.ok(events=page, last=last, more=more), read_only=True)

    # --- user (consent) requests ---------------------------------------------------------

    def user_request(self, contract_id: str, request: UserRequest) -> Outcome:
        """Answer one validated request of the user agent of ``contract_id``."""
        if self.store.contract(contract_id) is None:
            return Outcome(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                   f"no contract {contract_id}"))
        if isinstance(request, ConsentListRequest):
            return Outcome(Reply.ok(**self.consent_view(contract_id)))
        if isinstance(request, ConsentAnswerRequest):
            return self.answer(contract_id, request.prompt, request.decision)
        return self.withdraw(contract_id, request)

    def consent_view(self, contract_id: str) -> dict[str, Any]:
        """The contract's open prompts and granted consents, as the user agent sees them."""
        now = self._clock()
        prompts = []
        granted = []
        for pairing in self.store.pairings(contract_id=contract_id,
                                           states=(PairingState.PENDING,
                                                   PairingState.ACTIVE)):
            app = self.store.app(pairing.app_id)
            if app is None:
                continue
            if pairing.state is PairingState.PENDING:
                if (pairing.expires_at or 0) > now:
                    prompts.append(self.prompt_wire(app, pairing))
            else:
                granted.append({"pairing": pairing.id, "app": app.id, "app_name": app.name,
                                "trust": app.trust.value, "purpose": pairing.purpose,
                                "consent": (pairing.consent or ConsentSource.USER).value,
                                "since": pairing.decided_at or pairing.created_at})
        return {"contract": contract_id, "prompts": prompts, "granted": granted}

    def prompt_wire(self, app: App, pairing: Pairing) -> dict[str, Any]:
        """One consent prompt as shown to the user (``consent-prompt`` in the CDDL)."""
        fields = sorted({"device_id", *self.policy.disclose(app).fields})
        return {"prompt": pairing.prompt_id or "", "pairing": pairing.id, "app": app.id,
                "app_name": app.name, "trust": app.trust.value, "purpose": pairing.purpose,
                "fields": fields, "created_at": pairing.created_at,
                "expires_at": pairing.expires_at or pairing.created_at}

    def consent_snapshot(self, contract_id: str) -> tuple[int, dict[str, Any]]:
        """The retained consent-topic message of a contract and its revision."""
        # The revision is read first: should a change slip in between, the snapshot is
        # newer than its number says, and the change's own publication follows.
        revision = self.store.consent_revision(contract_id)
        view = self.consent_view(contract_id)
        return revision, {"contract": contract_id, "rev": revision, "ts": self._clock(),
                          "prompts": view["prompts"]}

    def answer(self, contract_id: str, prompt_id: str, decision: UserDecision, *,
               actor: str | None = None) -> Outcome:
        """The user's answer to a consent prompt of ``contract_id``."""
        who = actor or f"user:{contract_id}"
        audit = {"contract_id": contract_id, "subject": prompt_id,
                 "detail": {"decision": decision.value}}
        effects = Effects()
        try:
            with self.store.transaction():
                now = self._clock()
                pairing = self.store.pairing_by_prompt(prompt_id)
                if pairing is None or pairing.contract_id != contract_id:
                    raise _Refused(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                           f"no consent prompt {prompt_id} for this contract",
                                           Reason.UNKNOWN_PROMPT))
                app = self.store.app(pairing.app_id)
                if pairing.state is not PairingState.PENDING or app is None:
                    raise _Refused(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                           f"consent prompt {prompt_id} was already "
                                           f"{pairing.state.value}", Reason.ANSWERED))
                if (pairing.expires_at or 0) <= now:
                    raise _Refused(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                           f"consent prompt {prompt_id} has expired",
                                           Reason.EXPIRED))
                if decision is UserDecision.APPROVE:
                    decided = replace(pairing, state=PairingState.ACTIVE,
                                      consent=ConsentSource.USER, decided_at=now,
                                      decided_by=who)
                else:
                    decided = replace(pairing, state=PairingState.DENIED, decided_at=now,
                                      decided_by=who)
                if not self.store.update_pairing(decided, expect=PairingState.PENDING):
                    raise _Refused(refusal(Status.ERROR, ErrorCode.NOT_FOUND,
                                           f"consent prompt {prompt_id} was already answered",
                                           Reason.ANSWERED))
                if decision is UserDecision.APPROVE:
                    self._granted(app, decided, now, effects)
                else:
                    self._denied_event(app, decided, now, effects, Reason.USER_DENIED)
                self.store.bump_consent_revision(contract_id)
                effects.consent.add(contract_id)
                self._audit(who, "consent", decision.value, app_id=app.id,
                            contract_id=contract_id, subject=prompt_id,
                            detail={"pairing": pairing.id, "purpose": pairing.purpose})
        except _Refused as refused:
            return self._refused(who, "consent", refused.reply, **audit)
        return Outcome(Reply.ok(prompt=prompt_id, decision=decision.value,
                                pairing=pairing.id, app=app.id), effects)

    def _denied_event(self, app: App, pairing: Pairing, now: int, effects: Effects,
                      reason: str) -> None:
        view = self.view(app)
        payload = {"event": EventKind.PAIRING_DENIED.value, "ts": now, "pairing": pairing.id,
                   "contract": view.contract_ref(pairing.contract_id),
                   "purpose": pairing.purpose, "reason": str(reason)}
        effects.events.append(self.store.append_event(
            app.id, EventKind.PAIRING_DENIED, payload, contract_id=pairing.contract_id,
            pairing_id=pairing.id, now=now))

    def withdraw(self, contract_id: str, request: ConsentWithdrawRequest, *,
                 actor: str | None = None) -> Outcome:
        """The user withdraws consent: the pairings named end, their apps are told."""
        who = actor or f"user:{contract_id}"
        audit: dict[str, Any] = {"contract_id": contract_id,
                                 "subject": request.pairing or request.app}
        if request.pairing is not None:
            found = self.store.pairing(request.pairing)
            targets = ([found] if found is not None and found.contract_id == contract_id
                       and found.state is PairingState.ACTIVE else [])
        else:
            targets = self.store.pairings(app_id=request.app, contract_id=contract_id,
                                          states=(PairingState.ACTIVE,))
        if not targets:
            return self._refused(who, "consent-withdraw", refusal(
                Status.ERROR, ErrorCode.NOT_FOUND, "no such granted consent on this contract",
                Reason.NOT_PAIRED), **audit)
        effects = Effects()
        ended: list[str] = []
        with self.store.transaction():
            now = self._clock()
            for pairing in targets:
                app = self.store.app(pairing.app_id)
                if app is not None and self._end(app, pairing, now, effects, by=who,
                                                 reason=Reason.CONSENT_WITHDRAWN):
                    ended.append(pairing.id)
                    self._audit(who, "consent-withdraw", "ok", contract_id=contract_id,
                                app_id=pairing.app_id, subject=pairing.id,
                                detail={"purpose": pairing.purpose})
        return Outcome(Reply.ok(ended=ended), effects)

    # --- housekeeping --------------------------------------------------------------------

    def expire_prompts(self, *, limit: int = 100) -> Effects:
        """Expire the consent prompts whose time is up; their apps get ``pairing-denied``."""
        effects = Effects()
        for pairing in self.store.expired_prompts(self._clock(), limit=limit):
            with self.store.transaction():
                self._expire(pairing, self._clock(), effects)
        return effects

    def _expire(self, pairing: Pairing, now: int, effects: Effects) -> None:
        expired = replace(pairing, state=PairingState.EXPIRED, decided_at=now,
                          decided_by="registry")
        # Another process may have expired (or the user answered) it first.
        if not self.store.update_pairing(expired, expect=PairingState.PENDING):
            return
        self.store.bump_consent_revision(pairing.contract_id)
        effects.consent.add(pairing.contract_id)
        app = self.store.app(pairing.app_id)
        if app is not None:
            self._denied_event(app, expired, now, effects, Reason.EXPIRED)
        self._audit("registry", "consent", "expired", contract_id=pairing.contract_id,
                    app_id=pairing.app_id, subject=pairing.prompt_id,
                    detail={"pairing": pairing.id, "purpose": pairing.purpose})

    # --- operator data -------------------------------------------------------------------

    def operator_request(self, source: str, request: OperatorRequest) -> Outcome:
        """Apply one validated operator data change, all of it or nothing."""
        actor = f"operator:{source}"
        action = f"operator:{request.op.value}"
        effects = Effects()
        try:
            with self.store.transaction():
                body = self._apply(request, effects)
                self._audit(actor, action, Status.OK.value,
                            contract_id=body.get("contract"),
                            subject=request.msisdn or request.iccid or request.contract,
                            detail=request.to_wire())
        except (UnknownContractError, UnknownEntityError) as exc:
            reply = refusal(Status.ERROR, ErrorCode.NOT_FOUND, str(exc))
            return self._refused(actor, action, reply, contract_id=request.contract,
                                 subject=request.msisdn or request.iccid or request.contract,
                                 detail=request.to_wire())
        return Outcome(Reply.ok(op=request.op.value,
                                **{k: v for k, v in body.items() if v is not None}), effects)

    def _apply(self, req: OperatorRequest, effects: Effects) -> dict[str, Any]:
        store = self.store
        if req.op is OperatorOp.ADD_CONTRACT:
            contract = Contract(req.contract or "", req.holder or "")
            change = store.upsert_contract(contract)
            for msisdn in req.msisdns:
                self.file_number(msisdn, contract.id)
            return {"contract": contract.id, "change": change.value}
        if req.op in (OperatorOp.ADD_NUMBER, OperatorOp.PORT_IN):
            change = self.file_number(req.msisdn or "", req.contract or "")
            return {"contract": req.contract, "msisdn": req.msisdn, "change": change.value}
        if req.op is OperatorOp.REMOVE_NUMBER:
            left = store.remove_number(req.msisdn or "")
            if left is None:
                raise UnknownEntityError("number", req.msisdn or "")
            return {"contract": left, "msisdn": req.msisdn, "change": "removed"}
        if req.op is OperatorOp.ADD_SUBSCRIPTION:
            sub = Subscription(req.iccid or "", req.imsi, req.msisdn, req.contract or "")
            change = self.put_subscription(sub, effects)
            return {"contract": sub.contract_id, "iccid": sub.iccid, "change": change.value}
        if req.op is OperatorOp.REMOVE_SUBSCRIPTION:
            removed, devices = self.drop_subscription(req.iccid or "", effects)
            return {"contract": removed.contract_id, "iccid": removed.iccid,
                    "change": "removed", "devices_removed": devices}
        # port-out
        other = store.operator(req.operator or "")
        if other is None:
            raise UnknownEntityError("operator", req.operator or "")
        left = store.remove_number(req.msisdn or "")
        store.set_ported(req.msisdn or "", other.id)
        return {"contract": left, "msisdn": req.msisdn, "operator": other.id,
                "change": "ported-out"}

    def file_number(self, msisdn: str, contract_id: str) -> Change:
        """File a number under a contract; a number ported away before comes back."""
        with self.store.transaction():
            change = self.store.upsert_number(msisdn, contract_id)
            self.store.clear_ported(msisdn)
        return change

    def put_subscription(self, sub: Subscription, effects: Effects) -> Change:
        """Add or update a subscription; a move to another contract moves its devices,
        which the apps of both contracts are told."""
        with self.store.transaction():
            before = self.store.subscription_by_iccid(sub.iccid)
            moving = (self.store.devices_by_iccid(sub.iccid)
                      if before is not None and before.contract_id != sub.contract_id else [])
            change = self.store.upsert_subscription(sub)
            if sub.msisdn is not None:
                self.store.clear_ported(sub.msisdn)
            now = self._clock()
            for device in moving:
                self._announce(device.contract_id, EventKind.DEVICE_REMOVED, device, now,
                               effects, reason=Reason.LEFT_CONTRACT)
                moved = self.store.device(device.eid)
                if moved is not None:
                    self._announce(moved.contract_id, EventKind.DEVICE_ADDED, moved, now,
                                   effects)
        return change

    def drop_subscription(self, iccid: str, effects: Effects) -> tuple[Subscription, int]:
        """Remove a subscription; the devices using it leave their contract."""
        with self.store.transaction():
            sub = self.store.subscription_by_iccid(iccid)
            if sub is None:
                raise UnknownEntityError("subscription", iccid)
            devices = self.store.devices_by_iccid(iccid)
            now = self._clock()
            for device in devices:
                self._announce(device.contract_id, EventKind.DEVICE_REMOVED, device, now,
                               effects, reason=Reason.SUBSCRIPTION_REMOVED)
                self.store.remove_device(device.eid)
            self.store.remove_subscription(iccid)
        return sub, len(devices)

    def put_operator(self, operator: OtherOperator) -> Change:
        """Add or update another operator and its number prefixes."""
        return self.store.upsert_operator(operator)

    # --- apps ----------------------------------------------------------------------------

    def put_app(self, app: App, *, actor: str = "operator:cli") -> tuple[Change, Effects]:
        """Register or update an app. Pairings its new trust, purposes or consent no longer
        allow end (``pairing-ended``); user consents survive a change of trust level."""
        effects = Effects()
        with self.store.transaction():
            before = self.store.app(app.id)
            change = self.store.upsert_app(app)
            if before is not None and change is Change.UPDATED:
                self._enforce(app, effects, by=actor)
            if change is not Change.UNCHANGED:
                self._audit(actor, "app", change.value, app_id=app.id,
                            detail={"trust": app.trust.value, "purposes": list(app.purposes),
                                    "standing_consent": app.standing_consent})
        return change, effects

    def _enforce(self, app: App, effects: Effects, *, by: str) -> None:
        now = self._clock()
        for pairing in self.store.pairings(app_id=app.id, states=(PairingState.PENDING,
                                                                  PairingState.ACTIVE)):
            decision = self.policy.pairing(app, pairing.purpose)
            reason: str | None = None
            if not decision.allowed:
                reason = (Reason.PURPOSE_REVOKED
                          if decision.reason == Reason.PURPOSE_NOT_ALLOWED
                          else Reason.TRUST_CHANGED)
            elif (pairing.consent is ConsentSource.STANDING
                  and decision.consent is not ConsentRule.STANDING):
                reason = Reason.TRUST_CHANGED
            if reason is not None:
                self._end(app, pairing, now, effects, by=by, reason=reason)

    def remove_app(self, app_id: str, *, actor: str = "operator:cli") -> tuple[bool, Effects]:
        """Unregister an app: its pairings end first (``pairing-ended``, ``app-removed``)."""
        effects = Effects()
        with self.store.transaction():
            app = self.store.app(app_id)
            if app is None:
                return False, effects
            now = self._clock()
            for pairing in self.store.pairings(app_id=app_id, states=(PairingState.PENDING,
                                                                      PairingState.ACTIVE)):
                self._end(app, pairing, now, effects, by=actor, reason=Reason.APP_REMOVED)
            self.store.remove_app(app_id)
            self._audit(actor, "app", "removed", app_id=app_id)
        return True, effects


def _reply_detail(reply: Reply) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if reply.code is not None:
        detail["code"] = reply.code.value
    for key in ("reason", "operator"):
        if key in reply.body:
            detail[key] = reply.body[key]
    return detail
