"""What the user decides and what the registry learns besides registrations: the view a
user chose for a pairing, device presence, the binding history of each device, and eSIM
profile operations waiting for (or carried out after) the user's word (schema version 8)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Fields a user may choose beyond the device fields of the app's trust level: presence
#: (online/offline) for every app that may pair; the binding history for partner apps.
PRESENCE = "presence"
HISTORY = "history"


@dataclass(frozen=True, slots=True)
class PairingChoice:
    """The view the user chose for a pairing: ``devices`` by EID (None: every device of
    the contract, future ones too) and the ``fields`` shown of each."""

    pairing_id: str
    contract_id: str
    devices: tuple[str, ...] | None
    fields: frozenset[str]
    updated_at: int
    updated_by: str


@dataclass(frozen=True, slots=True)
class Presence:
    """A device's last reported state: ``online`` since ``since`` (ms since the epoch)."""

    eid: str
    contract_id: str
    online: bool
    since: int


class BindingSource(enum.StrEnum):
    """What told the registry of a binding change."""

    REGISTRATION = "registration"  # the device's first registration
    SWAP = "swap"  # a registration with another IMEI or ICCID than before
    INSTALLATION = "installation"  # the SM-DP+'s report of a profile installed on an eUICC
    BINDING = "binding"  # the operator bound a profile to an eUICC


@dataclass(frozen=True, slots=True)
class Binding:
    """One change of what a device (an EID) was seen with: its IMEI and ICCID, before and
    after; ``seq`` numbers a device's changes from 1."""

    eid: str
    seq: int
    contract_id: str
    at: int
    source: BindingSource
    imei: str | None
    iccid: str | None
    previous_imei: str | None = None
    previous_iccid: str | None = None

    def to_wire(self) -> dict[str, object]:
        """The change as a partner app and ``--json`` see it."""
        item: dict[str, object] = {"at": self.at, "source": self.source.value, "eid": self.eid}
        for key in ("imei", "iccid", "previous_imei", "previous_iccid"):
            value = getattr(self, key)
            if value is not None:
                item[key] = value
        return item


class EsimAction(enum.StrEnum):
    """A profile operation on an eUICC (SGP.22 ES10c)."""

    DISABLE = "disable"  # ES10c.DisableProfile (section 5.7.17)
    ENABLE = "enable"  # ES10c.EnableProfile (section 5.7.16)
    DELETE = "delete"  # ES10c.DeleteProfile (section 5.7.18)


class EsimState(enum.StrEnum):
    """Where an eSIM request is: waiting for the user, approved (its order not yet sent),
    sent to the device, done or failed there; refused by the user or expired unanswered."""

    AWAITING = "awaiting-user"
    APPROVED = "approved"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"
    EXPIRED = "expired"

    @property
    def open(self) -> bool:
        return self is EsimState.AWAITING


@dataclass(frozen=True, slots=True)
class EsimRequest:
    """A request for a profile operation on a device of a contract.

    ``counter`` numbers the device's signed orders (assigned on approval) and
    ``order_expires`` is when the order stops being valid on the device. An order goes out
    retained; ``cleared_at`` says when the bridge removed it after it was finished.
    """

    id: str
    eid: str
    contract_id: str
    action: EsimAction
    iccid: str
    state: EsimState
    requested_by: str
    requested_at: int
    expires_at: int
    decided_at: int | None = None
    decided_by: str | None = None
    counter: int | None = None
    order_expires: int | None = None
    sent_at: int | None = None
    finished_at: int | None = None
    result: str | None = None
    cleared_at: int | None = None  # when its retained order was taken off the broker
