"""The eUICC's answer to an eUICC package (SGP.32 2.11.2.1, ``EuiccPackageResult``).

Three shapes under the explicit ``BF51``: the signed result of the operations run
(``A0``), a signed refusal of the whole package (``A1``: invalidEid, replayError,
counterValueOutOfRange, ...), and an unsigned refusal (``A2``) for a package the eUICC
cannot attribute to an eIM it trusts (unknown eIM, signature that does not verify). See
:mod:`mps_esim.sgp32.package` for the layout and what is signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from mps_esim import sgp22, tlv
from mps_esim.crypto import signatures
from mps_esim.crypto.errors import SignatureError
from mps_esim.sgp22 import der
from mps_esim.sgp32.eim import MAX_EIM_ID
from mps_esim.sgp32.package import (
    ERROR_CODES,
    RESULT_CODES,
    RESULT_KINDS,
    RESULT_TAGS,
    TAG_EUICC_PACKAGE,
    token_object,
)

Signer = Callable[[bytes], bytes]

TAG_RESULT_SIGNED = 0xA0
TAG_ERROR_SIGNED = 0xA1
TAG_ERROR_UNSIGNED = 0xA2
KINDS = {TAG_RESULT_SIGNED: "result", TAG_ERROR_SIGNED: "error",
         TAG_ERROR_UNSIGNED: "unsigned"}


@dataclass(frozen=True)
class OperationResult:
    """One entry of euiccResult: the operation it answers and its DER element."""

    kind: str
    element: bytes

    @property
    def code(self) -> int | None:
        """The result INTEGER of enable/disable/delete/..., None for listing results (and
        for an addEim answered with an association token)."""
        item = tlv.decode_one(self.element)
        if item.constructed:
            inner = item.children() if self.kind == "addEim" else []
            if len(inner) == 1 and inner[0].tag == 0x02:
                return tlv.decode_int(inner[0].value)
            return None
        return tlv.decode_int(item.value)

    @property
    def name(self) -> str:
        code = self.code
        if code is None:
            return "ok"
        return RESULT_CODES.get(self.kind, {}).get(code, f"code {code}")

    @classmethod
    def of(cls, kind: str, code: int) -> OperationResult:
        """The INTEGER result ``code`` of ``kind``."""
        if kind == "addEim":
            return cls(kind, tlv.encode(RESULT_TAGS[kind], tlv.encode(0x02, tlv.encode_int(code))))
        return cls(kind, tlv.encode(RESULT_TAGS[kind], tlv.encode_int(code)))


@dataclass(frozen=True)
class EuiccPackageResult:
    """A decoded EuiccPackageResult. ``data_der`` is the signed data as received and
    ``signature`` its signature (both empty for an unsigned error)."""

    kind: str
    eim_id: str
    counter: int | None = None
    transaction_id: bytes | None = None
    seq: int | None = None
    results: tuple[OperationResult, ...] = ()
    error_code: int | None = None
    association_token: int | None = None
    data_der: bytes = field(default=b"", repr=False)
    signature: bytes = field(default=b"", repr=False)

    @property
    def error_name(self) -> str | None:
        if self.error_code is None:
            return None
        return ERROR_CODES.get(self.error_code, f"code {self.error_code}")

    def verify(self, key: ec.EllipticCurvePublicKey, association_token: int | None) -> None:
        """Check the eUICC's signature (SK.EUICC); an unsigned error has none to check."""
        if self.kind == "unsigned":
            raise SignatureError("an unsigned error carries no signature")
        signatures.verify(key, self.data_der + token_object(association_token),
                          self.signature)

    def encode(self) -> bytes:
        if self.kind == "unsigned":
            body = der.seq(TAG_ERROR_UNSIGNED, tlv.encode(0x80, self.eim_id.encode()),
                           der.opt(0x82, self.transaction_id),
                           der.opt(0x84, None if self.association_token is None
                                   else tlv.encode_int(self.association_token)),
                           der.opt(0x8F, None if self.error_code is None
                                   else tlv.encode_int(self.error_code)))
        else:
            tag = TAG_RESULT_SIGNED if self.kind == "result" else TAG_ERROR_SIGNED
            body = tlv.encode(tag, self.data_der + signatures.signature_object(self.signature))
        return tlv.encode(TAG_EUICC_PACKAGE, body)

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> EuiccPackageResult:
        where = "EuiccPackageResult"
        choice = der.children(der.expect(data, TAG_EUICC_PACKAGE, where), where)
        if len(choice) != 1 or choice[0].tag not in KINDS:
            raise der.Asn1Error("holds one of A0, A1 or A2", where=where)
        item = choice[0]
        if item.tag == TAG_ERROR_UNSIGNED:
            m = der.Members(item, where)
            eim_id = der.text_value(m.required(0x80, "eimId").value, where,
                                    max_length=MAX_EIM_ID)
            txid, token, code = m.optional(0x82), m.optional(0x84), m.optional(0x8F)
            return cls("unsigned", eim_id,
                       transaction_id=None if txid is None else der.sized(txid.value, where,
                                                                          low=1, high=16),
                       association_token=None if token is None else der.int_value(
                           token.value, where, low=None),
                       error_code=None if code is None else der.int_value(code.value, where))
        outer = der.Members(item, where)
        signed = outer.required(0x30, "signed data")
        signature = outer.required(sgp22.TAG_SIGNATURE, "signature").value
        return _signed(KINDS[item.tag], signed, signature, where)


def _signed(kind: str, signed: tlv.Tlv, signature: bytes, where: str) -> EuiccPackageResult:
    m = der.Members(signed, where)
    eim_id = der.text_value(m.required(0x80, "eimId").value, where, max_length=MAX_EIM_ID)
    counter = der.int_value(m.required(0x81, "counterValue").value, where, low=None)
    txid_item = m.optional(0x82)
    txid = None if txid_item is None else der.sized(txid_item.value, where, low=1, high=16)
    if kind == "error":
        code = der.int_value(m.required(0x02, "euiccPackageErrorCode").value, where)
        return EuiccPackageResult(kind, eim_id, counter, txid, error_code=code,
                                  data_der=signed.encode(), signature=signature)
    seq = der.int_value(m.required(0x83, "seqNumber").value, where)
    results = []
    for i, element in enumerate(der.children(m.required(0x30, "euiccResult"), where)):
        name = RESULT_KINDS.get(element.tag)
        if name is None:
            raise der.Asn1Error(f"euiccResult[{i}] has unknown tag {element.tag:X}",
                                where=where)
        results.append(OperationResult(name, element.encode()))
    return EuiccPackageResult(kind, eim_id, counter, txid, seq, tuple(results),
                              data_der=signed.encode(), signature=signature)


def signed_result(sign: Signer, *, eim_id: str, counter: int, transaction_id: bytes | None,
                  seq: int, results: list[OperationResult], association_token: int | None
                  ) -> EuiccPackageResult:
    """The signed result of the operations run; ``sign`` signs bytes (SK.EUICC)."""
    data = der.seq(0x30, tlv.encode(0x80, eim_id.encode()),
                   tlv.encode(0x81, tlv.encode_int(counter)), der.opt(0x82, transaction_id),
                   tlv.encode(0x83, tlv.encode_int(seq)),
                   tlv.encode(0x30, b"".join(r.element for r in results)))
    signature = sign(data + token_object(association_token))
    return EuiccPackageResult("result", eim_id, counter, transaction_id, seq, tuple(results),
                              data_der=data, signature=signature)


def signed_error(sign: Signer, *, eim_id: str, counter: int, transaction_id: bytes | None,
                 code: int, association_token: int | None) -> EuiccPackageResult:
    """A signed refusal of the whole package with EuiccPackageErrorCode ``code``."""
    data = der.seq(0x30, tlv.encode(0x80, eim_id.encode()),
                   tlv.encode(0x81, tlv.encode_int(counter)), der.opt(0x82, transaction_id),
                   tlv.encode(0x02, tlv.encode_int(code)))
    signature = sign(data + token_object(association_token))
    return EuiccPackageResult("error", eim_id, counter, transaction_id, error_code=code,
                              data_der=data, signature=signature)

