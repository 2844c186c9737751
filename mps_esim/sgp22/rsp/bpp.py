"""The bound profile package and the commands around it (SGP.22 2.5.5)."""

from __future__ import annotations

from mps_common.record import record
from mps_esim import tlv
from mps_esim.sgp22 import (
    TAG_BOUND_PROFILE_PACKAGE,
    TAG_CONFIGURE_ISDP,
    TAG_INITIALISE_SECURE_CHANNEL,
    TAG_OID,
    TAG_OTPK,
    TAG_REPLACE_SESSION_KEYS,
    TAG_SIGNATURE,
)
from mps_esim.sgp22.der import (
    Asn1Error,
    Members,
    children,
    expect,
    int_bytes,
    int_value,
    oid_bytes,
    seq,
    sized,
)
from mps_esim.sgp22.rsp.common import (
    sig_tlv,
    txid_of,
)

# --- the bound profile package -----------------------------------------------------------

REMOTE_OP_INSTALL_BPP = 1
CRT_KEY_TYPE = 0x88
CRT_KEY_LENGTH = 0x10


@record
class InitialiseSecureChannel:
    """``InitialiseSecureChannelRequest ::= [35]`` (BF23)."""

    transaction_id: bytes
    host_id: bytes
    smdp_otpk: bytes
    signature: bytes = b""
    remote_op: int = REMOTE_OP_INSTALL_BPP
    key_type: int = CRT_KEY_TYPE
    key_length: int = CRT_KEY_LENGTH

    def signed_part(self) -> bytes:
        """The data objects before the signature, as they are signed."""
        crt = seq(0xA6, tlv.encode(0x80, bytes((self.key_type,))),
                  tlv.encode(0x81, bytes((self.key_length,))), tlv.encode(0x84, self.host_id))
        return (tlv.encode(0x82, int_bytes(self.remote_op)) + tlv.encode(0x80, self.transaction_id)
                + crt + tlv.encode(TAG_OTPK, self.smdp_otpk))

    def encode(self) -> bytes:
        return tlv.encode(TAG_INITIALISE_SECURE_CHANNEL,
                          self.signed_part() + sig_tlv(self.signature))

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> tuple[InitialiseSecureChannel, bytes]:
        """The request and the bytes its signature covers (before ``5F49 || otPK.EUICC``)."""
        where = "InitialiseSecureChannelRequest"
        item = expect(data, TAG_INITIALISE_SECURE_CHANNEL, where)
        m = Members(item, where)
        op = int_value(m.required(0x82, "remoteOpId").value, where)
        txid = txid_of(m.required(0x80, "transactionId"), where)
        crt = Members(m.required(0xA6, "controlRefTemplate"), where)
        key_type = sized(crt.required(0x80, "keyType").value, where, size=1)[0]
        key_length = sized(crt.required(0x81, "keyLen").value, where, size=1)[0]
        host_id = sized(crt.required(0x84, "hostId").value, where, low=1, high=16)
        otpk = sized(m.required(TAG_OTPK, "smdpOtpk").value, where, low=1, high=133)
        sig_item = m.required(TAG_SIGNATURE, "smdpSign")
        signed = b"".join(c.encode() for c in children(item, where)
                          if c.tag != TAG_SIGNATURE)
        return (cls(txid, host_id, otpk, sig_item.value, op, key_type, key_length), signed)


@record
class BoundProfilePackage:
    """``BoundProfilePackage ::= [54]`` (BF36) as its protected parts.

    ``configure_isdp``, ``store_metadata``, ``replace_keys`` and ``profile`` hold the
    complete ``87`` / ``88`` / ``87`` / ``86`` segment TLVs.
    """

    initialise_secure_channel: bytes
    configure_isdp: tuple[bytes, ...]
    store_metadata: tuple[bytes, ...]
    profile: tuple[bytes, ...]
    replace_keys: tuple[bytes, ...] | None = None

    def _parts(self) -> list[bytes]:
        parts = [self.initialise_secure_channel, seq(0xA0, *self.configure_isdp),
                 seq(0xA1, *self.store_metadata)]
        if self.replace_keys is not None:
            parts.append(seq(0xA2, *self.replace_keys))
        parts.append(seq(0xA3, *self.profile))
        return parts

    def encode(self) -> bytes:
        return tlv.encode(TAG_BOUND_PROFILE_PACKAGE, b"".join(self._parts()))

    def segments(self) -> list[bytes]:
        """The ES10b.LoadBoundProfilePackage commands, in the order they are sent.

        BF36 header with BF23; A0 whole; A1 header then each 88; A2 whole (if present);
        A3 header then each 86 (SGP.22 2.5.5).
        """
        whole = self.encode()
        outer_header = whole[:len(whole) - sum(len(p) for p in self._parts())]
        out = [outer_header + self.initialise_secure_channel, seq(0xA0, *self.configure_isdp)]
        out.append(_header_of(seq(0xA1, *self.store_metadata)))
        out.extend(self.store_metadata)
        if self.replace_keys is not None:
            out.append(seq(0xA2, *self.replace_keys))
        out.append(_header_of(seq(0xA3, *self.profile)))
        out.extend(self.profile)
        return out

    @classmethod
    def decode(cls, data: bytes | tlv.Tlv) -> BoundProfilePackage:
        where = "BoundProfilePackage"
        m = Members(expect(data, TAG_BOUND_PROFILE_PACKAGE, where), where)
        isc = m.required(TAG_INITIALISE_SECURE_CHANNEL, "initialiseSecureChannelRequest")

        def segments(item: tlv.Tlv, tag: int, name: str) -> tuple[bytes, ...]:
            out = []
            for child in children(item, where):
                if child.tag != tag:
                    raise Asn1Error(f"{name} holds tag {child.tag:X}, expected {tag:X}",
                                    where=where)
                out.append(child.encode())
            return tuple(out)

        a0 = segments(m.required(0xA0, "firstSequenceOf87"), 0x87, "firstSequenceOf87")
        a1 = segments(m.required(0xA1, "sequenceOf88"), 0x88, "sequenceOf88")
        a2_item = m.optional(0xA2)
        a2 = segments(a2_item, 0x87, "secondSequenceOf87") if a2_item is not None else None
        a3 = segments(m.required(0xA3, "sequenceOf86"), 0x86, "sequenceOf86")
        return cls(isc.encode(), a0, a1, a3, a2)


def _header_of(encoded: bytes) -> bytes:
    """Tag and length of one encoded TLV (what precedes its value)."""
    item = tlv.decode_one(encoded)
    return encoded[:len(encoded) - len(item.value)]


def configure_isdp_request(dp_oid: str | None = None) -> bytes:
    """ConfigureISDPRequest ``BF24 { [B8 { 06 dpOid }] }``."""
    data = None if dp_oid is None else seq(0xB8, tlv.encode(TAG_OID, oid_bytes(dp_oid)))
    return seq(TAG_CONFIGURE_ISDP, data)


def replace_session_keys_request(initial_mcv: bytes, ppk_enc: bytes, ppk_mac: bytes) -> bytes:
    """ReplaceSessionKeysRequest ``BF26 { 80 MCV, 81 PPK-ENC, 82 PPK-MAC }``."""
    return seq(TAG_REPLACE_SESSION_KEYS, tlv.encode(0x80, initial_mcv),
               tlv.encode(0x81, ppk_enc), tlv.encode(0x82, ppk_mac))


def decode_replace_session_keys(data: bytes) -> tuple[bytes, bytes, bytes]:
    where = "ReplaceSessionKeysRequest"
    m = Members(expect(data, TAG_REPLACE_SESSION_KEYS, where), where)
    return (sized(m.required(0x80, "initialMacChainingValue").value, where, size=16),
            sized(m.required(0x81, "ppkEnc").value, where, size=16),
            sized(m.required(0x82, "ppkCmac").value, where, size=16))
