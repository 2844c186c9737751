"""How one app sees stored devices: :class:`AppView` turns the registry's devices into the
device records (:mod:`mps_wire.records`) that app may see."""

from __future__ import annotations

import hashlib
import hmac

from broker_bridge.model import Device, Pairing
from mps_wire.messages import ModelInfo
from mps_wire.records import DISCLOSABLE, DeviceRecord

_NO_MODEL = ModelInfo("", "", "")


def record_of(device: Device, fields: frozenset[str] = DISCLOSABLE, *,
              device_id: str | None = None) -> DeviceRecord:
    """The record of a stored device, showing only ``fields`` of :data:`DISCLOSABLE`.

    ``device_id`` is the id the app knows the device by (default: its EID).
    """
    return DeviceRecord(
        device_id=device.device_id if device_id is None else device_id,
        ip=device.ip if "ip" in fields else (),
        capabilities=device.capabilities if "capabilities" in fields else (),
        model=device.model if "model" in fields else _NO_MODEL,
        registered_at=device.registered_at,
        updated_at=device.updated_at,
        eid=device.eid if "eid" in fields and device.has_eid else None,
        imei=device.imei if "imei" in fields else None,
        iccid=device.iccid if "iccid" in fields else None,
        imsi=device.imsi if "imsi" in fields else None,
        msisdn=device.msisdn if "msisdn" in fields else None,
        # Said of a plain SIM only, whose record has no EID whatever the app may see.
        card=None if device.has_eid else "uicc",
    )



def _mac(secret: bytes, *parts: str) -> str:
    # NUL separators: no two different part lists give the same message.
    return hmac.new(secret, "\0".join(parts).encode(), hashlib.sha256).hexdigest()


class AppView:
    """How one app sees the registry: the device fields it may see, and its pseudonyms.

    Device ids are ``d`` and 31 hex digits of an HMAC of the app id and the EID under the
    registry's ``secret``: stable per app and device, unlinkable between apps. Contract
    references are the real contract id for apps with ``real_contract``, otherwise ``c``
    and 23 hex digits of an HMAC of the app id and the contract id; before the user
    consented, a reference of the number instead (:meth:`number_ref`).
    """

    def __init__(self, app_id: str, secret: bytes, fields: frozenset[str], *,
                 real_contract: bool) -> None:
        self.app_id = app_id
        self.fields = fields
        self.real_contract = real_contract
        self._secret = secret

    def device_id(self, eid: str) -> str:
        return "d" + _mac(self._secret, "device", self.app_id, eid)[:31]

    def contract_ref(self, contract_id: str) -> str:
        if self.real_contract:
            return contract_id
        return "c" + _mac(self._secret, "contract", self.app_id, contract_id)[:23]

    def number_ref(self, msisdn: str) -> str:
        """The reference to a contract before the user consented: per app and per number,
        so that two numbers of one contract are not linked, and shaped as a pseudonymous
        contract reference, so that it tells nothing of whether the number is a customer's."""
        return "c" + _mac(self._secret, "number", self.app_id, msisdn)[:23]

    def pairing_ref(self, pairing: Pairing) -> str:
        """The contract reference an app sees for ``pairing``: the number's until consent."""
        if pairing.consent is None:
            return self.number_ref(pairing.msisdn)
        return self.contract_ref(pairing.contract_id)

    def record(self, device: Device) -> DeviceRecord:
        return record_of(device, self.fields, device_id=self.device_id(device.eid))
