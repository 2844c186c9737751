"""What an app receives: device records (``device-record`` in the CDDL) and events
(``app-event``), both directions.

An app reads them leniently: a value of the wrong type is refused, naming the field, but
identifiers are taken as the registry sent them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mps_wire.errors import ValidationError
from mps_wire.fields import Choice, Kind, WireField, WireMessage, WireTable, optional
from mps_wire.messages import EventKind, ModelInfo

#: The fields of a record the operator may withhold from an app; ``device_id`` and the
#: timestamps are always present.
DISCLOSABLE = frozenset({"eid", "imei", "iccid", "imsi", "msisdn", "ip", "capabilities",
                         "model"})


class _Loose(Kind):
    """A record kind: its complaints start with what the map is ("device field ...")."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def refuse(self, key: str, wanted: str) -> ValidationError:
        return ValidationError(f"{self.label} {key!r} must be {wanted}", field=key)


class LooseText(_Loose):
    """Text; None reads as absent unless ``required``."""

    __slots__ = ("required",)

    def __init__(self, label: str, *, required: bool = False) -> None:
        super().__init__(label)
        self.required = required

    def decode(self, value: Any, key: str) -> str | None:
        if value.__class__ is str or (value is None and not self.required):
            return value
        if not isinstance(value, str):
            raise self.refuse(key, "text")
        return value


class LooseUInt(_Loose):
    """An unsigned integer."""

    __slots__ = ()

    def decode(self, value: Any, key: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.refuse(key, "an unsigned integer")
        return value


class LooseTexts(_Loose):
    """A list of text, as a tuple."""

    __slots__ = ()
    encoding = "list({})"

    def decode(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.refuse(key, "a list of text")
        return tuple(value)


class LooseRecord(_Loose):
    """A nested message; None reads as absent unless ``required``."""

    __slots__ = ("message", "required")
    encoding = "{}.to_wire()"

    def __init__(self, label: str, message: type[WireMessage], *, required: bool) -> None:
        super().__init__(label)
        self.message = message
        self.required = required

    def decode(self, value: Any, key: str) -> Any:
        if value is None and not self.required:
            return None
        if not isinstance(value, Mapping):
            raise self.refuse(key, "a map")
        return self.message.from_wire(value)


class LooseRecords(_Loose):
    """A list of nested messages, as a tuple."""

    __slots__ = ("message",)

    def __init__(self, label: str, message: type[WireMessage]) -> None:
        super().__init__(label)
        self.message = message

    def decode(self, value: Any, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.refuse(key, "a list of maps")
        return tuple(self.message.from_wire(v) for v in value)

    encoding = "[item.to_wire() for item in {}]"


class DeviceId(LooseText):
    """The record's device id: text, never empty."""

    __slots__ = ()

    def decode(self, value: Any, key: str) -> str:
        device_id = super().decode(value, key)
        if not device_id:
            raise ValidationError("device record without device_id", field=key)
        return device_id


_DEVICE = "device field"
_EVENT = "event field"


@dataclass(frozen=True, slots=True)
class DeviceRecord(WireMessage):
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
    card: str | None = None
    """``uicc`` for a plain SIM, which has no EID; absent (None) for an eUICC."""

    wire = WireTable(
        WireField("device_id", DeviceId(_DEVICE)), WireField("ip", LooseTexts(_DEVICE)),
        WireField("capabilities", LooseTexts(_DEVICE)),
        WireField("model", LooseRecord(_DEVICE, ModelInfo, required=True)),
        WireField("registered_at", LooseUInt(_DEVICE)),
        WireField("updated_at", LooseUInt(_DEVICE)),
        *(optional(key, LooseText(_DEVICE)) for key in ("eid", "imei", "iccid", "imsi",
                                                         "msisdn", "card")),
        rule="device-record", missing="as-none")


@dataclass(frozen=True, slots=True)
class Event(WireMessage):
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

    wire = WireTable(
        WireField("kind", Choice(EventKind, "unknown event {value!r}",
                                 base=LooseText(_EVENT, required=True)), key="event"),
        WireField("seq", LooseUInt(_EVENT)), WireField("ts", LooseUInt(_EVENT)),
        WireField("pairing", LooseText(_EVENT, required=True)),
        WireField("contract", LooseText(_EVENT, required=True)),
        optional("device", LooseRecord(_EVENT, DeviceRecord, required=False)),
        optional("devices", LooseRecords(_EVENT, DeviceRecord), (),
                 when=lambda e: e.kind is EventKind.PAIRING_GRANTED),
        optional("changes", LooseTexts(_EVENT), (),
                 when=lambda e: e.kind is EventKind.DEVICE_UPDATED),
        *(optional(key, LooseText(_EVENT)) for key in ("reason", "purpose", "consent")),
        rule="app-event", missing="as-none")
