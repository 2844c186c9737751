"""The TCA (SIMalliance) eUICC Profile Package: the unprotected profile an SM-DP+ binds.

A profile package is a sequence of profile elements (PEDefinitions, AUTOMATIC TAGS; the
element's CHOICE index is its context tag). The subset made here is what an operational
subscription needs and what other eUICCs expect first:

* ``header`` (A0): version, profile type, ICCID, mandatory services and templates;
* ``mf`` (B0): the MF template with EF.ICCID (and EF.DIR naming the USIM);
* ``usim`` (B3): the ADF.USIM template with EF.IMSI, EF.UST, EF.SPN, EF.ACC, EF.AD;
* ``opt-usim`` (B4): EF.MSISDN;
* ``akaParameter`` (A4): Milenage with K and OPc;
* ``end`` (AA).

Files use the TCA templates (created by default) and only carry their content
(``fillFileContent``), so the package stays small and interoperable.
:func:`parse_profile_package` reads back what a card needs from any package that carries
these elements, skipping elements it does not know.

The header's ``iccid`` is coded as the TCA eUICC Profile Package specification (v2.3,
ProfileHeader) asks: "non-swapped ITU E.118", the digits in plain order
(``89 49 ..`` for ``8949..``), unlike EF.ICCID's nibble-swapped BCD (ETSI TS 102 221
13.2). For full profiles a card does not check it against EF.ICCID; the ICCID a card
reports is the one in EF.ICCID.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mps_esim import simfiles, tlv
from mps_esim.sgp22.der import (
    Asn1Error,
    Members,
    children,
    int_bytes,
    int_value,
    oid_bytes,
    oid_value,
    seq,
    sized,
)

PE_HEADER = 0xA0
PE_AKA_PARAMETER = 0xA4
PE_END = 0xAA
PE_MF = 0xB0
PE_USIM = 0xB3
PE_OPT_USIM = 0xB4

_TEMPLATES = "2.23.143.1.2"
TEMPLATE_MF = f"{_TEMPLATES}.1"
TEMPLATE_USIM = f"{_TEMPLATES}.4"
TEMPLATE_OPT_USIM = f"{_TEMPLATES}.5"

MAJOR_VERSION = 2
MINOR_VERSION = 3
ALGORITHM_MILENAGE = 1
USIM_FILE_ID = bytes.fromhex("7FF1")
"""Temporary file id of the ADF.USIM while the profile is created."""

MAX_PACKAGE = 64 * 1024
"""Largest unprotected profile package accepted (profiles with applets are larger; this
system's are about 400 bytes)."""

# EF.UST: services 2 (FDN), 4 (BDN ext), 15/16, 27 (GSM access), 33 (PS), 38..: a plain
# LTE USIM service table the templates accept.
_DEFAULT_UST = bytes.fromhex("0A2E178CE7320400000000000000000000")


@dataclass(frozen=True, slots=True)
class ProfileContent:
    """What a subscription's profile carries (identities and network keys)."""

    iccid: str
    imsi: str
    ki: bytes | None
    opc: bytes | None
    msisdn: str | None = None
    service_provider: str = "MPS"
    profile_type: str = "MPS operational"
    usim_aid: bytes = simfiles.AID_USIM_PREFIX + bytes.fromhex("FF49FF0589")
    mnc_length: int = 2
    """Digits of the MNC in the IMSI (EF.AD byte 4)."""

    def __post_init__(self) -> None:
        for name, key in (("K", self.ki), ("OPc", self.opc)):
            if key is not None and len(key) != 16:
                raise Asn1Error(f"{name} is 16 bytes, got {len(key)}")
        if not self.usim_aid.startswith(simfiles.AID_USIM_PREFIX) or len(self.usim_aid) > 16:
            raise Asn1Error("the USIM AID needs the 3GPP USIM prefix and at most 16 bytes")
        if self.mnc_length not in (2, 3):
            raise Asn1Error(f"an MNC has 2 or 3 digits, not {self.mnc_length}")

    def __repr__(self) -> str:
        # K and OPc are secrets.
        return (f"ProfileContent(iccid={self.iccid!r}, imsi={self.imsi!r}, "
                f"msisdn={self.msisdn!r})")


def _pe_header(identification: int) -> bytes:
    return seq(0xA0, tlv.encode(0x81, int_bytes(identification)))


def _file(content: bytes | None) -> bytes:
    """A template file's ``File`` member body: its content, or empty (template default)."""
    return b"" if content is None else tlv.encode(0x83, content)


def msisdn_record(msisdn: str) -> bytes:
    """EF.MSISDN record (TS 31.102 4.2.26, no alpha identifier): BCD number, TON/NPI."""
    international = msisdn.startswith("+")
    digits = msisdn.lstrip("+")
    if not digits.isdigit() or not 1 <= len(digits) <= 20:
        raise Asn1Error(f"MSISDN {msisdn!r} is not 1 to 20 digits")
    number = simfiles.swap_nibbles_encode(digits, 10)
    length = (len(digits) + 1) // 2 + 1
    ton_npi = 0x91 if international else 0x81
    return bytes((length, ton_npi)) + number + b"\xff\xff"


def msisdn_from_record(record: bytes) -> str | None:
    """The number of an EF.MSISDN record (with or without alpha identifier)."""
    if len(record) < 14:
        return None
    body = record[-14:]
    if body[0] in (0x00, 0xFF) or body[0] > 11:
        return None
    digits = simfiles.swap_nibbles_decode(body[2:2 + body[0] - 1])
    if not digits:
        return None
    return ("+" if body[1] & 0x70 == 0x10 else "") + digits


def _ef_dir_record(aid: bytes) -> bytes:
    entry = tlv.encode(0x61, tlv.encode(0x4F, aid) + tlv.encode(0x50, b"USIM"))
    return entry


def _spn(name: str) -> bytes:
    raw = name.encode()[:16]
    return b"\x01" + raw + b"\xff" * (16 - len(raw))


def _acc(imsi: str) -> bytes:
    # Access class 0..9 follows the last IMSI digit (TS 22.011 4.2).
    value = 1 << int(imsi[-1])
    return value.to_bytes(2, "big")


def header_iccid(iccid: str) -> bytes:
    """The ProfileHeader's ``iccid``: 10 bytes of BCD in plain digit order (E.118)."""
    return simfiles.plain_bcd_encode(iccid, 10)


def build_profile_package(content: ProfileContent) -> bytes:
    """The DER profile package (concatenated profile elements) for ``content``."""
    if content.ki is None or content.opc is None:
        raise Asn1Error("a profile package needs K and OPc")
    iccid = simfiles.encode_iccid(content.iccid)
    header = seq(PE_HEADER,
                 tlv.encode(0x80, int_bytes(MAJOR_VERSION)),
                 tlv.encode(0x81, int_bytes(MINOR_VERSION)),
                 tlv.encode(0x82, content.profile_type.encode()),
                 tlv.encode(0x83, header_iccid(content.iccid)),
                 # eUICC-Mandatory-services: usim [1], milenage [4]
                 seq(0xA5, tlv.encode(0x81, b""), tlv.encode(0x84, b"")),
                 seq(0xA6, *(tlv.encode(0x06, oid_bytes(t))
                             for t in (TEMPLATE_MF, TEMPLATE_USIM, TEMPLATE_OPT_USIM))))
    mf = seq(PE_MF, _pe_header(1), tlv.encode(0x81, oid_bytes(TEMPLATE_MF)),
             seq(0xA2, b""),  # mf
             seq(0xA4, _file(iccid)),  # ef-iccid
             seq(0xA5, _file(_ef_dir_record(content.usim_aid))),  # ef-dir
             seq(0xA6, b""))  # ef-arr
    adf = seq(0xA1, tlv.encode(0x83, USIM_FILE_ID), tlv.encode(0x84, content.usim_aid))
    usim = seq(PE_USIM, _pe_header(2), tlv.encode(0x81, oid_bytes(TEMPLATE_USIM)),
               seq(0xA2, adf),  # adf-usim
               seq(0xA3, _file(simfiles.encode_imsi(content.imsi))),  # ef-imsi
               seq(0xA4, b""),  # ef-arr
               seq(0xA8, _file(_DEFAULT_UST)),  # ef-ust
               seq(0xAD, _file(_spn(content.service_provider))),  # ef-spn
               seq(0xAE, b""),  # ef-est
               seq(0xB2, _file(_acc(content.imsi))),  # ef-acc
               seq(0xB5, _file(bytes((0, 0, 0, content.mnc_length)))),  # ef-ad
               seq(0xB6, b""))  # ef-ecc
    elements = [header, mf, usim]
    identification = 3
    if content.msisdn is not None:
        elements.append(seq(PE_OPT_USIM, _pe_header(identification),
                            tlv.encode(0x81, oid_bytes(TEMPLATE_OPT_USIM)),
                            seq(0xA7, _file(msisdn_record(content.msisdn)))))  # ef-msisdn
        identification += 1
    algo = seq(0xA1, tlv.encode(0x80, int_bytes(ALGORITHM_MILENAGE)), tlv.encode(0x81, b"\x00"),
               tlv.encode(0x82, content.ki), tlv.encode(0x83, content.opc))
    elements.append(seq(PE_AKA_PARAMETER, _pe_header(identification), seq(0xA1, algo)))
    elements.append(seq(PE_END, _pe_header(identification + 1)))
    return b"".join(elements)


def _file_content(item: tlv.Tlv, where: str) -> bytes | None:
    """The first ``fillFileContent`` of a ``File`` member, if any."""
    for child in children(item, where):
        if child.tag == 0x83:
            return child.value
    return None


def _template(m: Members, where: str, expected: str) -> None:
    template = oid_value(m.required(0x81, "templateID").value, where)
    # Later template versions add an arc (``...2.1.1``); the base arc must match.
    if template != expected and not template.startswith(expected + "."):
        raise Asn1Error(f"template {template} is not {expected}", where=where)


@dataclass(slots=True)
class _Found:
    """The file contents and keys the profile elements of a package hold, as read."""

    iccid_ef: bytes | None = None
    imsi_ef: bytes | None = None
    msisdn_record: bytes | None = None
    ki: bytes | None = None
    opc: bytes | None = None
    usim_aid: bytes | None = None
    spn: bytes | None = None
    ad: bytes | None = None


def _read_mf(element: tlv.Tlv, found: _Found) -> None:
    m = Members(element, "PE-MF")
    m.required(0xA0, "mf-header")
    _template(m, "PE-MF", TEMPLATE_MF)
    ef = m.skip_to(0xA4)
    if ef is None:
        raise Asn1Error("PE-MF lacks ef-iccid", where="ProfilePackage")
    found.iccid_ef = _file_content(ef, "PE-MF.ef-iccid")


def _read_usim(element: tlv.Tlv, found: _Found) -> None:
    m = Members(element, "PE-USIM")
    m.required(0xA0, "usim-header")
    _template(m, "PE-USIM", TEMPLATE_USIM)
    adf = m.required(0xA2, "adf-usim")
    for fcp in children(adf, "PE-USIM.adf-usim"):
        if fcp.tag == 0xA1:
            aid = Members(fcp, "PE-USIM.adf-usim").skip_to(0x84)
            found.usim_aid = aid.value if aid is not None else found.usim_aid
    found.imsi_ef = _file_content(m.required(0xA3, "ef-imsi"), "PE-USIM.ef-imsi")
    spn_item = m.skip_to(0xAD)
    if spn_item is not None:
        found.spn = _file_content(spn_item, "PE-USIM.ef-spn")
    ad_item = m.skip_to(0xB5)
    if ad_item is not None:
        found.ad = _file_content(ad_item, "PE-USIM.ef-ad")


def _read_opt_usim(element: tlv.Tlv, found: _Found) -> None:
    m = Members(element, "PE-OPT-USIM")
    m.required(0xA0, "optusim-header")
    _template(m, "PE-OPT-USIM", TEMPLATE_OPT_USIM)
    item = m.skip_to(0xA7)
    if item is not None:
        found.msisdn_record = _file_content(item, "PE-OPT-USIM.ef-msisdn")


def _read_aka(element: tlv.Tlv, found: _Found) -> None:
    m = Members(element, "PE-AKAParameter")
    m.required(0xA0, "aka-header")
    choice = Members(m.required(0xA1, "algoConfiguration"),
                     f"PE {element.tag:X}").any("algo")
    if choice.tag == 0xA1:
        am = Members(choice, "AlgoParameter")
        am.required(0x80, "algorithmID")
        am.required(0x81, "algorithmOptions")
        found.ki = sized(am.required(0x82, "key").value, "AlgoParameter", size=16)
        found.opc = sized(am.required(0x83, "opc").value, "AlgoParameter", size=16)


_READERS: dict[int, Callable[[tlv.Tlv, _Found], None]] = {
    PE_MF: _read_mf,
    PE_USIM: _read_usim,
    PE_OPT_USIM: _read_opt_usim,
    PE_AKA_PARAMETER: _read_aka,
}
"""The profile elements read, by tag; the others are skipped."""


def _elements(data: bytes) -> list[tlv.Tlv]:
    where = "ProfilePackage"
    if len(data) > MAX_PACKAGE:
        raise Asn1Error(f"package of {len(data)} bytes exceeds {MAX_PACKAGE}", where=where)
    try:
        elements = tlv.decode(data)
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc
    if not elements or elements[0].tag != PE_HEADER:
        raise Asn1Error("the first profile element must be the header", where=where)
    return elements


def _read_header(header: tlv.Tlv) -> tuple[bytes, tlv.Tlv | None]:
    """The header's ICCID (10 bytes) and its profileType member, if any."""
    hm = Members(header, "ProfileHeader")
    major = int_value(hm.required(0x80, "major-version").value, "ProfileHeader", high=255)
    if major != MAJOR_VERSION:
        raise Asn1Error(f"unsupported package major version {major}", where="ProfileHeader")
    hm.required(0x81, "minor-version")
    profile_type = hm.optional(0x82)
    return sized(hm.required(0x83, "iccid").value, "ProfileHeader", size=10), profile_type


def _iccid(found: _Found, header: bytes) -> str:
    """EF.ICCID's ICCID; the header's (plain digits) only where EF.ICCID has no content.

    The two are not compared: for full profiles the TCA specification leaves the header's
    value unchecked, and TS.48 test profiles code it differently from EF.ICCID.
    """
    if found.iccid_ef is not None:
        return simfiles.decode_iccid(found.iccid_ef)
    digits = simfiles.plain_bcd_decode(header)
    if len(digits) not in (19, 20):
        raise ValueError(f"the header's ICCID {header.hex().upper()} is not 19 or 20 digits")
    return digits


def _content(found: _Found, header: bytes, profile_type: tlv.Tlv | None
             ) -> ProfileContent:
    where = "ProfilePackage"
    if found.imsi_ef is None:
        raise Asn1Error("the package lacks EF.IMSI content", where=where)
    try:
        iccid = _iccid(found, header)
        imsi = simfiles.decode_imsi(found.imsi_ef)
    except ValueError as exc:
        raise Asn1Error(str(exc), where=where) from exc
    msisdn = msisdn_from_record(found.msisdn_record) if found.msisdn_record else None
    content = ProfileContent(iccid=iccid, imsi=imsi, ki=found.ki, opc=found.opc, msisdn=msisdn)
    changes: dict[str, Any] = {}
    if profile_type is not None:
        changes["profile_type"] = profile_type.value.decode("utf-8", "replace")
    spn, ad, usim_aid = found.spn, found.ad, found.usim_aid
    if spn is not None and len(spn) > 1:
        changes["service_provider"] = spn[1:].rstrip(b"\xff").decode("utf-8", "replace")
    if usim_aid is not None and usim_aid.startswith(simfiles.AID_USIM_PREFIX):
        changes["usim_aid"] = usim_aid
    if ad is not None and len(ad) >= 4 and ad[3] & 0x0F in (2, 3):
        changes["mnc_length"] = ad[3] & 0x0F
    return dataclasses.replace(content, **changes)


def parse_profile_package(data: bytes) -> ProfileContent:
    """The identities and keys of a profile package; :class:`Asn1Error` if it lacks them.

    Unknown profile elements are skipped; the ICCID is EF.ICCID's (see :func:`_iccid`).
    """
    elements = _elements(data)
    header, profile_type = _read_header(elements[0])
    found = _Found()
    for element in elements[1:]:
        if element.tag == PE_END:
            break
        reader = _READERS.get(element.tag)
        if reader is not None:
            reader(element, found)
    return _content(found, header, profile_type)
