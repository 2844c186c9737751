"""The Immediate Enable configuration of an IoT eUICC and the rollback of an enable
(SGP.32 v1.2 2.11.1.1 Psmo, 3.4.1, 5.9.16).

configureImmediateEnable (PSMO ``A7``)::

    A7 { 80 immediateEnableFlag (NULL)?, 81 defaultSmdpOid (OID)?, 82 defaultSmdpAddress? }

With the flag present the eUICC enables a profile right after its installation (when a
default SM-DP+ OID is configured, only a profile from that SM-DP+); without it immediate
enabling is off. A defaultSmdpAddress also becomes the eUICC's default SM-DP+ address.

ProfileRollback (ES10b, ``BF58``)::

    request  BF58 { 80 refreshFlag BOOLEAN }
    response BF58 { 80 cmdResult INTEGER, BF51 eUICCPackageResult? }

An enable PSMO with its rollbackFlag lets the IPA return, on its own, to the profile that
was enabled before (when the new one gives no connectivity); the eUICC then answers with
a new signed EuiccPackageResult whose result is rollbackResult (``8C``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mps_esim import tlv
from mps_esim.sgp22 import der

TAG_PROFILE_ROLLBACK = 0xBF58
TAG_ROLLBACK_RESULT = 0x8C
"""EuiccResultData rollbackResult [12] RollbackProfileResult."""
MAX_SMDP_ADDRESS = 255

ROLLBACK_CODES = {0: "ok", 1: "rollbackNotAllowed", 5: "catBusy", 7: "commandError",
                  127: "undefinedError"}
"""ProfileRollbackResponse cmdResult (SGP.32 5.9.16)."""
ROLLBACK_OK, ROLLBACK_NOT_ALLOWED, ROLLBACK_COMMAND_ERROR = 0, 1, 7


@dataclass(frozen=True)
class ImmediateEnable:
    """The content of a configureImmediateEnable PSMO, as the eUICC keeps it."""

    enabled: bool = False
    smdp_oid: str | None = None
    smdp_address: str | None = None

    def encode(self, tag: int = 0xA7) -> bytes:
        if self.smdp_address is not None and len(
                self.smdp_address.encode()) > MAX_SMDP_ADDRESS:
            raise ValueError("a default SM-DP+ address is at most 255 bytes")
        return der.seq(tag, tlv.encode(0x80, b"") if self.enabled else None,
                       der.opt(0x81, None if self.smdp_oid is None
                               else der.oid_bytes(self.smdp_oid)),
                       der.opt(0x82, None if self.smdp_address is None
                               else self.smdp_address.encode()))

    @classmethod
    def decode(cls, item: tlv.Tlv, where: str = "configureImmediateEnable") -> ImmediateEnable:
        m = der.Members(item, where)
        flag, oid, address = m.optional(0x80), m.optional(0x81), m.optional(0x82)
        if m.rest():
            raise der.Asn1Error("unexpected members", where=where)
        if flag is not None and flag.value:
            raise der.Asn1Error("immediateEnableFlag is a NULL", where=where)
        return cls(flag is not None,
                   None if oid is None else der.oid_value(oid.value, where),
                   None if address is None else der.text_value(
                       address.value, where, max_length=MAX_SMDP_ADDRESS))

    def applies_to(self, smdp_oid: str) -> bool:
        """Whether a profile from the SM-DP+ ``smdp_oid`` is enabled on installation."""
        return self.enabled and self.smdp_oid in (None, smdp_oid)

    def to_dict(self) -> dict[str, object]:
        return {"enabled": self.enabled, "smdp_oid": self.smdp_oid,
                "smdp_address": self.smdp_address}

    @classmethod
    def from_dict(cls, data: object) -> ImmediateEnable:
        """Inverse of :meth:`to_dict`; ``TypeError`` names what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("enabled"), bool):
            raise TypeError("iot.immediate_enable must be an object with a boolean 'enabled'")
        oid, address = data.get("smdp_oid"), data.get("smdp_address")
        if not all(v is None or isinstance(v, str) for v in (oid, address)):
            raise TypeError("iot.immediate_enable's OID and address must be strings")
        return cls(data["enabled"], oid, address)


def rollback_request(refresh: bool = False) -> bytes:
    """ProfileRollbackRequest."""
    return tlv.encode(TAG_PROFILE_ROLLBACK, tlv.encode(0x80, tlv.encode_bool(refresh)))


def decode_rollback_request(item: tlv.Tlv) -> bool:
    """The refreshFlag of a ProfileRollbackRequest."""
    where = "ProfileRollbackRequest"
    m = der.Members(der.expect(item, TAG_PROFILE_ROLLBACK, where), where)
    flag = m.required(0x80, "refreshFlag").value
    if m.rest() or flag not in (b"\x00", b"\xff"):
        raise der.Asn1Error("holds one DER BOOLEAN refreshFlag", where=where)
    return flag == b"\xff"


def rollback_response(code: int, package_result: bytes | None = None) -> bytes:
    """ProfileRollbackResponse: ``cmdResult`` and, on success, the new EuiccPackageResult
    (its own ``BF51``)."""
    return tlv.encode(TAG_PROFILE_ROLLBACK,
                      tlv.encode(0x80, tlv.encode_int(code)) + (package_result or b""))


def decode_rollback_response(data: bytes) -> tuple[int, bytes | None]:
    """(cmdResult, the EuiccPackageResult DER or None)."""
    where = "ProfileRollbackResponse"
    m = der.Members(der.expect(data, TAG_PROFILE_ROLLBACK, where), where)
    code = der.int_value(m.required(0x80, "cmdResult").value, where)
    result = m.optional(0xBF51)
    if m.rest():
        raise der.Asn1Error("unexpected members", where=where)
    return code, None if result is None else result.encode()
