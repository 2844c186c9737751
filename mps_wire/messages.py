"""Message types of the wire contract and their validation.

Every message is a CBOR map with text keys (see ``schema/mps.cddl``). ``from_wire``
constructors validate what comes from outside and raise :class:`ValidationError` with the
offending field; ``to_wire`` produces the map that :func:`mps_wire.codec.encode` sends.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mps_wire.errors import ErrorCode, ValidationError
from mps_wire.identifiers import (
    validate_eid,
    validate_iccid,
    validate_imei,
    validate_imsi,
    validate_msisdn,
)

WIRE_VERSION = 1
_CAPABILITY = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")
MAX_CAPABILITIES = 64
MAX_ADDRESSES = 16


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


def _get(msg: Mapping[str, Any], key: str, typ: type | tuple[type, ...], *,
         required: bool = True) -> Any:
    if key not in msg:
        if required:
            raise ValidationError(f"missing field {key!r}", field=key)
        return None
    value = msg[key]
    # bool is an int in Python; the contract never means a bool where it says int.
    if isinstance(value, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)):
        raise ValidationError(f"field {key!r} must be {_typename(typ)}, got bool", field=key)
    if not isinstance(value, typ):
        raise ValidationError(
            f"field {key!r} must be {_typename(typ)}, got {type(value).__name__}", field=key
        )
    return value


def _typename(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return " or ".join(t.__name__ for t in typ)
    return typ.__name__


def _text(msg: Mapping[str, Any], key: str, *, max_len: int = 128, required: bool = True
          ) -> str | None:
    value = _get(msg, key, str, required=required)
    if value is not None and (len(value) > max_len or not value.isprintable()):
        raise ValidationError(f"field {key!r} must be printable text of at most {max_len} "
                              "characters", field=key)
    return value  # type: ignore[no-any-return]


def _uint(msg: Mapping[str, Any], key: str) -> int:
    value = _get(msg, key, int)
    if not 0 <= value < 2**63:
        raise ValidationError(f"field {key!r} must be an unsigned 63-bit integer", field=key)
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Manufacturer, model and firmware revision, as the modem reports them."""

    manufacturer: str
    model: str
    revision: str

    def to_wire(self) -> dict[str, Any]:
        return {"manufacturer": self.manufacturer, "model": self.model,
                "revision": self.revision}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> ModelInfo:
        return cls(
            manufacturer=_text(msg, "manufacturer") or "",
            model=_text(msg, "model") or "",
            revision=_text(msg, "revision") or "",
        )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a device says about itself when it registers.

    ``seq`` grows with every publication of the device so the registry can refuse replays;
    ``ts`` is the device's clock in milliseconds since the Unix epoch.
    """

    eid: str
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

    def __post_init__(self) -> None:
        # Constructed locally as well as from the wire: the same checks hold both ways.
        validate_eid(self.eid)
        validate_imei(self.imei)
        validate_iccid(self.iccid)
        if self.imsi is not None:
            validate_imsi(self.imsi)

    @property
    def device_id(self) -> str:
        """The device's stable identity on the wire: its EID."""
        return self.eid

    def identity_key(self) -> tuple[object, ...]:
        """Everything but the sequence number and timestamp: equal keys mean no change."""
        return (self.eid, self.imei, self.iccid, self.imsi, self.ip, self.capabilities,
                self.model, self.profile)

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "v": self.v,
            "eid": self.eid,
            "imei": self.imei,
            "iccid": self.iccid,
            "ip": list(self.ip),
            "capabilities": list(self.capabilities),
            "model": self.model.to_wire(),
            "profile": self.profile,
            "seq": self.seq,
            "ts": self.ts,
        }
        if self.imsi is not None:
            msg["imsi"] = self.imsi
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> DeviceInfo:
        """Validate a decoded DeviceInfo map; raise ValidationError naming the bad field."""
        version = _uint(msg, "v")
        if version != WIRE_VERSION:
            raise ValidationError(f"unsupported DeviceInfo version {version}", field="v")
        ips = _get(msg, "ip", list)
        if len(ips) > MAX_ADDRESSES:
            raise ValidationError(f"at most {MAX_ADDRESSES} addresses", field="ip")
        addresses = []
        for item in ips:
            if not isinstance(item, str):
                raise ValidationError("ip entries must be text", field="ip")
            try:
                addresses.append(str(ipaddress.ip_address(item)))
            except ValueError as exc:
                raise ValidationError(f"ip entry {item!r} is not an IP address",
                                      field="ip") from exc
        caps = _get(msg, "capabilities", list)
        if len(caps) > MAX_CAPABILITIES:
            raise ValidationError(f"at most {MAX_CAPABILITIES} capabilities",
                                  field="capabilities")
        for cap in caps:
            if not isinstance(cap, str) or not _CAPABILITY.fullmatch(cap):
                raise ValidationError(f"capability {cap!r} must match {_CAPABILITY.pattern}",
                                      field="capabilities")
        imsi = _get(msg, "imsi", str, required=False)
        # Every identifier is validated (and normalised) here, once: the instance is made
        # without __post_init__ checking them all again.
        info = object.__new__(cls)
        for name, value in (
                ("eid", validate_eid(_get(msg, "eid", str))),
                ("imei", validate_imei(_get(msg, "imei", str))),
                ("iccid", validate_iccid(_get(msg, "iccid", str))),
                ("imsi", validate_imsi(imsi) if imsi is not None else None),
                ("ip", tuple(addresses)),
                ("capabilities", tuple(caps)),
                ("model", ModelInfo.from_wire(_get(msg, "model", dict))),
                ("profile", _text(msg, "profile", max_len=64) or ""),
                ("seq", _uint(msg, "seq")),
                ("ts", _uint(msg, "ts")),
                ("v", version)):
            object.__setattr__(info, name, value)
        return info


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to any request: a status, and for errors a stable code and readable message."""

    status: Status
    code: ErrorCode | None = None
    message: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, **body: Any) -> Reply:
        return cls(Status.OK, body=body)

    @classmethod
    def error(cls, code: ErrorCode, message: str, *, status: Status = Status.ERROR) -> Reply:
        return cls(status, code=code, message=message)

    @property
    def is_ok(self) -> bool:
        return self.status is Status.OK

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = dict(self.body)
        msg["status"] = self.status.value
        if self.code is not None:
            msg["code"] = self.code.value
        if self.message is not None:
            msg["message"] = self.message
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Reply:
        raw_status = _get(msg, "status", str)
        try:
            status = Status(raw_status)
        except ValueError as exc:
            raise ValidationError(f"unknown status {raw_status!r}", field="status") from exc
        raw_code = _get(msg, "code", str, required=False)
        code: ErrorCode | None = None
        if raw_code is not None:
            try:
                code = ErrorCode(raw_code)
            except ValueError:
                # A newer registry may send codes this client does not know yet.
                code = ErrorCode.INTERNAL
        message = _get(msg, "message", str, required=False)
        body = {k: v for k, v in msg.items() if k not in ("status", "code", "message")}
        return cls(status, code=code, message=message, body=body)


# --- app requests ----------------------------------------------------------------------

_PURPOSE = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")
_REF = re.compile(r"[A-Za-z0-9_.:@=\-]{1,128}")  # ids, also usable as topic levels
MAX_EVENTS_PAGE = 500


class AppOp(enum.StrEnum):
    """Operations an app may request on its requests topic."""

    DEVICES = "devices"
    PAIR = "pair"
    UNPAIR = "unpair"
    EVENTS_SINCE = "events-since"


class EventKind(enum.StrEnum):
    """What an event on an app's events topic announces."""

    DEVICE_ADDED = "device-added"
    DEVICE_UPDATED = "device-updated"
    DEVICE_REMOVED = "device-removed"
    PAIRING_GRANTED = "pairing-granted"
    PAIRING_DENIED = "pairing-denied"
    PAIRING_ENDED = "pairing-ended"


class ChangeKind(enum.StrEnum):
    """What changed in a ``device-updated`` event (and in an ``updated`` registration)."""

    IP = "ip"
    CAPABILITIES = "capabilities"
    MODEL = "model"
    PROFILE = "profile"  # the device's firmware profile name
    IMSI = "imsi"
    DEVICE_SWAP = "device-swap"  # a new IMEI for the same EID: the eUICC is in another device
    SIM_SWAP = "sim-swap"  # a new ICCID on the same EID: another eSIM profile is enabled


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


def _purpose(msg: Mapping[str, Any], key: str = "purpose") -> str:
    value = _get(msg, key, str)
    if not _PURPOSE.fullmatch(value):
        raise ValidationError(f"field {key!r} must match {_PURPOSE.pattern}", field=key)
    return value  # type: ignore[no-any-return]


def _ref(msg: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    """An identifier the registry issued (pairing, prompt, app, contract id)."""
    value = _get(msg, key, str, required=required)
    if value is not None and not _REF.fullmatch(value):
        raise ValidationError(f"field {key!r} is not a valid identifier", field=key)
    return value  # type: ignore[no-any-return]


def _required_ref(msg: Mapping[str, Any], key: str) -> str:
    value = _get(msg, key, str)
    if not _REF.fullmatch(value):
        raise ValidationError(f"field {key!r} is not a valid identifier", field=key)
    return value  # type: ignore[no-any-return]


def _no_extra(msg: Mapping[str, Any], allowed: frozenset[str]) -> None:
    # Requests are closed maps: a misspelt optional field must not be silently ignored.
    extra = sorted(set(msg) - allowed)
    if extra:
        raise ValidationError(f"unknown field {extra[0]!r}", field=extra[0])


@dataclass(frozen=True, slots=True)
class DevicesRequest:
    """An app asks for the devices on the contract behind a phone number."""

    msisdn: str

    def to_wire(self) -> dict[str, Any]:
        return {"op": AppOp.DEVICES.value, "msisdn": self.msisdn}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> DevicesRequest:
        _no_extra(msg, frozenset({"op", "msisdn"}))
        return cls(msisdn=validate_msisdn(_get(msg, "msisdn", str)))


@dataclass(frozen=True, slots=True)
class PairRequest:
    """An app asks to be paired with the contract behind ``msisdn`` for ``purpose``."""

    msisdn: str
    purpose: str

    def to_wire(self) -> dict[str, Any]:
        return {"op": AppOp.PAIR.value, "msisdn": self.msisdn, "purpose": self.purpose}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> PairRequest:
        _no_extra(msg, frozenset({"op", "msisdn", "purpose"}))
        return cls(msisdn=validate_msisdn(_get(msg, "msisdn", str)), purpose=_purpose(msg))


@dataclass(frozen=True, slots=True)
class UnpairRequest:
    """An app ends a pairing, named by its id or by the number it was made with."""

    msisdn: str | None = None
    pairing: str | None = None

    def __post_init__(self) -> None:
        if (self.msisdn is None) == (self.pairing is None):
            raise ValidationError("unpair names exactly one of 'msisdn' and 'pairing'",
                                  field="pairing")

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": AppOp.UNPAIR.value}
        if self.msisdn is not None:
            msg["msisdn"] = self.msisdn
        if self.pairing is not None:
            msg["pairing"] = self.pairing
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> UnpairRequest:
        _no_extra(msg, frozenset({"op", "msisdn", "pairing"}))
        raw = _get(msg, "msisdn", str, required=False)
        return cls(msisdn=validate_msisdn(raw) if raw is not None else None,
                   pairing=_ref(msg, "pairing", required=False))


@dataclass(frozen=True, slots=True)
class EventsSinceRequest:
    """An app asks for its events with a sequence number above ``seq`` (its cursor)."""

    seq: int
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_EVENTS_PAGE:
            raise ValidationError(f"limit must be 1 to {MAX_EVENTS_PAGE}", field="limit")

    def to_wire(self) -> dict[str, Any]:
        return {"op": AppOp.EVENTS_SINCE.value, "seq": self.seq, "limit": self.limit}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> EventsSinceRequest:
        _no_extra(msg, frozenset({"op", "seq", "limit"}))
        limit = _uint(msg, "limit") if "limit" in msg else 100
        return cls(seq=_uint(msg, "seq"), limit=limit)


AppRequest = DevicesRequest | PairRequest | UnpairRequest | EventsSinceRequest

_APP_REQUESTS: dict[str, Any] = {
    AppOp.DEVICES: DevicesRequest, AppOp.PAIR: PairRequest, AppOp.UNPAIR: UnpairRequest,
    AppOp.EVENTS_SINCE: EventsSinceRequest,
}


def parse_app_request(msg: Mapping[str, Any]) -> AppRequest:
    """Validate an app request map and return the typed request for its ``op``."""
    op = _get(msg, "op", str)
    kind = _APP_REQUESTS.get(op)
    if kind is None:
        raise ValidationError(f"unknown operation {op!r}", field="op")
    return kind.from_wire(msg)  # type: ignore[no-any-return]


# --- user (consent) requests -------------------------------------------------------------

class UserOp(enum.StrEnum):
    """Operations a user agent may request on ``users/{contract}/requests``."""

    CONSENT_LIST = "consent-list"
    CONSENT_ANSWER = "consent-answer"
    CONSENT_WITHDRAW = "consent-withdraw"


class Decision(enum.StrEnum):
    """The user's answer to a consent prompt."""

    APPROVE = "approve"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class ConsentListRequest:
    """The user agent asks for the open prompts and granted consents of its contract."""

    def to_wire(self) -> dict[str, Any]:
        return {"op": UserOp.CONSENT_LIST.value}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> ConsentListRequest:
        _no_extra(msg, frozenset({"op"}))
        return cls()


@dataclass(frozen=True, slots=True)
class ConsentAnswerRequest:
    """The user approves or denies the consent prompt ``prompt``."""

    prompt: str
    decision: Decision

    def to_wire(self) -> dict[str, Any]:
        return {"op": UserOp.CONSENT_ANSWER.value, "prompt": self.prompt,
                "decision": self.decision.value}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> ConsentAnswerRequest:
        _no_extra(msg, frozenset({"op", "prompt", "decision"}))
        raw = _get(msg, "decision", str)
        try:
            decision = Decision(raw)
        except ValueError as exc:
            raise ValidationError("field 'decision' must be 'approve' or 'deny'",
                                  field="decision") from exc
        return cls(prompt=_required_ref(msg, "prompt"), decision=decision)


@dataclass(frozen=True, slots=True)
class ConsentWithdrawRequest:
    """The user withdraws consent: ends the pairing ``pairing``, or every one of ``app``."""

    pairing: str | None = None
    app: str | None = None

    def __post_init__(self) -> None:
        if (self.pairing is None) == (self.app is None):
            raise ValidationError("consent-withdraw names exactly one of 'pairing' and 'app'",
                                  field="pairing")

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": UserOp.CONSENT_WITHDRAW.value}
        if self.pairing is not None:
            msg["pairing"] = self.pairing
        if self.app is not None:
            msg["app"] = self.app
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> ConsentWithdrawRequest:
        _no_extra(msg, frozenset({"op", "pairing", "app"}))
        return cls(pairing=_ref(msg, "pairing", required=False),
                   app=_ref(msg, "app", required=False))


UserRequest = ConsentListRequest | ConsentAnswerRequest | ConsentWithdrawRequest

_USER_REQUESTS: dict[str, Any] = {
    UserOp.CONSENT_LIST: ConsentListRequest, UserOp.CONSENT_ANSWER: ConsentAnswerRequest,
    UserOp.CONSENT_WITHDRAW: ConsentWithdrawRequest,
}


def parse_user_request(msg: Mapping[str, Any]) -> UserRequest:
    """Validate a user agent's request map and return the typed request for its ``op``."""
    op = _get(msg, "op", str)
    kind = _USER_REQUESTS.get(op)
    if kind is None:
        raise ValidationError(f"unknown operation {op!r}", field="op")
    return kind.from_wire(msg)  # type: ignore[no-any-return]


# --- operator requests -------------------------------------------------------------------

class OperatorOp(enum.StrEnum):
    """Incremental operator data changes on ``operator/{source}/requests``."""

    ADD_CONTRACT = "add-contract"
    ADD_NUMBER = "add-number"
    REMOVE_NUMBER = "remove-number"
    ADD_SUBSCRIPTION = "add-subscription"
    REMOVE_SUBSCRIPTION = "remove-subscription"
    PORT_IN = "port-in"
    PORT_OUT = "port-out"


@dataclass(frozen=True, slots=True)
class OperatorRequest:
    """One operator data change; which fields are set depends on ``op``.

    ``add-contract``: contract, holder, msisdns; ``add-number``/``port-in``: msisdn,
    contract; ``remove-number``: msisdn; ``add-subscription``: iccid, imsi, contract and
    optionally msisdn; ``remove-subscription``: iccid; ``port-out``: msisdn, operator
    (the id of the operator the number moved to).
    """

    op: OperatorOp
    contract: str | None = None
    holder: str | None = None
    msisdn: str | None = None
    msisdns: tuple[str, ...] = ()
    iccid: str | None = None
    imsi: str | None = None
    operator: str | None = None

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": self.op.value}
        for key in ("contract", "holder", "msisdn", "iccid", "imsi", "operator"):
            value = getattr(self, key)
            if value is not None:
                msg[key] = value
        if self.op is OperatorOp.ADD_CONTRACT:
            msg["msisdns"] = list(self.msisdns)
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> OperatorRequest:
        raw_op = _get(msg, "op", str)
        try:
            op = OperatorOp(raw_op)
        except ValueError as exc:
            raise ValidationError(f"unknown operation {raw_op!r}", field="op") from exc
        fields = _OPERATOR_FIELDS[op]
        _no_extra(msg, frozenset({"op", *fields[0], *fields[1]}))
        values: dict[str, Any] = {}
        for key in (*fields[0], *fields[1]):
            if key not in msg and key in fields[1]:
                continue
            if key == "msisdns":
                items = _get(msg, key, list)
                if len(items) > MAX_ADDRESSES:
                    raise ValidationError(f"at most {MAX_ADDRESSES} numbers", field=key)
                values[key] = tuple(validate_msisdn(v, field=key) for v in items)
            elif key == "msisdn":
                values[key] = validate_msisdn(_get(msg, key, str))
            elif key == "iccid":
                values[key] = validate_iccid(_get(msg, key, str))
            elif key == "imsi":
                values[key] = validate_imsi(_get(msg, key, str))
            elif key == "holder":
                holder = _text(msg, key, max_len=200)
                if not holder or not holder.strip():
                    raise ValidationError("field 'holder' must not be empty", field=key)
                values[key] = holder
            else:
                values[key] = _required_ref(msg, key)
        return cls(op=op, **values)


# op -> (required fields, optional fields)
_OPERATOR_FIELDS: dict[OperatorOp, tuple[tuple[str, ...], tuple[str, ...]]] = {
    OperatorOp.ADD_CONTRACT: (("contract", "holder"), ("msisdns",)),
    OperatorOp.ADD_NUMBER: (("msisdn", "contract"), ()),
    OperatorOp.PORT_IN: (("msisdn", "contract"), ()),
    OperatorOp.REMOVE_NUMBER: (("msisdn",), ()),
    OperatorOp.ADD_SUBSCRIPTION: (("iccid", "imsi", "contract"), ("msisdn",)),
    OperatorOp.REMOVE_SUBSCRIPTION: (("iccid",), ()),
    OperatorOp.PORT_OUT: (("msisdn", "operator"), ()),
}


def parse_operator_request(msg: Mapping[str, Any]) -> OperatorRequest:
    """Validate an operator request map; raise ValidationError naming the bad field."""
    return OperatorRequest.from_wire(msg)


# --- installation results (SM-DP+ -> registry) -------------------------------------------

INSTALLATIONS = "installations"
"""The operator topic level of the SM-DP+'s installation results: ``{prefix}/operator/
installations`` (published with QoS 1, no Response Topic)."""

MAX_CERTIFICATE = 4096


class InstallationOutcome(enum.StrEnum):
    INSTALLED = "installed"
    FAILED = "failed"


def _blob(msg: Mapping[str, Any], key: str, max_len: int = MAX_CERTIFICATE) -> bytes:
    value = _get(msg, key, bytes)
    if not value or len(value) > max_len:
        raise ValidationError(f"field {key!r} must be 1 to {max_len} bytes", field=key)
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class InstallationResult:
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

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> InstallationResult:
        """Validate a decoded report; raise ValidationError naming the bad field."""
        _no_extra(msg, frozenset({"v", "seq", "eid", "iccid", "imsi", "result", "transaction",
                                  "matching_id", "smdp", "ts", "pir", "euicc_certificate",
                                  "eum_certificate", "msisdn", "reason"}))
        version = _uint(msg, "v")
        if version != 1:
            raise ValidationError(f"unsupported installation report version {version}",
                                  field="v")
        raw_result = _get(msg, "result", str)
        try:
            result = InstallationOutcome(raw_result)
        except ValueError as exc:
            raise ValidationError("field 'result' must be 'installed' or 'failed'",
                                  field="result") from exc
        msisdn = _get(msg, "msisdn", str, required=False)
        return cls(
            seq=_uint(msg, "seq"), eid=validate_eid(_get(msg, "eid", str)),
            iccid=validate_iccid(_get(msg, "iccid", str)),
            imsi=validate_imsi(_get(msg, "imsi", str)), result=result,
            transaction=_text(msg, "transaction") or "",
            matching_id=_text(msg, "matching_id") or "", smdp=_text(msg, "smdp", max_len=255)
            or "", ts=_uint(msg, "ts"), pir=_blob(msg, "pir"),
            euicc_certificate=_blob(msg, "euicc_certificate"),
            eum_certificate=_blob(msg, "eum_certificate"),
            msisdn=validate_msisdn(msisdn) if msisdn is not None else None,
            reason=_text(msg, "reason", required=False),
        )
