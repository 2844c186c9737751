"""Device registrations, the devices' signing keys and the SM-DP+'s installation results."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from broker_bridge.choices import BindingSource
from broker_bridge.errors import (
    ForeignSubscriptionError,
    ReplayError,
    SequenceJumpError,
    SubscriptionInUseError,
    SubscriptionMismatchError,
    UnknownSubscriptionError,
    UnprovenSubscriptionError,
)
from broker_bridge.model import (
    Change,
    DeviceKey,
    Installation,
    RegistrationFacts,
    RegistrationOutcome,
    Subscription,
)
from broker_bridge.registry import events, history
from broker_bridge.registry.core import RegistryCore, SignaturePolicy, new_id
from broker_bridge.registry.work import Effects, Outcome, UnitOfWork, refusal
from broker_bridge.storage.base import Store
from mps_wire.cose import CoseError, key_id, load_public_key, public_key_der
from mps_wire.errors import ErrorCode, WireError
from mps_wire.identifiers import validate_device_id, validate_eid
from mps_wire.messages import (
    ChangeKind,
    DeviceInfo,
    EventKind,
    InstallationOutcome,
    InstallationResult,
    Reason,
    RegistrationResult,
    Reply,
    Status,
)
from mps_wire.registration import Registration, decode_registration, digest_of

log = logging.getLogger(__name__)

INSTALLATIONS_SOURCE = "smdp"
"""The operator source named in the audit log for installation results."""
SEQ_WINDOW = 1 << 20
"""How far a registration's sequence number may jump ahead of the last one accepted (or of
0 for a device's first): a device counts one per registration, and a number far ahead
would lock it out of all numbers below (``mps-bridge devices reset-seq`` undoes one)."""
MAX_SEQ = (1 << 63) - 1
BINDING_SOURCE = "operator"
"""The ``smdp`` of an installation record the operator made (``mps-bridge operator bind``)."""
_KEY_CACHE_SIZE = 100_000


class RegistrationRules(RegistryCore):
    """Registrations of devices under the subscriptions they hold."""

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
            return self.refuse(actor, "register", refusal(Status.ERROR, exc.code, exc.message),
                               subject=device_id, detail={"bytes": len(payload)})
        info = registration.info
        detail: dict[str, Any] = {"seq": info.seq, "iccid": info.iccid,
                                  "signed": registration.signed is not None}
        if info.device_id != device_id:
            what = "ICCID of the plain SIM" if info.eid is None else "EID"
            return self.refuse(actor, "register", refusal(
                Status.ERROR, ErrorCode.BAD_REQUEST,
                f"the {what} {info.device_id} is not the device id {device_id} of the topic"),
                subject=device_id, detail={**detail, "eid": info.eid})
        # One transaction (inside a group of the bridge, a savepoint of it): the facts read
        # first, in one statement, still hold when the registration is stored.
        with self.store.transaction():
            return self._checked_registration(registration, detail)

    def _checked_registration(self, registration: Registration, detail: dict[str, Any]
                              ) -> Outcome:
        info = registration.info
        device_id = info.device_id
        actor = f"device:{device_id}"
        facts = self.store.registration_facts(device_id, info.iccid)
        problem = self._check_signature(registration, facts.key)
        if problem is not None:
            return self.refuse(actor, "register", problem, subject=device_id, detail=detail)
        try:
            outcome, effects = self.register(info, digest=registration.digest, facts=facts)
        except (ReplayError, UnknownSubscriptionError, ForeignSubscriptionError,
                SubscriptionMismatchError, UnprovenSubscriptionError,
                SubscriptionInUseError) as exc:
            reply, more = _refused_registration(exc)
            return self.refuse(actor, "register", reply, subject=device_id,
                               detail={**detail, **more})
        body: dict[str, Any] = {"result": outcome.result.value, "device_id": info.device_id,
                                "contract": outcome.contract_id}
        if outcome.changes:
            body["changes"] = [c.value for c in outcome.changes]
        return Outcome(Reply.ok(**body), effects)

    def enroll_device_key(self, eid: str, public_key: bytes, *,
                          actor: str = "operator:cli") -> tuple[DeviceKey, Change]:
        """Enroll a device's P-256 public key (PEM or DER); from now on the device must
        sign its registrations with it. ValueError for an invalid device id (an EID, or a
        plain SIM's ICCID) or key."""
        validate_device_id(eid)
        key = load_public_key(public_key)
        with self._work() as work:
            record = DeviceKey(eid=eid, public_key=public_key_der(key), kid=key_id(key),
                               enrolled_at=work.now, enrolled_by=actor)
            change = self.store.put_device_key(record)
            if change is not Change.UNCHANGED:
                work.audit(actor, "device-key", change.value, subject=eid,
                           detail={"kid": record.kid.hex()})
        return record, change

    def withdraw_device_key(self, eid: str, *, actor: str = "operator:cli") -> bool:
        """Withdraw a device's key (it is lost or compromised); False if there was none.

        Under :attr:`SignaturePolicy.REQUIRED` the device cannot register until a new key
        is enrolled.
        """
        with self._work() as work:
            removed = self.store.remove_device_key(eid)
            if removed:
                work.audit(actor, "device-key", "removed", subject=eid)
        return removed

    def _check_signature(self, registration: Registration, key: DeviceKey | None
                         ) -> Reply | None:
        """The refusal for a registration whose signature the policy does not accept;
        ``key`` is the device's enrolled one."""
        eid = registration.info.device_id
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

    def register(self, info: DeviceInfo, *, digest: str | None = None,
                 facts: RegistrationFacts | None = None
                 ) -> tuple[RegistrationOutcome, Effects]:
        """Store a registration and announce it to the apps paired with its contract.

        Nothing is stored on a refusal. The subscription must be shown to be on the device:
        UnknownSubscriptionError for an ICCID the operator does not know,
        UnprovenSubscriptionError for one that no installation result nor operator binding
        puts on this eUICC, ForeignSubscriptionError for one installed on (bound to)
        another, SubscriptionMismatchError for an IMSI that is not the operator's (the
        operator's is stored, never the device's), SubscriptionInUseError for a profile
        another device still holds. ReplayError for a sequence number below the last one
        accepted from the device, or equal to it with different content; SequenceJumpError
        (a ReplayError) for one more than :data:`SEQ_WINDOW` above it. The same message again (a
        QoS 1 redelivery, a device retrying after a lost reply) is answered as before.
        ``digest`` is the message's :func:`~mps_wire.registration.digest_of`; ``facts``
        what the store holds for it, if read already in the enclosing transaction.
        """
        digest = digest or digest_of(info)
        store = self.store
        with self._work() as work:
            if facts is None:
                facts = store.registration_facts(info.device_id, info.iccid)
            last = facts.last
            _check_sequence(info, digest, last)
            info, sub = _proven(info, facts)
            outcome = store.register_device(info, now=work.now, subscription=sub)
            if last is None or info.seq > last[0] or not last[1]:
                store.note_registration(info.device_id, info.seq, digest, now=work.now)
            if outcome.result is RegistrationResult.REGISTERED:
                _registered(work, outcome)
            elif outcome.result is RegistrationResult.UPDATED and outcome.previous:
                _updated(work, outcome)
            history.registered(work, outcome)
        return outcome, work.effects

    def bind_subscription(self, iccid: str, eid: str | None, *, swap: bool = False,
                          actor: str = "operator:cli") -> tuple[Change, Effects]:
        """Bind the profile ``iccid`` to the eUICC ``eid`` on the operator's word (a SIM
        shipped in the device, a profile installed by other means); the device may then
        register with it. ``eid`` None binds a plain SIM (no EID): the operator issued the
        card with this ICCID, which is the proof of the subscription, and the device goes
        by that ICCID. A profile bound or installed elsewhere moves only with
        ``swap``: the device holding it leaves its contract, and the apps are told.

        Raises UnknownSubscriptionError for an ICCID the operator does not know,
        SubscriptionInUseError for a move without ``swap``, ValueError for a bad EID.
        """
        eid = iccid if eid is None else validate_eid(eid)
        with self._work() as work:
            if self.store.subscription_by_iccid(iccid) is None:
                raise UnknownSubscriptionError(iccid)
            current = self.store.installation(iccid)
            if current is not None and current.eid == eid:
                return Change.UNCHANGED, work.effects
            if current is not None and not swap:
                raise SubscriptionInUseError(iccid, eid, current.eid)
            change = self.store.record_installation(Installation(
                iccid, eid, new_id("bind"), BINDING_SOURCE, work.now), rebind=True)
            released = _release(self.store, work, iccid, eid)
            sub = self.store.subscription_by_iccid(iccid)
            history.installed(work, eid, iccid, sub.contract_id if sub else None,
                              source=BindingSource.BINDING)
            work.audit(actor, "binding", "swapped" if current is not None else change.value,
                       contract_id=sub.contract_id if sub else None, subject=iccid,
                       detail={"eid": eid, "from": current.eid if current else None,
                               "devices_removed": released})
        return change, work.effects

    def reset_sequence(self, eid: str, *, to: int = 0, actor: str = "operator:cli"
                       ) -> int | None:
        """Set the last sequence number accepted from ``eid`` to ``to`` (a device whose
        counter was lost, or pushed far ahead); audited. The number it replaced, None if
        the registry had none. ValueError for a bad device id (an EID, or a plain SIM's
        ICCID) or a negative ``to``."""
        validate_device_id(eid)
        if isinstance(to, bool) or not isinstance(to, int) or not 0 <= to <= MAX_SEQ:
            raise ValueError(f"the sequence number must be 0 to {MAX_SEQ}, not {to!r}")
        with self._work() as work:
            before = self.store.last_registration(eid)
            self.store.note_registration(eid, to, "", now=work.now)
            device = self.store.device(eid)
            work.audit(actor, "seq-reset", "ok", subject=eid,
                       contract_id=device.contract_id if device else None,
                       detail={"from": before[0] if before else None, "to": to})
        return before[0] if before else None

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
        with self._work() as work:
            change = Change.UNCHANGED
            detail: dict[str, Any] = {"eid": report.eid, "transaction": report.transaction,
                                      "smdp": report.smdp, "seq": report.seq}
            if report.result is InstallationOutcome.INSTALLED:
                change = self.store.record_installation(Installation(
                    report.iccid, report.eid, report.transaction, report.smdp, report.ts))
                # A new download onto another eUICC is the swap: the device that held
                # the profile no longer does.
                released = _release(self.store, work, report.iccid, report.eid)
                if change is not Change.UNCHANGED:
                    sub = self.store.subscription_by_iccid(report.iccid)
                    history.installed(work, report.eid, report.iccid,
                                      sub.contract_id if sub else None)
                if released:
                    detail["devices_removed"] = released
                    log.warning("profile %s was installed on %s; device %s left its contract",
                                report.iccid, report.eid, ", ".join(released))
            elif report.reason:
                detail["reason"] = report.reason
            if change is not Change.UNCHANGED or report.result is InstallationOutcome.FAILED:
                sub = self.store.subscription_by_iccid(report.iccid)
                work.audit(actor, "installation", report.result.value,
                           contract_id=sub.contract_id if sub else None,
                           subject=report.iccid, detail={**detail, "change": change.value})
        return Outcome(Reply.ok(iccid=report.iccid, change=change.value), work.effects)


def _check_sequence(info: DeviceInfo, digest: str, last: tuple[int, str] | None) -> None:
    """ReplayError (SequenceJumpError) unless ``info``'s sequence number may follow the
    ``last`` one accepted (number, digest) from the device."""
    last_seq = 0 if last is None else last[0]
    if last is not None:
        last_digest = last[1]
        if info.seq < last_seq or (info.seq == last_seq and last_digest
                                   and last_digest != digest):
            raise ReplayError(info.device_id, info.seq, last_seq)
    if info.seq - last_seq > SEQ_WINDOW:
        raise SequenceJumpError(info.device_id, info.seq, last_seq, SEQ_WINDOW)


def _refused_registration(exc: Exception) -> tuple[Reply, dict[str, Any]]:
    """The reply to a registration that ``exc`` refused, and what its audit entry adds."""
    if isinstance(exc, ReplayError):
        # The last number accepted lets the device resume right above it.
        return (Reply(Status.DENIED, code=exc.code, message=str(exc),
                      body={"last_seq": exc.last_seq}), {"last_seq": exc.last_seq})
    if isinstance(exc, UnknownSubscriptionError):
        return refusal(Status.ERROR, exc.code, str(exc)), {}
    more: dict[str, Any] = {}
    if isinstance(exc, ForeignSubscriptionError):
        log.warning("registration of %s refused: %s (installed on %s)", exc.eid, exc,
                    exc.installed_on)
        more["installed_on"] = exc.installed_on
    elif isinstance(exc, SubscriptionMismatchError):
        more["sent"] = exc.sent
    code = getattr(exc, "code", ErrorCode.INTERNAL)
    return refusal(Status.DENIED, code, str(exc)), more


def _proven(info: DeviceInfo, facts: RegistrationFacts) -> tuple[DeviceInfo, Subscription]:
    """``info`` with the operator's IMSI, and its subscription, once the subscription is
    shown (by ``facts``) to be on the device's eUICC and used by no other device; raises
    the refusal's error otherwise."""
    sub = facts.subscription
    if sub is None:
        raise UnknownSubscriptionError(info.iccid)
    installed = facts.installation
    if installed is None:
        raise UnprovenSubscriptionError(info.iccid, info.device_id)
    if installed.eid != info.device_id:
        # Installed on (or bound to) another eUICC: whoever presents it here does not
        # hold it.
        raise ForeignSubscriptionError(info.iccid, info.device_id, installed.eid)
    if info.imsi is not None and info.imsi != sub.imsi:
        raise SubscriptionMismatchError(info.iccid, "IMSI", info.imsi, sub.imsi)
    if facts.other_holder is not None:
        raise SubscriptionInUseError(info.iccid, info.device_id, facts.other_holder)
    # replace() validates every identifier again: only when there is something to replace.
    return (info if info.imsi == sub.imsi else replace(info, imsi=sub.imsi)), sub


def _release(store: Store, work: UnitOfWork, iccid: str, eid: str) -> list[str]:
    """Remove the devices other than ``eid`` that use ``iccid`` (one profile, one device),
    telling their contracts' apps; their EIDs."""
    released = []
    for device in store.devices_by_iccid(iccid):
        if device.eid == eid:
            continue
        events.announce(work, device.contract_id, EventKind.DEVICE_REMOVED, device,
                        reason=Reason.LEFT_CONTRACT)
        store.remove_device(device.eid)
        released.append(device.eid)
    return released


def _registered(work: UnitOfWork, outcome: RegistrationOutcome) -> None:
    device = outcome.device
    events.announce(work, outcome.contract_id, EventKind.DEVICE_ADDED, device)
    work.audit(f"device:{device.eid}", "register", outcome.result.value,
               contract_id=outcome.contract_id, subject=device.eid,
               detail={"imei": device.imei, "iccid": device.iccid})


def _updated(work: UnitOfWork, outcome: RegistrationOutcome) -> None:
    before, device = outcome.previous, outcome.device
    if before is None:
        return
    detail: dict[str, Any] = {"changes": [c.value for c in outcome.changes]}
    if before.contract_id != outcome.contract_id:
        events.announce(work, before.contract_id, EventKind.DEVICE_REMOVED, before,
                        reason=Reason.LEFT_CONTRACT)
        events.announce(work, outcome.contract_id, EventKind.DEVICE_ADDED, device)
        detail["contract"] = [before.contract_id, outcome.contract_id]
    elif outcome.changes:
        events.announce(work, outcome.contract_id, EventKind.DEVICE_UPDATED, device,
                        changes=outcome.changes)
    if ChangeKind.DEVICE_SWAP in outcome.changes:
        detail["imei"] = [before.imei, device.imei]
    if ChangeKind.SIM_SWAP in outcome.changes:
        detail["iccid"] = [before.iccid, device.iccid]
    work.audit(f"device:{device.eid}", "register", outcome.result.value,
               contract_id=outcome.contract_id, subject=device.eid, detail=detail)

