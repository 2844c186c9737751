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
        return cls(
            eid=validate_eid(_get(msg, "eid", str)),
            imei=validate_imei(_get(msg, "imei", str)),
            iccid=validate_iccid(_get(msg, "iccid", str)),
            imsi=validate_imsi(imsi) if imsi is not None else None,
            ip=tuple(addresses),
            capabilities=tuple(caps),
            model=ModelInfo.from_wire(_get(msg, "model", dict)),
            profile=_text(msg, "profile", max_len=64) or "",
            seq=_uint(msg, "seq"),
            ts=_uint(msg, "ts"),
            v=version,
        )


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


class AppOp(enum.StrEnum):
    """Operations an app may request on its requests topic."""

    DEVICES = "devices"


@dataclass(frozen=True, slots=True)
class DevicesRequest:
    """An app asks for the devices on the contract behind a phone number."""

    msisdn: str

    def to_wire(self) -> dict[str, Any]:
        return {"op": AppOp.DEVICES.value, "msisdn": self.msisdn}

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> DevicesRequest:
        return cls(msisdn=validate_msisdn(_get(msg, "msisdn", str)))


def parse_app_request(msg: Mapping[str, Any]) -> DevicesRequest:
    """Validate an app request map and return the typed request for its ``op``."""
    op = _get(msg, "op", str)
    if op == AppOp.DEVICES:
        return DevicesRequest.from_wire(msg)
    raise ValidationError(f"unknown operation {op!r}", field="op")
