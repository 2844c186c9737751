"""What the user's page of one contract is shown (see :mod:`.portal`), and its refusals."""

from __future__ import annotations

from dataclasses import dataclass

from broker_bridge.choices import HISTORY, PRESENCE

#: Fields a user may choose beyond the trust level's device fields (see :mod:`.sight`).
CHOOSABLE_EXTRA = (PRESENCE, HISTORY)


class PortalError(Exception):
    """A request of the user's page refused; ``reason`` is stable, the text readable."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotFound(PortalError):
    """No such prompt, pairing, device or request on this contract (another contract's
    ids are refused alike)."""


class ChoiceRefused(PortalError):
    """A choice of devices or fields the app may not be given, or an empty one."""


class AlreadyDecided(PortalError):
    """The prompt or request was answered already, or expired."""


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device of the contract as its user sees it, with its presence."""

    eid: str
    imei: str
    iccid: str
    imsi: str | None
    msisdn: str | None
    model: str
    registered_at: int
    updated_at: int
    online: bool | None  # None: the device never reported its state
    presence_since: int | None


@dataclass(frozen=True, slots=True)
class PromptView:
    """An open consent prompt: the app, and what may be chosen for it."""

    prompt: str
    pairing: str
    app: str
    app_name: str
    trust: str
    purpose: str
    fields: tuple[str, ...]  # the fields the app's trust level allows: the choice
    devices: tuple[DeviceView, ...]
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class PairingView:
    """An app paired with the contract and what it sees now."""

    pairing: str
    app: str
    app_name: str
    trust: str
    purpose: str
    consent: str
    since: int
    fields: tuple[str, ...]  # chosen
    allowed: tuple[str, ...]  # choosable
    devices: tuple[str, ...]  # the EIDs it sees now
    all_devices: bool  # every device of the contract, future ones too


@dataclass(frozen=True, slots=True)
class BindingView:
    """One change of a device's IMEI or ICCID (or the EID's first appearance)."""

    at: int
    eid: str
    source: str
    imei: str | None
    iccid: str | None
    previous_imei: str | None
    previous_iccid: str | None


@dataclass(frozen=True, slots=True)
class EsimRequestView:
    """An eSIM profile operation on a device of the contract."""

    request: str
    eid: str
    action: str
    iccid: str
    state: str
    requested_by: str
    requested_at: int
    expires_at: int
    decided_at: int | None
    decided_by: str | None
    result: str | None
