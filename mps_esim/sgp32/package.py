"""eUICC packages (SGP.32 2.11.1.1 and 2.11.2.1): what an eIM asks of an eUICC, signed,
and the eUICC's signed answer.

Request (``EuiccPackageRequest``, tag ``BF51``)::

    BF51 { 30 euiccPackageSigned { 80 eimId, 5A eidValue, 81 counterValue,
                                   82 eimTransactionId?, A0 psmoList | A1 ecoList },
           5F37 eimSignature }

The PSMOs (``A3`` enable, ``A4`` disable, ``A5`` delete, ``BF2D`` listProfileInfo,
``A6`` getRAT, ``A7`` configureImmediateEnable) and eCOs (``A8`` addEim, ``A9`` deleteEim,
``AA`` updateEim, ``AB`` listEim) are :class:`Operation` values.

Result (``EuiccPackageResult``, the explicit ``BF51`` around one of)::

    A0 { 30 { 80 eimId, 81 counterValue, 82 eimTransactionId?, 83 seqNumber,
              30 { result per operation } }, 5F37 euiccSignEPR }
    A1 { 30 { 80 eimId, 81 counterValue, 82 eimTransactionId?, 02 errorCode }, 5F37 }
    A2 { 80 eimId, 82 eimTransactionId?, 84 associationToken?, 8F errorCode? }

Signatures are ECDSA/SHA-256 as raw ``r || s`` (as in SGP.22). Both cover the DER of the
signed data followed by the association token data object (``84``), ``84 01 00`` when the
eIM has none (SGP.32 2.11.1.1, 2.11.2.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from mps_esim import sgp22, tlv
from mps_esim.crypto import signatures
from mps_esim.sgp22 import der
from mps_esim.sgp32.eim import MAX_EIM_ID, EimConfig
from mps_esim.sgp32.immediate import ROLLBACK_CODES, TAG_ROLLBACK_RESULT, ImmediateEnable

TAG_EUICC_PACKAGE = 0xBF51
TAG_PSMO_LIST = 0xA0
TAG_ECO_LIST = 0xA1

PSMO_TAGS = {"enable": 0xA3, "disable": 0xA4, "delete": 0xA5, "listProfileInfo": 0xBF2D,
             "getRAT": 0xA6, "configureImmediateEnable": 0xA7}
ECO_TAGS = {"addEim": 0xA8, "deleteEim": 0xA9, "updateEim": 0xAA, "listEim": 0xAB}
RESULT_TAGS = {"enable": 0x83, "disable": 0x84, "delete": 0x85, "listProfileInfo": 0xBF2D,
               "getRAT": 0xA6, "configureImmediateEnable": 0x87, "addEim": 0xA8,
               "deleteEim": 0x89, "updateEim": 0x8A, "listEim": 0xAB,
               "rollback": TAG_ROLLBACK_RESULT, "processingTerminated": 0x02}
"""EuiccResultData: the tag of each operation's result."""
RESULT_KINDS = {tag: kind for kind, tag in RESULT_TAGS.items()}

ERROR_CODES = {3: "invalidEid", 4: "replayError", 6: "counterValueOutOfRange",
               15: "sizeOverflow", 104: "ecallActive", 127: "undefinedError"}
"""EuiccPackageErrorCode (signed refusals)."""
INVALID_EID, REPLAY_ERROR, COUNTER_OUT_OF_RANGE, UNDEFINED_ERROR = 3, 4, 6, 127

RESULT_CODES = {
    "enable": {0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState",
               3: "disallowedByPolicy", 5: "catBusy", 20: "rollbackNotAvailable",
               127: "undefinedError"},
    "disable": {0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInEnabledState",
                3: "disallowedByPolicy", 5: "catBusy", 127: "undefinedError"},
    "delete": {0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInDisabledState",
               3: "disallowedByPolicy", 20: "rollbackNotAvailable",
               21: "returnFallbackProfile", 127: "undefinedError"},
    "configureImmediateEnable": {0: "ok", 1: "insufficientMemory", 7: "commandError",
                                 127: "undefinedError"},
    "addEim": {0: "ok", 1: "insufficientMemory", 2: "associatedEimAlreadyExists",
               3: "ciPKUnknown", 5: "invalidAssociationToken", 6: "counterValueOutOfRange",
               7: "commandError", 127: "undefinedError"},
    "deleteEim": {0: "ok", 1: "eimNotFound", 2: "lastEimDeleted", 7: "commandError",
                  127: "undefinedError"},
    "updateEim": {0: "ok", 1: "eimNotFound", 3: "ciPKUnknown", 6: "counterValueOutOfRange",
                  7: "commandError", 127: "undefinedError"},
    "rollback": ROLLBACK_CODES,
    "processingTerminated": {1: "resultSizeOverflow", 2: "unknownOrDamagedCommand",
                             3: "interruption", 127: "undefinedError"},
}
"""The named results of the operations whose result is an INTEGER (SGP.32 2.11.2.1)."""

MAX_OPERATIONS = 16
"""Operations one package may carry on this eUICC; more is refused as sizeOverflow."""


def token_object(association_token: int | None) -> bytes:
    """The associationToken data object that follows signed data before signing."""
    return tlv.encode(0x84, tlv.encode_int(association_token or 0))


@dataclass(frozen=True)
class Operation:
    """One PSMO or eCO. ``iccid`` names the profile of enable/disable/delete, ``eim`` the
    configuration of addEim/updateEim, ``eim_id`` the eIM of deleteEim, ``immediate`` the
    configuration of configureImmediateEnable; ``body`` is the request content of
    listProfileInfo as given."""

    kind: str
    iccid: str | None = None
    rollback: bool = False
    eim: EimConfig | None = None
    eim_id: str | None = None
    body: bytes = b""
    immediate: ImmediateEnable | None = None

    @property
    def eco(self) -> bool:
        return self.kind in ECO_TAGS

    def encode(self) -> bytes:
        if self.kind in ("enable", "disable", "delete"):
            if self.iccid is None:
                raise ValueError(f"{self.kind} needs the profile's ICCID")
            return der.seq(PSMO_TAGS[self.kind],
                           tlv.encode(sgp22.TAG_ICCID, sgp22.encode_iccid(self.iccid)),
                           tlv.encode(0x05, b"") if self.rollback else None)
        if self.kind in ("addEim", "updateEim"):
            if self.eim is None:
                raise ValueError(f"{self.kind} needs eIM configuration data")
            return self.eim.encode(ECO_TAGS[self.kind])
        if self.kind == "deleteEim":
            return der.seq(ECO_TAGS["deleteEim"], tlv.encode(0x80, (self.eim_id or "").encode()))
        if self.kind == "configureImmediateEnable" and self.immediate is not None:
            return self.immediate.encode(PSMO_TAGS[self.kind])
        tag = PSMO_TAGS.get(self.kind) or ECO_TAGS.get(self.kind)
        if tag is None:
            raise ValueError(f"unknown operation {self.kind!r}")
        return tlv.encode(tag, self.body)

    @classmethod
    def decode(cls, item: tlv.Tlv, *, eco: bool, where: str) -> Operation:
        table = ECO_TAGS if eco else PSMO_TAGS
        kind = next((k for k, t in table.items() if t == item.tag), None)
        if kind is None:
            raise der.Asn1Error(f"unknown {'eCO' if eco else 'PSMO'} tag {item.tag:X}",
                                where=where)
        if kind in ("enable", "disable", "delete"):
            m = der.Members(item, where)
            iccid = sgp22.decode_iccid(der.sized(m.required(sgp22.TAG_ICCID, "iccid").value,
                                                 where, size=10))
            rollback = kind == "enable" and m.optional(0x05) is not None
            return cls(kind, iccid=iccid, rollback=rollback)
        if kind in ("addEim", "updateEim"):
            return cls(kind, eim=EimConfig.decode(item, where))
        if kind == "deleteEim":
            m = der.Members(item, where)
            eim_id = der.text_value(m.required(0x80, "eimId").value, where,
                                    max_length=MAX_EIM_ID)
            return cls(kind, eim_id=eim_id)
        if kind in ("getRAT", "listEim") and item.value:
            raise der.Asn1Error(f"{kind} is an empty SEQUENCE", where=where)
        if kind == "configureImmediateEnable":
            return cls(kind, immediate=ImmediateEnable.decode(item, where))
        if kind == "listProfileInfo":
            der.children(item, where)
        return cls(kind, body=item.value)


@dataclass(frozen=True)
class EuiccPackageSigned:
    """The signed part of an eUICC package."""

    eim_id: str
    eid: str
    counter: int
    operations: tuple[Operation, ...]
    transaction_id: bytes | None = None

    @property
    def eco(self) -> bool:
        return bool(self.operations) and self.operations[0].eco

    def encode(self) -> bytes:
        if len({op.eco for op in self.operations}) > 1:
            raise ValueError("a package holds PSMOs or eCOs, not both")
        return der.seq(
            0x30, tlv.encode(0x80, self.eim_id.encode()),
            tlv.encode(sgp22.TAG_EID, bytes.fromhex(self.eid)),
            tlv.encode(0x81, tlv.encode_int(self.counter)),
            der.opt(0x82, self.transaction_id),
            der.seq(TAG_ECO_LIST if self.eco else TAG_PSMO_LIST,
                    *(op.encode() for op in self.operations)))

    @classmethod
    def decode(cls, item: tlv.Tlv) -> EuiccPackageSigned:
        where = "EuiccPackageSigned"
        m = der.Members(der.expect(item, 0x30, where), where)
        eim_id = der.text_value(m.required(0x80, "eimId").value, where, max_length=MAX_EIM_ID)
        eid = der.sized(m.required(sgp22.TAG_EID, "eidValue").value, where, size=16).hex()
        counter = der.int_value(m.required(0x81, "counterValue").value, where, low=None)
        txid = m.optional(0x82)
        package = m.any("euiccPackage")
        if package.tag not in (TAG_PSMO_LIST, TAG_ECO_LIST):
            raise der.Asn1Error(f"euiccPackage is psmoList (A0) or ecoList (A1), got "
                                f"{package.tag:X}", where=where)
        eco = package.tag == TAG_ECO_LIST
        ops = tuple(Operation.decode(op, eco=eco, where=f"{where}.euiccPackage[{i}]")
                    for i, op in enumerate(der.children(package, where)))
        if not eim_id or not ops:
            raise der.Asn1Error("eimId and the operation list may not be empty", where=where)
        return cls(eim_id, eid.upper(), counter, ops,
                   None if txid is None else der.sized(txid.value, where, low=1, high=16))


@dataclass(frozen=True)
class EuiccPackageRequest:
    """A signed eUICC package. ``signed_der`` keeps the signed bytes exactly as received,
    which is what the signature covers."""

    signed: EuiccPackageSigned
    signed_der: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    @classmethod
    def sign(cls, signed: EuiccPackageSigned, key: ec.EllipticCurvePrivateKey, *,
             association_token: int | None = None) -> EuiccPackageRequest:
        data = signed.encode()
        return cls(signed, data, signatures.sign(key, data + token_object(association_token)))

    def verify(self, key: ec.EllipticCurvePublicKey, association_token: int | None) -> None:
        """Raise :class:`~mps_esim.crypto.errors.SignatureError` unless the eIM signed it."""
        signatures.verify(key, self.signed_der + token_object(association_token),
                          self.signature)

    def encode(self) -> bytes:
        return tlv.encode(TAG_EUICC_PACKAGE,
                          self.signed_der + signatures.signature_object(self.signature))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> EuiccPackageRequest:
        where = "EuiccPackageRequest"
        m = der.Members(der.expect(data, TAG_EUICC_PACKAGE, where), where)
        signed_item = m.required(0x30, "euiccPackageSigned")
        signature = m.required(sgp22.TAG_SIGNATURE, "eimSignature").value
        if m.rest():
            raise der.Asn1Error("unexpected members after eimSignature", where=where)
        return cls(EuiccPackageSigned.decode(signed_item), signed_item.encode(), signature)


def decode_eim_id(data: bytes | tlv.Tlv) -> tuple[str | None, bytes | None]:
    """The eimId and eimTransactionId of a package too damaged to decode whole, when they
    can still be read (for an unsigned error that names them)."""
    try:
        outer = data if isinstance(data, tlv.Tlv) else tlv.decode_one(data)
        signed = outer.children()[0]
        items = signed.children()
        eim_id = tlv.decode_utf8(items[0].value, max_chars=MAX_EIM_ID) if (
            items and items[0].tag == 0x80 and items[0].value) else None
        txid = next((i.value for i in items if i.tag == 0x82 and 1 <= len(i.value) <= 16),
                    None)
        return eim_id, txid
    except (tlv.TlvError, IndexError):
        return None, None


def operations(kinds: Sequence[tuple[str, str | None]]) -> tuple[Operation, ...]:
    """Operations from ``(kind, iccid-or-eimId)`` pairs, for command lines and tests."""
    out = []
    for kind, arg in kinds:
        if kind in ("enable", "disable", "delete"):
            out.append(Operation(kind, iccid=arg))
        elif kind == "deleteEim":
            out.append(Operation(kind, eim_id=arg))
        elif kind in ("listProfileInfo", "getRAT", "listEim"):
            out.append(Operation(kind))
        else:
            raise ValueError(f"operation {kind!r} needs more than a name")
    return tuple(out)
