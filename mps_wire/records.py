"""What an app receives: device records (``device-record`` in the CDDL) and events
(``app-event``), both directions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mps_wire.errors import ValidationError
from mps_wire.messages import EventKind, ModelInfo

#: The fields of a record the operator may withhold from an app; ``device_id`` and the
#: timestamps are always present.
DISCLOSABLE = frozenset({"eid", "imei", "iccid", "imsi", "msisdn", "ip", "capabilities",
                         "model"})



@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device of a contract as an app sees it.

    Identifiers the operator did not disclose to the app are None; withheld addresses and
    capabilities are empty, a withheld model is all empty text.
    """

    device_id: str
    ip: tuple[str, ...]
    capabilities: tuple[str, ...]
    model: ModelInfo
    registered_at: int
    updated_at: int
    eid: str | None = None
    imei: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    msisdn: str | None = None

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "device_id": self.device_id,
            "ip": list(self.ip),
            "capabilities": list(self.capabilities),
            "model": self.model.to_wire(),
            "registered_at": self.registered_at,
            "updated_at": self.updated_at,
        }
        for key in ("eid", "imei", "iccid", "imsi", "msisdn"):
            value = getattr(self, key)
            if value is not None:
                msg[key] = value
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> DeviceRecord:
        """Read a record from a reply; raise ValidationError naming a bad field."""
        def text(key: str) -> str | None:
            value = msg.get(key)
            if value is not None and not isinstance(value, str):
                raise ValidationError(f"device field {key!r} must be text", field=key)
            return value

        def texts(key: str) -> tuple[str, ...]:
            value = msg.get(key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(f"device field {key!r} must be a list of text",
                                      field=key)
            return tuple(value)

        def stamp(key: str) -> int:
            value = msg.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError(f"device field {key!r} must be an unsigned integer",
                                      field=key)
            return value

        device_id = text("device_id")
        if not device_id:
            raise ValidationError("device record without device_id", field="device_id")
        model = msg.get("model")
        if not isinstance(model, Mapping):
            raise ValidationError("device field 'model' must be a map", field="model")
        return cls(
            device_id=device_id, ip=texts("ip"), capabilities=texts("capabilities"),
            model=ModelInfo.from_wire(model), registered_at=stamp("registered_at"),
            updated_at=stamp("updated_at"), eid=text("eid"), imei=text("imei"),
            iccid=text("iccid"), imsi=text("imsi"), msisdn=text("msisdn"),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One event of an app's stream (``app-event`` in the CDDL).

    ``device`` is set for device events, ``devices`` (every device of the contract) for
    ``pairing-granted``; ``changes`` lists what a ``device-updated`` changed; ``reason``
    says why a pairing was denied or ended, or why a device was removed.
    """

    seq: int
    kind: EventKind
    ts: int
    pairing: str
    contract: str
    device: DeviceRecord | None = None
    devices: tuple[DeviceRecord, ...] = ()
    changes: tuple[str, ...] = ()
    reason: str | None = None
    purpose: str | None = None
    consent: str | None = None

    def to_wire(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"seq": self.seq, "event": self.kind.value, "ts": self.ts,
                               "pairing": self.pairing, "contract": self.contract}
        if self.device is not None:
            msg["device"] = self.device.to_wire()
        if self.kind is EventKind.PAIRING_GRANTED:
            msg["devices"] = [d.to_wire() for d in self.devices]
        if self.kind is EventKind.DEVICE_UPDATED:
            msg["changes"] = list(self.changes)
        for key in ("reason", "purpose", "consent"):
            value = getattr(self, key)
            if value is not None:
                msg[key] = value
        return msg

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Event:
        """Read an event; raise ValidationError naming a bad field."""
        def uint(key: str) -> int:
            value = msg.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValidationError(f"event field {key!r} must be an unsigned integer",
                                      field=key)
            return value

        def text(key: str, *, required: bool = False) -> str | None:
            value = msg.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str):
                raise ValidationError(f"event field {key!r} must be text", field=key)
            return value

        raw_kind = text("event", required=True) or ""
        try:
            kind = EventKind(raw_kind)
        except ValueError as exc:
            raise ValidationError(f"unknown event {raw_kind!r}", field="event") from exc
        device = msg.get("device")
        if device is not None and not isinstance(device, Mapping):
            raise ValidationError("event field 'device' must be a map", field="device")
        devices = msg.get("devices", [])
        changes = msg.get("changes", [])
        if not isinstance(devices, list) or not all(isinstance(d, Mapping) for d in devices):
            raise ValidationError("event field 'devices' must be a list of maps",
                                  field="devices")
        if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
            raise ValidationError("event field 'changes' must be a list of text",
                                  field="changes")
        return cls(
            seq=uint("seq"), kind=kind, ts=uint("ts"), pairing=text("pairing", required=True)
            or "", contract=text("contract", required=True) or "",
            device=DeviceRecord.from_wire(device) if device is not None else None,
            devices=tuple(DeviceRecord.from_wire(d) for d in devices),
            changes=tuple(changes), reason=text("reason"), purpose=text("purpose"),
            consent=text("consent"),
        )
