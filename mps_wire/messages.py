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
)

if TYPE_CHECKING:
    from mps_wire.kinds import ChangeKind, EventKind, Reason, RegistrationResult
    from mps_wire.reports import (
        MAX_CERTIFICATE,
        InstallationOutcome,
        InstallationResult,
        ProfileChange,
        ProfileOutcome,
    )
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


# --- the operator topics of the SM-DP+'s and the eIM's reports (mps_wire.reports) ---------

INSTALLATIONS = "installations"
"""The operator topic level of the SM-DP+'s installation results: ``{prefix}/operator/
installations`` (published with QoS 1, no Response Topic)."""

PROFILES = "profiles"
"""The operator topic level of the eIM's profile state changes: ``{prefix}/operator/
profiles`` (published with QoS 1, no Response Topic)."""


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


_KINDS = frozenset({"ChangeKind", "EventKind", "Reason", "RegistrationResult"})
_REPORTS = frozenset({"MAX_CERTIFICATE", "InstallationOutcome", "InstallationResult",
                      "ProfileChange", "ProfileOutcome"})


def __getattr__(name: str) -> Any:
    # The requests to the registry, the registry's kinds and reasons and the SM-DP+'s and
    # eIM's reports are re-exported here and loaded at their first use: a device, which
    # sends a DeviceInfo and reads a Reply, never needs them.
    if name in _REQUESTS:
        from mps_wire import requests

        return getattr(requests, name)
    if name in _KINDS:
        from mps_wire import kinds

        return getattr(kinds, name)
    if name in _REPORTS:
        from mps_wire import reports

        return getattr(reports, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
