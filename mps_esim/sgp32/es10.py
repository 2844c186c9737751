"""The ES10b functions SGP.32 adds to the ISD-R (SGP.32 5.9), as requests and responses.

==========  ===================================  =====================================
tag         request                              response
==========  ===================================  =====================================
``BF51``    LoadEuiccPackage (EuiccPackageRequest) EuiccPackageResult
``BF56``    GetCerts                               ``A0`` { ``A5`` CERT.EUM, ``A6`` CERT.EUICC }
``BF55``    GetEimConfigurationData                ``A0`` list of EimConfigurationData
``BF57``    AddInitialEim                          ``A0`` per eIM: ``84`` token or ``05``
                                                   NULL; or ``81`` addInitialEimError
==========  ===================================  =====================================

and what the IPA answers the eIM's IpaEuiccDataRequest (``BF52``) with, gathered from
those functions (SGP.32 2.11.1.2, 2.11.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mps_esim import tlv
from mps_esim.sgp22 import der
from mps_esim.sgp32.eim import MAX_EIM_ID, EimConfig, decode_list

TAG_LOAD_EUICC_PACKAGE = 0xBF51
TAG_IPA_EUICC_DATA = 0xBF52
TAG_GET_EIM_CONFIGURATION = 0xBF55
TAG_GET_CERTS = 0xBF56
TAG_ADD_INITIAL_EIM = 0xBF57

ADD_INITIAL_EIM_ERRORS = {1: "insufficientMemory", 2: "associatedEimAlreadyExists",
                          3: "ciPKUnknown", 5: "invalidAssociationToken",
                          6: "counterValueOutOfRange", 7: "commandError",
                          127: "undefinedError"}
IPA_EUICC_DATA_ERRORS = {1: "incorrectTagList", 5: "euiccCiPKIdNotFound", 104: "ecallActive",
                         127: "undefinedError"}

# IpaEuiccData members (SGP.32 2.11.2.2), by the tag a tagList names them with.
DATA_NOTIFICATIONS = 0xA0
DATA_DEFAULT_SMDP = 0x81
DATA_PACKAGE_RESULTS = 0xA2
DATA_EUICC_INFO1 = 0xBF20
DATA_EUICC_INFO2 = 0xBF22
DATA_ROOT_SMDS = 0x83
DATA_ASSOCIATION_TOKEN = 0x84
DATA_EUM_CERTIFICATE = 0xA5
DATA_EUICC_CERTIFICATE = 0xA6
DATA_TRANSACTION_ID = 0x87
DATA_TAGS = (DATA_NOTIFICATIONS, DATA_DEFAULT_SMDP, DATA_PACKAGE_RESULTS, DATA_EUICC_INFO1,
             DATA_EUICC_INFO2, DATA_ROOT_SMDS, DATA_ASSOCIATION_TOKEN, DATA_EUM_CERTIFICATE,
             DATA_EUICC_CERTIFICATE, DATA_TRANSACTION_ID, 0xA8, 0xA9)
"""The members of IpaEuiccData in their DER order."""


def add_initial_eim_request(configs: list[EimConfig]) -> bytes:
    return der.seq(TAG_ADD_INITIAL_EIM, der.seq(0xA0, *(c.encode() for c in configs)))


def decode_add_initial_eim_request(item: tlv.Tlv) -> list[EimConfig]:
    where = "AddInitialEimRequest"
    m = der.Members(item, where)
    configs = decode_list(m.required(0xA0, "eimConfigurationDataList"), where)
    if not configs:
        raise der.Asn1Error("eimConfigurationDataList is empty", where=where)
    return configs


def add_initial_eim_ok(tokens: list[int | None]) -> bytes:
    """The ok response: per eIM its association token, or ``addOk``."""
    return der.seq(TAG_ADD_INITIAL_EIM, der.seq(0xA0, *(
        tlv.encode(0x05, b"") if t is None else tlv.encode(0x84, tlv.encode_int(t))
        for t in tokens)))


def add_initial_eim_error(code: int) -> bytes:
    return tlv.encode(TAG_ADD_INITIAL_EIM, tlv.encode(0x81, tlv.encode_int(code)))


def decode_add_initial_eim_response(data: bytes) -> list[int | None] | int:
    """The association tokens (None for ``addOk``), or the error code."""
    where = "AddInitialEimResponse"
    choice = der.children(der.expect(data, TAG_ADD_INITIAL_EIM, where), where)
    if len(choice) != 1 or choice[0].tag not in (0xA0, 0x81):
        raise der.Asn1Error("holds addInitialEimOk (A0) or addInitialEimError (81)",
                            where=where)
    if choice[0].tag == 0x81:
        return der.int_value(choice[0].value, where)
    out: list[int | None] = []
    for item in der.children(choice[0], where):
        if item.tag == 0x84:
            out.append(der.int_value(item.value, where, low=None))
        elif item.tag == 0x05 and not item.value:
            out.append(None)
        else:
            raise der.Asn1Error(f"unexpected {item.tag:X} in addInitialEimOk", where=where)
    return out


def get_eim_configuration_request(eim_id: str | None = None) -> bytes:
    return der.seq(TAG_GET_EIM_CONFIGURATION,
                   None if eim_id is None else der.seq(0xA0, tlv.encode(0x80, eim_id.encode())))


def decode_get_eim_configuration_request(item: tlv.Tlv) -> str | None:
    """The eimId searched for, or None for every eIM."""
    where = "GetEimConfigurationDataRequest"
    m = der.Members(item, where)
    criteria = m.optional(0xA0)
    if m.rest():
        raise der.Asn1Error("unexpected members", where=where)
    if criteria is None:
        return None
    inner = der.Members(criteria, where)
    eim_id = der.text_value(inner.required(0x80, "eimId").value, where, max_length=MAX_EIM_ID)
    if inner.rest() or not eim_id:
        raise der.Asn1Error("searchCriteria holds one non-empty eimId", where=where)
    return eim_id


def get_eim_configuration_response(configs: list[EimConfig]) -> bytes:
    """The stored configurations, without association tokens (they stay on the card)."""
    return der.seq(TAG_GET_EIM_CONFIGURATION,
                   der.seq(0xA0, *(c.encode(with_secrets=False) for c in configs)))


def decode_get_eim_configuration_response(data: bytes) -> list[EimConfig]:
    where = "GetEimConfigurationDataResponse"
    m = der.Members(der.expect(data, TAG_GET_EIM_CONFIGURATION, where), where)
    return decode_list(m.required(0xA0, "eimConfigurationDataList"), where)


@dataclass(frozen=True)
class IpaEuiccDataRequest:
    """What the eIM asks the eUICC to report (SGP.32 2.11.1.2)."""

    tags: tuple[int, ...]
    ci_pkid: bytes | None = None
    notification_seq: int | None = None
    transaction_id: bytes | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)

    def encode(self) -> bytes:
        return der.seq(TAG_IPA_EUICC_DATA,
                       tlv.encode(0x5C, b"".join(tlv.tag_bytes(t) for t in self.tags)),
                       der.opt(0x04, self.ci_pkid),
                       None if self.notification_seq is None else der.seq(
                           0xA1, tlv.encode(0x80, tlv.encode_int(self.notification_seq))),
                       der.opt(0x83, self.transaction_id))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> IpaEuiccDataRequest:
        where = "IpaEuiccDataRequest"
        item = der.expect(data, TAG_IPA_EUICC_DATA, where)
        m = der.Members(item, where)
        tags = tuple(tlv.decode_tag_list(m.required(0x5C, "tagList").value))
        pkid = m.optional(0x04)
        m.optional(0xA1)
        m.optional(0xA2)
        txid = m.optional(0x83)
        unknown = set(tags) - set(DATA_TAGS)
        if unknown:
            raise der.Asn1Error(f"tagList names unknown data {sorted(unknown)}", where=where)
        return cls(tags, None if pkid is None else pkid.value, None,
                   None if txid is None else der.sized(txid.value, where, low=1, high=16),
                   raw=item.encode())


def ipa_euicc_data_response(members: dict[int, bytes]) -> bytes:
    """IpaEuiccData from each member's complete DER element, in the type's order."""
    return der.seq(TAG_IPA_EUICC_DATA,
                   der.seq(0xA0, *(members[t] for t in DATA_TAGS if t in members)))


def ipa_euicc_data_error(code: int, transaction_id: bytes | None = None) -> bytes:
    return der.seq(TAG_IPA_EUICC_DATA, der.seq(0xA1, der.opt(0x80, transaction_id),
                                               tlv.encode(0x02, tlv.encode_int(code))))


def decode_ipa_euicc_data_response(data: bytes) -> dict[int, tlv.Tlv] | int:
    """The members of IpaEuiccData by tag, or the error code."""
    where = "IpaEuiccDataResponse"
    choice = der.children(der.expect(data, TAG_IPA_EUICC_DATA, where), where)
    if len(choice) != 1 or choice[0].tag not in (0xA0, 0xA1):
        raise der.Asn1Error("holds ipaEuiccData (A0) or ipaEuiccDataResponseError (A1)",
                            where=where)
    if choice[0].tag == 0xA1:
        m = der.Members(choice[0], where)
        m.optional(0x80)
        return der.int_value(m.required(0x02, "ipaEuiccDataErrorCode").value, where)
    return {item.tag: item for item in der.children(choice[0], where)}
