"""The device's signing key: registrations go out as COSE_Sign1 (ES256) signed with it.

The key is a P-256 private key in PEM or DER (PKCS#8 or SEC1), issued by the operator
with the device's credentials (``signing-key.pem`` in the credential bundle), whose
public part the operator enrolled in its registry. It never leaves the device.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import AgentConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from mps_wire.messages import DeviceInfo

# The crypto library and COSE (mps_wire.cose, mps_wire.registration) are imported when a
# key is used: a device registering unsigned (no credential bundle) never loads them.


class SigningKeyError(AgentConfigError):
    """The signing key is missing, unreadable or not a P-256 private key."""


class DeviceSigner:
    """Encodes the device's registrations signed with ``key``."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, path: Path | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        if not isinstance(key.curve, ec.SECP256R1):
            raise SigningKeyError(f"the signing key must be P-256, not {key.curve.name}")
        from mps_wire.cose import key_id

        self.key = key
        self.kid = key_id(key.public_key())
        self.path = path

    def __repr__(self) -> str:
        return f"DeviceSigner(kid={self.kid.hex()}, path={self.path})"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DeviceSigner:
        """Load the key at ``path``; SigningKeyError says what is wrong."""
        where = Path(path)
        try:
            data = where.read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"cannot read the signing key {where}: "
                                  f"{exc.strerror or exc}") from exc
        from mps_wire.cose import load_private_key

        try:
            return cls(load_private_key(data), path=where)
        except ValueError as exc:
            raise SigningKeyError(f"{where}: {exc}") from exc

    def encode(self, info: DeviceInfo) -> bytes:
        """The register payload of ``info``: a COSE_Sign1 over its CBOR map."""
        from mps_wire.registration import encode_registration

        return encode_registration(info, self.key, kid=self.kid)
