"""The registry's domain: contracts, numbers, subscriptions, devices and apps."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from mps_wire.messages import DeviceInfo, ModelInfo, RegistrationResult


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

    TRUSTED = "trusted"  # operator's own or certified apps
    PARTNER = "partner"  # contracted third parties
    PUBLIC = "public"  # anyone registered with the operator


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
    """A third-party app known to the operator."""

    id: str
    name: str
    trust: TrustLevel
    purposes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device as stored, with the number of the subscription it uses."""

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

    def as_info(self) -> DeviceInfo:
        """The DeviceInfo this record was last registered with (identity fields exact)."""
        return DeviceInfo(
            eid=self.eid, imei=self.imei, iccid=self.iccid, imsi=self.imsi, ip=self.ip,
            capabilities=self.capabilities, model=self.model, profile=self.profile,
            seq=self.last_seq, ts=self.device_ts,
        )


@dataclass(frozen=True, slots=True)
class RegistrationOutcome:
    """The result of :meth:`Store.register_device`: what happened, and the stored device."""

    result: RegistrationResult
    contract_id: str
    device: Device
