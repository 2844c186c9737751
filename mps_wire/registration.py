"""The payload of ``{prefix}/devices/{eid}/register``: a DeviceInfo, signed or not.

A signed registration is a tagged COSE_Sign1 (ES256, see :mod:`mps_wire.cose`) whose
payload is the DeviceInfo's CBOR map and whose external additional data is
:data:`~mps_wire.cose.REGISTRATION_AAD`; an unsigned one is the bare map. Receivers tell
them apart by the first byte (tag 18 against a map).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from mps_wire import codec
from mps_wire.cose import REGISTRATION_AAD, CoseError, Sign1, decode_sign1, is_sign1, sign1, verify1
from mps_wire.messages import DeviceInfo


@dataclass(frozen=True, slots=True)
class Registration:
    """A decoded registration; ``signed`` is the COSE_Sign1 to verify, None if unsigned.

    ``digest`` identifies the DeviceInfo itself (hex SHA-256 of its canonical encoding),
    whichever way it was sent: a repeat of the same message has the same digest.
    """

    info: DeviceInfo
    signed: Sign1 | None
    digest: str

    def verify(self, key: ec.EllipticCurvePublicKey) -> None:
        """Check the signature with the device's key; CoseError if unsigned or forged."""
        if self.signed is None:
            raise CoseError("the registration is not signed")
        verify1(self.signed, key, external_aad=REGISTRATION_AAD)


def digest_of(info: DeviceInfo) -> str:
    """The registration digest of ``info`` (see :class:`Registration`)."""
    return hashlib.sha256(codec.encode(info.to_wire())).hexdigest()


def encode_registration(info: DeviceInfo, key: ec.EllipticCurvePrivateKey | None = None, *,
                        kid: bytes | None = None) -> bytes:
    """The register payload for ``info``: signed with ``key`` when given."""
    body = codec.encode(info.to_wire())
    if key is None:
        return body
    return sign1(body, key, kid=kid, external_aad=REGISTRATION_AAD)


def decode_registration(payload: bytes, *, max_size: int = codec.MAX_PAYLOAD
                        ) -> Registration:
    """Decode and validate a register payload without checking any signature.

    Raises DecodeError, CoseError or ValidationError (all WireError) with a stable code.
    """
    signed: Sign1 | None = None
    body = payload
    if is_sign1(payload):
        signed = decode_sign1(payload, max_size=max_size)
        body = signed.payload
    info = DeviceInfo.from_wire(codec.decode(body, max_size=max_size))
    return Registration(info=info, signed=signed, digest=digest_of(info))
