"""The device record an app receives (``device-record`` in the CDDL), both directions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker_bridge.model import Device
from mps_wire.errors import ValidationError
from mps_wire.messages import ModelInfo

#: The fields of a record the operator may withhold from an app; ``device_id`` and the
#: timestamps are always present.
DISCLOSABLE = frozenset({"eid", "imei", "iccid", "imsi", "msisdn", "ip", "capabilities",
                         "model"})

_NO_MODEL = ModelInfo("", "", "")


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

    @classmethod
    def from_device(cls, device: Device, fields: frozenset[str] = DISCLOSABLE) -> DeviceRecord:
        """The record of a stored device, showing only ``fields`` of :data:`DISCLOSABLE`."""
        return cls(
            device_id=device.device_id,
            ip=device.ip if "ip" in fields else (),
            capabilities=device.capabilities if "capabilities" in fields else (),
            model=device.model if "model" in fields else _NO_MODEL,
            registered_at=device.registered_at,
            updated_at=device.updated_at,
            eid=device.eid if "eid" in fields else None,
            imei=device.imei if "imei" in fields else None,
            iccid=device.iccid if "iccid" in fields else None,
            imsi=device.imsi if "imsi" in fields else None,
            msisdn=device.msisdn if "msisdn" in fields else None,
        )

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
