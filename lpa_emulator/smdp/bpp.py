"""Binding a profile package to one eUICC (SGP.22 2.5.3 to 2.5.6).

The SM-DP+ makes a one-time key pair, agrees a secret with the eUICC's one-time public key
(ECDH), derives the session keys with the X9.63 KDF over the host id and the EID, signs the
InitialiseSecureChannel request with SK.DPpb and protects ConfigureISDP (87),
StoreMetadata (88, MAC only) and the profile package (86 segments) with SCP03t.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from mps_esim import sgp22, tlv
from mps_esim.crypto import ecka, signatures
from mps_esim.crypto.kdf import SessionKeys, derive_session_keys
from mps_esim.crypto.scp03t import TAG_ENCRYPTED, TAG_MAC_ONLY, TAG_PROFILE_SEGMENT, Scp03t
from mps_esim.sgp22 import rsp

HOST_ID = b"MPS-SMDP+"
"""The host id of the control reference template (any 1 to 16 bytes; it enters the KDF)."""


@dataclass(frozen=True, slots=True)
class BindingInput:
    """What binding one profile needs.

    ``euicc_otpk`` is otPK.EUICC.ECKA from euiccSigned2, ``eid`` the 16-byte EID,
    ``metadata`` the StoreMetadataRequest DER (BF25), ``profile`` the profile package DER.
    """

    transaction_id: bytes
    euicc_otpk: bytes
    eid: bytes
    metadata: bytes
    profile: bytes
    dppb_key: ec.EllipticCurvePrivateKey
    smdp_oid: str | None = None
    host_id: bytes = HOST_ID
    replace_session_keys: bool = False


def bind_profile(job: BindingInput) -> bytes:
    """The bound profile package (BF36 DER) for ``job``.

    With ``replace_session_keys`` the profile segments are protected with fresh random
    keys handed over in a ReplaceSessionKeys command (A2), as servers that keep
    pre-protected packages do; the eUICC must then switch keys.
    """
    otsk = ecka.new_key(job.dppb_key.curve)
    secret = ecka.shared_secret(otsk, job.euicc_otpk)
    channel = Scp03t(derive_session_keys(secret, job.host_id, job.eid))
    isc = rsp.InitialiseSecureChannel(job.transaction_id, job.host_id, ecka.public_point(otsk))
    signature = signatures.sign(job.dppb_key, isc.signed_part()
                                + tlv.encode(sgp22.TAG_OTPK, job.euicc_otpk))
    signed_isc = rsp.InitialiseSecureChannel(job.transaction_id, job.host_id,
                                             ecka.public_point(otsk), signature)
    configure = channel.wrap_all(TAG_ENCRYPTED, rsp.configure_isdp_request(job.smdp_oid))
    metadata = channel.wrap_all(TAG_MAC_ONLY, job.metadata)
    replace: list[bytes] | None = None
    if job.replace_session_keys:
        ppk = SessionKeys(os.urandom(16), os.urandom(16), os.urandom(16))
        replace = channel.wrap_all(TAG_ENCRYPTED, rsp.replace_session_keys_request(
            ppk.initial_mcv, ppk.s_enc, ppk.s_mac))
        channel = Scp03t(ppk)
    profile = channel.wrap_all(TAG_PROFILE_SEGMENT, job.profile)
    return rsp.BoundProfilePackage(signed_isc.encode(), tuple(configure), tuple(metadata),
                                   tuple(profile),
                                   None if replace is None else tuple(replace)).encode()
