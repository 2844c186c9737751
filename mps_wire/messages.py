"""Message types of the wire contract and their validation.

Every message is a CBOR map with text keys (see ``schema/mps.cddl``), defined once by its
class's field table (:mod:`mps_wire.fields`): ``from_wire`` validates what comes from
outside and raises :class:`ValidationError` with the offending field; ``to_wire`` produces
the map that :func:`mps_wire.codec.encode` sends. The requests to the registry live in
:mod:`mps_wire.requests` and are re-exported here.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mps_wire.errors import ErrorCode, ValidationError
from mps_wire.fields import (
    Blob,
    Choice,
    Identifier,
    Listing,
    Nested,
    Text,
    Typed,
    UInt,
    Version,
    WireField,
    WireMessage,
    WireTable,
    optional,
)
from mps_wire.identifiers import (
    validate_eid,
    validate_iccid,
    validate_imei,
    validate_imsi,
    validate_msisdn,
)

if TYPE_CHECKING:
    from mps_wire.requests import (
        MAX_EVENTS_PAGE,
        AppOp,
        AppRequest,
        ConsentAnswerRequest,
        ConsentListRequest,
        ConsentWithdrawRequest,
        Decision,
        DevicesRequest,
        EventsSinceRequest,
        OperatorOp,
        OperatorRequest,
        PairRequest,
        UnpairRequest,
        UserOp,
        UserRequest,
        parse_app_request,
        parse_operator_request,
        parse_user_request,
    )

WIRE_VERSION = 1
CAPABILITY = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")

# An IPv4 address already in the form ipaddress prints (no leading zeros, each part at
# most 255): taken as it is, without building an address object for it.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
MAX_CAPABILITIES = 64
MAX_ADDRESSES = 16

EID = Identifier(validate_eid)
IMEI = Identifier(validate_imei)
ICCID = Identifier(validate_iccid)
IMSI = Identifier(validate_imsi)


class Status(enum.StrEnum):
    """The status every reply carries."""

    OK = "ok"
    PENDING = "pending"
    DENIED = "denied"
    REDIRECT = "redirect"
    ERROR = "error"


class RegistrationResult(enum.StrEnum):
    """What a successful registration did to the registry."""

    REGISTERED = "registered"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class EventKind(enum.StrEnum):
    """What an event on an app's events topic announces."""

    DEVICE_ADDED = "device-added"
    DEVICE_UPDATED = "device-updated"
    DEVICE_REMOVED = "device-removed"
    PAIRING_GRANTED = "pairing-granted"
    PAIRING_DENIED = "pairing-denied"
    PAIRING_ENDED = "pairing-ended"
    VIEW_CHANGED = "view-changed"  # the user chose other devices or fields for the pairing


class ChangeKind(enum.StrEnum):
    """What changed in a ``device-updated`` event (and in an ``updated`` registration)."""

    IP = "ip"
    CAPABILITIES = "capabilities"
    MODEL = "model"
    PROFILE = "profile"  # the device's firmware profile name
    IMSI = "imsi"
    DEVICE_SWAP = "device-swap"  # a new IMEI for the same EID: the eUICC is in another device
    SIM_SWAP = "sim-swap"  # a new ICCID on the same EID: another eSIM profile is enabled
    PRESENCE = "presence"  # the device went online or offline


class Reason(enum.StrEnum):
    """Why a request was refused, or why a pairing or a device went away (``reason``)."""

    UNKNOWN_APP = "unknown-app"
    UNTRUSTED = "untrusted"
    PURPOSE_NOT_ALLOWED = "purpose-not-allowed"
    NOT_PAIRED = "not-paired"
    CONSENT_PENDING = "consent-pending"
    USER_DENIED = "user-denied"
    EXPIRED = "expired"
    UNKNOWN_PROMPT = "unknown-prompt"
    ANSWERED = "answered"
    UNPAIRED = "unpaired"
    CONSENT_WITHDRAWN = "consent-withdrawn"
    APP_REMOVED = "app-removed"
    TRUST_CHANGED = "trust-changed"
    PURPOSE_REVOKED = "purpose-revoked"
    LEFT_CONTRACT = "left-contract"
    SUBSCRIPTION_REMOVED = "subscription-removed"
    NUMBER_PORTED = "number-ported"


class InstallationOutcome(enum.StrEnum):
    """What the SM-DP+ reports of a profile download."""

    INSTALLED = "installed"
    FAILED = "failed"


class ProfileOutcome(enum.StrEnum):
    """What the eIM reports of a profile state change an eUICC carried out (SGP.32
    PSMOs enable, disable, delete)."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"


def _address(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ValidationError("ip entries must be text", field=key)
    if _CANONICAL_IPV4.fullmatch(value):
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValidationError(f"ip entry {value!r} is not an IP address", field=key) from exc


def _capability(value: Any, key: str) -> str:
    if not isinstance(value, str) or not CAPABILITY.fullmatch(value):
        raise ValidationError(f"capability {value!r} must match {CAPABILITY.pattern}",
                              field=key)
    return value


ADDRESSES = Listing(_address, MAX_ADDRESSES, "addresses")
CAPABILITIES = Listing(_capability, MAX_CAPABILITIES, "capabilities")


@dataclass(frozen=True, slots=True)
class ModelInfo(WireMessage):
    """Manufacturer, model and firmware revision, as the modem reports them."""

    manufacturer: str
    model: str
    revision: str

    wire = WireTable(
        WireField("manufacturer", Text()), WireField("model", Text()),
        WireField("revision", Text()), rule="model-info")


@dataclass(frozen=True, slots=True)
class DeviceInfo(WireMessage):
    """What a device says about itself when it registers.

    ``eid`` is None for a device whose card is a plain SIM (a UICC without an ISD-R): such
    a device goes by its ICCID (:attr:`device_id`). ``seq`` grows with every publication
    of the device so the registry can refuse replays; ``ts`` is the device's clock in
    milliseconds since the Unix epoch.
    """

    eid: str | None
    imei: str
    iccid: str
    imsi: str | None
    ip: tuple[str, ...]
    capabilities: tuple[str, ...]
    model: ModelInfo
    profile: str
    seq: int
    ts: int
    v: int = WIRE_VERSION

    # The kinds validate (and normalise) every identifier once: instances from the wire
    # are built without __post_init__ checking them all again. A map missing its
    # structure is a bad request before any of its identifiers is looked at.
    wire = WireTable(
        WireField("v", Version(WIRE_VERSION, "DeviceInfo")), WireField("ip", ADDRESSES),
        WireField("capabilities", CAPABILITIES),
        optional("eid", EID), WireField("imei", IMEI), WireField("iccid", ICCID),
        optional("imsi", IMSI), WireField("model", Nested(ModelInfo)),
        WireField("profile", Text(max_len=64)), WireField("seq", UInt()),
        WireField("ts", UInt()), rule="device-info", init=False)

    def __post_init__(self) -> None:
        # Constructed locally as well as from the wire: the same checks hold both ways.
        if self.eid is not None:
            validate_eid(self.eid)
        validate_imei(self.imei)
        validate_iccid(self.iccid)
        if self.imsi is not None:
            validate_imsi(self.imsi)

    @property
    def device_id(self) -> str:
        """The device's stable identity on the wire: its EID, or for a plain SIM its
        ICCID. The card, not the IMEI, names the device: the operator knows the card (it
        issued the SIM or installed the profile) before the device first connects, so its
        broker credentials and topic ACL can be made for that id; the IMEI is only what
        the device says, and a card moved to other hardware is a device swap."""
        return self.iccid if self.eid is None else self.eid

    def identity_key(self) -> tuple[object, ...]:
        """Everything but the sequence number and timestamp: equal keys mean no change."""
        return (self.eid, self.imei, self.iccid, self.imsi, self.ip, self.capabilities,
                self.model, self.profile)


@dataclass(frozen=True, slots=True)
class Reply(WireMessage):
    """A reply to any request: a status, and for errors a stable code and readable message.

    Every other key of the map is the ``body``.
    """

    status: Status
    code: ErrorCode | None = None
    message: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    # A newer registry may send codes this client does not know yet: they read as internal.
    wire = WireTable(
        WireField("status", Choice(Status, "unknown status {value!r}")),
        optional("code", Choice(ErrorCode, fallback=ErrorCode.INTERNAL)),
        optional("message", Typed(str)), rule="reply", rest="body")

    @classmethod
    def ok(cls, **body: Any) -> Reply:
        return cls(Status.OK, body=body)

    @classmethod
    def error(cls, code: ErrorCode, message: str, *, status: Status = Status.ERROR) -> Reply:
        return cls(status, code=code, message=message)

    @property
    def is_ok(self) -> bool:
        return self.status is Status.OK


# --- installation results (SM-DP+ -> registry) -------------------------------------------

INSTALLATIONS = "installations"
"""The operator topic level of the SM-DP+'s installation results: ``{prefix}/operator/
installations`` (published with QoS 1, no Response Topic)."""

MAX_CERTIFICATE = 4096


@dataclass(frozen=True, slots=True)
class InstallationResult(WireMessage):
    """The SM-DP+'s report that eUICC ``eid`` installed (or failed to install) the profile
    ``iccid``, with the eUICC-signed result (``pir``, DER) and its certificate chain.

    ``seq`` numbers the SM-DP+'s reports and ``transaction`` names the download session:
    a report can arrive twice.
    """

    seq: int
    eid: str
    iccid: str
    imsi: str
    result: InstallationOutcome
    transaction: str
    matching_id: str
    smdp: str
    ts: int
    pir: bytes
    euicc_certificate: bytes
    eum_certificate: bytes
    msisdn: str | None = None
    reason: str | None = None

    wire = WireTable(
        WireField("v", Version(1, "installation report"), stored=False),
        WireField("result", Choice(InstallationOutcome)), WireField("seq", UInt()),
        WireField("eid", EID), WireField("iccid", ICCID), WireField("imsi", IMSI),
        WireField("transaction", Text()), WireField("matching_id", Text()),
        WireField("smdp", Text(max_len=255)), WireField("ts", UInt()),
        WireField("pir", Blob(MAX_CERTIFICATE)),
        WireField("euicc_certificate", Blob(MAX_CERTIFICATE)),
        WireField("eum_certificate", Blob(MAX_CERTIFICATE)),
        optional("msisdn", Identifier(validate_msisdn)), optional("reason", Text()),
        rule="installation-result", consts={"v": 1}, closed=True)


# --- profile state changes (eIM -> registry) ----------------------------------------------

PROFILES = "profiles"
"""The operator topic level of the eIM's profile state changes: ``{prefix}/operator/
profiles`` (published with QoS 1, no Response Topic)."""


@dataclass(frozen=True, slots=True)
class ProfileChange(WireMessage):
    """The eIM's report that eUICC ``eid`` enabled, disabled or deleted the profile
    ``iccid`` on an eIM-signed eUICC package, with the eUICC-signed EuiccPackageResult
    (``epr``, DER) the eIM verified.

    ``seq`` numbers the eIM's reports and ``transaction`` names the package (hex of its
    eimTransactionId): a report can arrive twice.
    """

    seq: int
    eid: str
    iccid: str
    result: ProfileOutcome
    transaction: str
    eim: str
    ts: int
    epr: bytes

    wire = WireTable(
        WireField("v", Version(1, "profile change"), stored=False),
        WireField("result", Choice(ProfileOutcome)), WireField("seq", UInt()),
        WireField("eid", EID), WireField("iccid", ICCID),
        WireField("transaction", Text()), WireField("eim", Text()),
        WireField("ts", UInt()), WireField("epr", Blob(MAX_CERTIFICATE)),
        rule="profile-change", consts={"v": 1}, closed=True)


__all__ = [
    "ADDRESSES", "CAPABILITIES", "CAPABILITY", "INSTALLATIONS", "MAX_ADDRESSES",
    "MAX_CAPABILITIES", "MAX_CERTIFICATE", "MAX_EVENTS_PAGE", "PROFILES", "WIRE_VERSION",
    "AppOp",
    "AppRequest", "ChangeKind", "ConsentAnswerRequest", "ConsentListRequest",
    "ConsentWithdrawRequest", "Decision", "DeviceInfo", "DevicesRequest", "EventKind",
    "EventsSinceRequest", "InstallationOutcome", "InstallationResult", "ModelInfo",
    "OperatorOp", "OperatorRequest", "PairRequest", "ProfileChange", "ProfileOutcome",
    "Reason", "RegistrationResult", "Reply", "Status", "UnpairRequest", "UserOp",
    "UserRequest", "parse_app_request", "parse_operator_request", "parse_user_request",
]


_REQUESTS = frozenset({
    "MAX_EVENTS_PAGE", "AppOp", "AppRequest", "ConsentAnswerRequest", "ConsentListRequest",
    "ConsentWithdrawRequest", "Decision", "DevicesRequest", "EventsSinceRequest",
    "OperatorOp", "OperatorRequest", "PairRequest", "UnpairRequest", "UserOp", "UserRequest",
    "parse_app_request", "parse_operator_request", "parse_user_request"})


def __getattr__(name: str) -> Any:
    # The requests to the registry are re-exported here and loaded at their first use: a
    # device, which sends a DeviceInfo and reads a Reply, never needs them.
    if name in _REQUESTS:
        from mps_wire import requests

        return getattr(requests, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
