"""The registry's domain: contracts, numbers, subscriptions, devices, apps, other
operators, pairings with their consent, per-app events and the audit log."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from mps_wire.messages import ChangeKind, DeviceInfo, EventKind, ModelInfo, RegistrationResult


def now_ms() -> int:
    """Wall-clock time in milliseconds since the Unix epoch, the unit of every stored time."""
    return time.time_ns() // 1_000_000


class Change(enum.StrEnum):
    """What an upsert did."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class TrustLevel(enum.StrEnum):
    """How far the operator trusts an app; decides consent and disclosure (see policy)."""

    PARTNER = "partner"  # contracted with the operator; may hold standing consent
    VERIFIED = "verified"  # vetted by the operator; pairs only with the user's consent
    UNVERIFIED = "unverified"  # registered but not vetted; may not pair


#: Trust levels of schema version 1 and what they became: (level, standing consent).
#: Apps of the first two levels were answered without asking the user, and still are.
LEGACY_TRUST: dict[str, tuple[TrustLevel, bool]] = {
    "trusted": (TrustLevel.PARTNER, True),
    "partner": (TrustLevel.PARTNER, True),
    "public": (TrustLevel.UNVERIFIED, False),
}


@dataclass(frozen=True, slots=True)
class Contract:
    """A customer contract; devices and numbers hang off it."""

    id: str
    holder: str


@dataclass(frozen=True, slots=True)
class Subscription:
    """A SIM profile the operator issued: ICCID, IMSI and (optionally) its number."""

    iccid: str
    imsi: str | None
    msisdn: str | None
    contract_id: str


@dataclass(frozen=True, slots=True)
class App:
    """A third-party app known to the operator.

    ``purposes`` are the purposes it may pair for; ``standing_consent`` (operator-set,
    effective for partner apps only) lets it pair without asking the user.
    """

    id: str
    name: str
    trust: TrustLevel
    purposes: tuple[str, ...] = ()
    standing_consent: bool = False


@dataclass(frozen=True, slots=True)
class OtherOperator:
    """Another operator's registry, for numbers this registry does not serve."""

    id: str
    name: str
    registry: str  # broker URL of its registry, e.g. mqtts://registry.example:8883
    prefix: str = "mps/v1"  # topic prefix of its registry
    number_prefixes: tuple[str, ...] = ()  # E.164 prefixes of its number ranges, "+4917"


@dataclass(frozen=True, slots=True)
class Installation:
    """The SM-DP+'s word that the profile ``iccid`` was installed on the eUICC ``eid``."""

    iccid: str
    eid: str
    transaction: str
    smdp: str
    ts: int  # when the SM-DP+ accepted the result, ms since the epoch


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device as stored, with the number of the subscription it uses.

    ``eid`` is the device id: the EID, or for a device with a plain SIM its ICCID.
    """

    eid: str
    contract_id: str
    iccid: str
    imei: str
    imsi: str | None
    msisdn: str | None
    ip: tuple[str, ...]
    capabilities: tuple[str, ...]
    model: ModelInfo
    profile: str
    last_seq: int
    device_ts: int
    registered_at: int
    updated_at: int

    @property
    def device_id(self) -> str:
        return self.eid

    @property
    def has_eid(self) -> bool:
        """False for a device with a plain SIM, which is stored under its ICCID (an EID
        has 32 digits, an ICCID at most 20, so the two never meet)."""
        return self.eid != self.iccid

    def as_info(self) -> DeviceInfo:
        """The DeviceInfo this record was last registered with (identity fields exact)."""
        return DeviceInfo(
            eid=self.eid if self.has_eid else None, imei=self.imei, iccid=self.iccid,
            imsi=self.imsi, ip=self.ip,
            capabilities=self.capabilities, model=self.model, profile=self.profile,
            seq=self.last_seq, ts=self.device_ts,
        )


@dataclass(frozen=True, slots=True)
class RegistrationOutcome:
    """The result of :meth:`Store.register_device`: what happened, and the stored device.

    For an ``updated`` registration, ``previous`` is the device as it was and ``changes``
    what changed (empty when only the contract changed).
    """

    result: RegistrationResult
    contract_id: str
    device: Device
    previous: Device | None = None
    changes: tuple[ChangeKind, ...] = ()


def device_changes(before: Device, after: Device) -> tuple[ChangeKind, ...]:
    """The kinds of change from ``before`` to ``after`` (same EID), in a fixed order."""
    found: list[ChangeKind] = []
    if before.imei != after.imei:
        found.append(ChangeKind.DEVICE_SWAP)
    if before.iccid != after.iccid:
        found.append(ChangeKind.SIM_SWAP)
    elif before.imsi != after.imsi:
        found.append(ChangeKind.IMSI)
    if before.ip != after.ip:
        found.append(ChangeKind.IP)
    if before.capabilities != after.capabilities:
        found.append(ChangeKind.CAPABILITIES)
    if before.model != after.model:
        found.append(ChangeKind.MODEL)
    if before.profile != after.profile:
        found.append(ChangeKind.PROFILE)
    return tuple(found)


class PairingState(enum.StrEnum):
    """Where a pairing is in its life.

    ``pending`` waits for the user's answer to its consent prompt; ``active`` is paired;
    ``denied``, ``expired`` and ``ended`` are final.
    """

    PENDING = "pending"
    ACTIVE = "active"
    DENIED = "denied"
    EXPIRED = "expired"
    ENDED = "ended"

    @property
    def live(self) -> bool:
        return self in (PairingState.PENDING, PairingState.ACTIVE)


class ConsentSource(enum.StrEnum):
    """Where an active pairing's consent came from."""

    USER = "user"
    STANDING = "standing"


@dataclass(frozen=True, slots=True)
class Pairing:
    """An app's pairing with a contract, with its consent record.

    ``prompt_id`` names the consent prompt shown to the user (pending pairings);
    ``decided_by``/``ended_by`` name who decided (``user:C-1``, ``operator:crm``,
    ``app:health``, ``registry``).
    """

    id: str
    app_id: str
    contract_id: str
    msisdn: str
    purpose: str
    state: PairingState
    created_at: int
    consent: ConsentSource | None = None
    prompt_id: str | None = None
    expires_at: int | None = None
    decided_at: int | None = None
    decided_by: str | None = None
    ended_at: int | None = None
    ended_by: str | None = None
    end_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of an app's durable stream; ``payload`` is the wire map, ``seq`` included."""

    app_id: str
    seq: int
    kind: EventKind
    contract_id: str | None
    pairing_id: str | None
    payload: dict[str, Any]
    created_at: int
    published_at: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log: who asked what, and what was answered.

    ``actor`` is ``app:<id>``, ``user:<contract>``, ``operator:<source>``,
    ``device:<eid>`` or ``registry``; ``outcome`` is the reply's status or the decision.
    """

    id: int
    at: int
    actor: str
    action: str
    outcome: str
    contract_id: str | None = None
    app_id: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """The public part of a device's signing key, as the operator enrolled it.

    ``public_key`` is the SubjectPublicKeyInfo (DER) of a P-256 key; ``kid`` its COSE key
    id. A device with an enrolled key may only register with DeviceInfo signed by it.
    """

    eid: str
    public_key: bytes
    kid: bytes
    enrolled_at: int
    enrolled_by: str


@dataclass(frozen=True, slots=True)
class RegistrationFacts:
    """What a registration is checked against, as the store holds it: the device's
    enrolled key, its last accepted sequence number and digest, the subscription of the
    ICCID it names, that profile's installation (or binding), and another device still
    using the profile (the first by EID), if any."""

    key: DeviceKey | None
    last: tuple[int, str] | None
    subscription: Subscription | None
    installation: Installation | None
    other_holder: str | None


class Role(enum.StrEnum):
    """Who a broker identity is; decides the topics its ACL opens."""

    DEVICE = "device"  # username: the EID
    APP = "app"  # username: app.<app id>
    USER = "user"  # a contract's user agent; username: user.<contract id>
    OPERATOR = "operator"  # an operator system (CRM, SM-DP+); username: operator.<source>
    BRIDGE = "bridge"  # a registry process; username: bridge.<name>


@dataclass(frozen=True, slots=True)
class BrokerIdentity:
    """Credentials the operator issued for one broker user.

    ``subject`` is what the role's topics are named by (EID, app id, contract id, operator
    source, bridge name). ``password_hash`` is in Mosquitto's ``$7$`` form when a password
    was issued; ``certificate`` is the SHA-256 fingerprint (hex) of an issued client
    certificate. Revoked identities keep their row (and their history) but lose access.
    """

    username: str
    role: Role
    subject: str
    issued_at: int
    password_hash: str | None = None
    certificate: str | None = None
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class SignInCode:
    """A one-time code asked for on the consent page, kept as a keyed hash only.

    A number the registry does not serve gets a row too (``contract_id`` and ``code_hash``
    None), so that rate limits and answers are the same for every number.
    """

    id: str
    msisdn: str
    client: str  # the address that asked
    created_at: int
    expires_at: int
    contract_id: str | None = None
    code_hash: str | None = None
    used_at: int | None = None
    attempts: int = 0  # wrong codes tried against it


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in browser of a contract's user; the cookie's token is kept hashed."""

    token_hash: str
    contract_id: str
    msisdn: str
    csrf: str
    created_at: int
    expires_at: int
    ended_at: int | None = None
