"""EUICCInfo1 and EUICCInfo2: what the eUICC tells of its versions, keys and resources."""

from __future__ import annotations

from collections.abc import Sequence

from mps_common.record import record
from mps_esim import tlv
from mps_esim.sgp22.codec import (
    decode_named_bits,
    decode_version,
    encode_named_bits,
    encode_version,
    fields,
)
from mps_esim.sgp22.tags import (
    EUICC_CATEGORIES,
    PPR_IDS,
    RSP_CAPABILITIES,
    TAG_GET_EUICC_INFO1,
    TAG_GET_EUICC_INFO2,
    TAG_OCTET_STRING,
    TAG_UTF8_STRING,
    UICC_CAPABILITIES,
)

# --- eUICC information ------------------------------------------------------------------------

def _pkid_list(tag: int, pkids: Sequence[bytes]) -> bytes:
    return tlv.encode(tag, b"".join(tlv.encode(TAG_OCTET_STRING, k) for k in pkids))


def _decode_pkids(item: tlv.Tlv) -> tuple[bytes, ...]:
    out = []
    for child in item.children():
        if child.tag != TAG_OCTET_STRING:
            raise tlv.TlvError(f"a SubjectKeyIdentifier is an OCTET STRING, got {child.tag:X}")
        out.append(child.value)
    return tuple(out)


@record
class EuiccInfo1:
    """EUICCInfo1 (``BF20``): the SGP.22 version and the CI key ids the eUICC knows."""

    svn: str
    ci_pkids_verification: tuple[bytes, ...]
    ci_pkids_signing: tuple[bytes, ...]

    def encode(self) -> bytes:
        return tlv.encode(TAG_GET_EUICC_INFO1,
                          tlv.encode(0x82, encode_version(self.svn))
                          + _pkid_list(0xA9, self.ci_pkids_verification)
                          + _pkid_list(0xAA, self.ci_pkids_signing))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> EuiccInfo1:
        f = fields(item, (0x82, 0xA9, 0xAA), required=(0x82, 0xA9, 0xAA))
        return cls(decode_version(f[0x82].value), _decode_pkids(f[0xA9]),
                   _decode_pkids(f[0xAA]))


@record
class CardResources:
    """The extended card resource information of ETSI TS 102 226 (tags 81, 82, 83)."""

    installed_applications: int
    free_nvm: int
    free_ram: int

    def encode(self) -> bytes:
        return (tlv.encode(0x81, tlv.encode_int(self.installed_applications))
                + tlv.encode(0x82, tlv.encode_int(self.free_nvm))
                + tlv.encode(0x83, tlv.encode_int(self.free_ram)))

    @classmethod
    def decode(cls, data: bytes) -> CardResources:
        values = {c.tag: c.value for c in tlv.decode(data)}
        try:
            return cls(*(int.from_bytes(values[t], "big") for t in (0x81, 0x82, 0x83)))
        except KeyError as exc:
            raise tlv.TlvError(f"extCardResource lacks {exc.args[0]:X}") from None


_INFO2_ORDER = (0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0xA9, 0xAA, 0x8B, 0x99,
                TAG_OCTET_STRING, TAG_UTF8_STRING, 0xAC)


@record
class EuiccInfo2:
    """EUICCInfo2 (``BF22``): versions, capabilities, resources and certification data."""

    profile_version: str
    svn: str
    firmware_version: str
    resources: CardResources
    uicc_capabilities: frozenset[str]
    rsp_capabilities: frozenset[str]
    ci_pkids_verification: tuple[bytes, ...]
    ci_pkids_signing: tuple[bytes, ...]
    pp_version: str
    sas_accreditation_number: str
    ts102241_version: str | None = None
    globalplatform_version: str | None = None
    category: str | None = None
    forbidden_ppr: frozenset[str] | None = None
    extra: tuple[int, ...] = ()
    """Tags of components this codec does not know (later SGP.22 versions), when decoded."""

    def encode(self) -> bytes:
        parts = [
            tlv.encode(0x81, encode_version(self.profile_version)),
            tlv.encode(0x82, encode_version(self.svn)),
            tlv.encode(0x83, encode_version(self.firmware_version)),
            tlv.encode(0x84, self.resources.encode()),
            tlv.encode(0x85, encode_named_bits(self.uicc_capabilities, UICC_CAPABILITIES)),
        ]
        if self.ts102241_version is not None:
            parts.append(tlv.encode(0x86, encode_version(self.ts102241_version)))
        if self.globalplatform_version is not None:
            parts.append(tlv.encode(0x87, encode_version(self.globalplatform_version)))
        parts += [
            tlv.encode(0x88, encode_named_bits(self.rsp_capabilities, RSP_CAPABILITIES)),
            _pkid_list(0xA9, self.ci_pkids_verification),
            _pkid_list(0xAA, self.ci_pkids_signing),
        ]
        if self.category is not None:
            parts.append(tlv.encode(0x8B, tlv.encode_int(EUICC_CATEGORIES.index(self.category))))
        if self.forbidden_ppr is not None:
            parts.append(tlv.encode(0x99, encode_named_bits(self.forbidden_ppr, PPR_IDS)))
        parts += [
            tlv.encode(TAG_OCTET_STRING, encode_version(self.pp_version)),
            tlv.encode(TAG_UTF8_STRING, self.sas_accreditation_number.encode()),
        ]
        return tlv.encode(TAG_GET_EUICC_INFO2, b"".join(parts))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> EuiccInfo2:
        f = fields(item, _INFO2_ORDER, required=(0x81, 0x82, 0x83, 0x84, 0x85, 0x88, 0xA9,
                                                 0xAA, TAG_OCTET_STRING, TAG_UTF8_STRING))

        def version(tag: int) -> str | None:
            return decode_version(f[tag].value) if tag in f else None

        category = None
        if 0x8B in f:
            number = tlv.decode_int(f[0x8B].value, min_value=0)
            category = (EUICC_CATEGORIES[number] if number < len(EUICC_CATEGORIES)
                        else str(number))
        return cls(
            profile_version=decode_version(f[0x81].value),
            svn=decode_version(f[0x82].value),
            firmware_version=decode_version(f[0x83].value),
            resources=CardResources.decode(f[0x84].value),
            uicc_capabilities=decode_named_bits(f[0x85].value, UICC_CAPABILITIES),
            rsp_capabilities=decode_named_bits(f[0x88].value, RSP_CAPABILITIES),
            ci_pkids_verification=_decode_pkids(f[0xA9]),
            ci_pkids_signing=_decode_pkids(f[0xAA]),
            pp_version=decode_version(f[TAG_OCTET_STRING].value),
            sas_accreditation_number=tlv.decode_utf8(f[TAG_UTF8_STRING].value, max_chars=64),
            ts102241_version=version(0x86),
            globalplatform_version=version(0x87),
            category=category,
            forbidden_ppr=(decode_named_bits(f[0x99].value, PPR_IDS) if 0x99 in f else None),
            extra=tuple(c.tag for c in item.children() if c.tag not in _INFO2_ORDER),
        )
