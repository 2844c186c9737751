"""Reading who the device is: IMEI and model from the modem, EID and ICCID from the eUICC
(or, from a plain SIM, ICCID and IMSI from its files and no EID), IMSI and IP addresses,
and the capabilities its firmware profile declares."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from agent.card import CardLink
from agent.errors import AgentError, StatusWordError, StepError
from agent.modem import Modem
from mps_esim.lpa import Es10Client, Es10Error
from mps_wire.errors import ValidationError
from mps_wire.identifiers import validate_eid, validate_iccid, validate_imei
from mps_wire.messages import DeviceInfo, ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the device read about itself from its hardware."""

    eid: str | None
    """None for a plain SIM (a card without an ISD-R); the device then goes by its ICCID."""
    imei: str
    iccid: str
    imsi: str | None
    ip: tuple[str, ...]
    model: ModelInfo

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ip"] = list(self.ip)
        return data

    def device_info(self, *, capabilities: tuple[str, ...], profile: str, seq: int,
                    ts: int) -> DeviceInfo:
        return DeviceInfo(eid=self.eid, imei=self.imei, iccid=self.iccid, imsi=self.imsi,
                          ip=self.ip, capabilities=capabilities, model=self.model,
                          profile=profile, seq=seq, ts=ts)


SW_FILE_NOT_FOUND = 0x6A82


def read_eid(card: CardLink) -> str | None:
    """The EID, from the ISD-R's GetEuiccData over a logical channel; None for a plain
    SIM, whose SELECT of the ISD-R's AID answers 6A82 (ISO 7816-4: no such application)."""
    try:
        channel = card.open_isdr()
    except StatusWordError as exc:
        if exc.sw == SW_FILE_NOT_FOUND:
            return None
        raise
    with channel as isdr:
        try:
            eid = Es10Client(isdr).get_eid()
        except Es10Error as exc:
            raise StepError("read EID", str(exc)) from exc
    try:
        return validate_eid(eid)
    except ValidationError as exc:
        raise StepError("read EID", f"the card returned a bad EID: {exc}") from exc


def read_identity(modem: Modem, card: CardLink) -> Identity:
    """Read the identity. Raises StepError naming the step that failed."""
    step = "read IMEI"
    try:
        imei = validate_imei(modem.imei())
        step = "read modem model"
        model = ModelInfo(modem.manufacturer(), modem.model(), modem.revision())
        step = "read EID"
        eid = read_eid(card)
        step = "read ICCID"
        iccid = validate_iccid(card.read_iccid())
        step = "read IMSI"
        # A plain SIM's subscription is all in its files: its IMSI comes from EF.IMSI.
        imsi = _optional(card.read_imsi if eid is None else modem.imsi, step)
        if imsi is None and eid is None:
            imsi = _optional(modem.imsi, step)
        step = "read IP address"
        ip = tuple(modem.ip_addresses())
    except StepError:
        raise
    except (AgentError, ValidationError, OSError) as exc:
        raise StepError(step, str(exc)) from exc
    return Identity(eid=eid, imei=imei, iccid=iccid, imsi=imsi, ip=ip, model=model)


def _optional(read: Any, step: str) -> str | None:
    # The IMSI helps the operator but the ICCID already names the subscription: a modem
    # that cannot read it (card in an external reader) does not stop registration.
    try:
        value = read()
    except (AgentError, ValidationError) as exc:
        log.info("%s skipped: %s", step, exc)
        return None
    return value if isinstance(value, str) else None
