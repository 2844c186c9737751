"""What the profile download structures share: member readers and the SVN."""

from __future__ import annotations

from mps_esim import sgp22, tlv
from mps_esim.sgp22 import (
    CHALLENGE_SIZE,
    MAX_ADDRESS,
    MAX_TRANSACTION_ID,
    TAG_GET_EUICC_INFO1,
    TAG_GET_EUICC_INFO2,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
)
from mps_esim.sgp22.der import (
    Asn1Error,
    expect,
    sized,
    text_value,
)

SVN_2_2_0 = "2.2.0"


def sig_tlv(raw: bytes) -> bytes:
    return tlv.encode(TAG_SIGNATURE, raw)


def txid_of(item: tlv.Tlv, where: str) -> bytes:
    return sized(item.value, where, low=1, high=MAX_TRANSACTION_ID)


def challenge_of(item: tlv.Tlv, where: str) -> bytes:
    return sized(item.value, where, size=CHALLENGE_SIZE)


def address_of(item: tlv.Tlv, where: str) -> str:
    return text_value(item.value, where, max_length=MAX_ADDRESS)


def certificate_of(item: tlv.Tlv, where: str) -> bytes:
    if item.tag != TAG_SEQUENCE:
        raise Asn1Error("a certificate is a SEQUENCE", where=where)
    return item.encode()


def iccid_of(item: tlv.Tlv, where: str) -> str:
    try:
        return sgp22.decode_iccid(sized(item.value, where, size=10))
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


def decode_euicc_info1(data: bytes | tlv.Tlv) -> sgp22.EuiccInfo1:
    """EUICCInfo1 (BF20) from its DER, by the shared codec."""
    return sgp22.EuiccInfo1.decode(expect(data, TAG_GET_EUICC_INFO1, "EUICCInfo1"))


def decode_euicc_info2(data: bytes | tlv.Tlv) -> sgp22.EuiccInfo2:
    """EUICCInfo2 (BF22) from its DER, by the shared codec."""
    return sgp22.EuiccInfo2.decode(expect(data, TAG_GET_EUICC_INFO2, "EUICCInfo2"))
