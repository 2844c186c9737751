"""Session key derivation for the bound profile package (SGP.22 annex G, BSI TR-03111).

The shared secret from ECDH of the two one-time keys is fed to the ANSI X9.63 KDF with
SHA-256. The shared info binds the keys to the key type and length of the control
reference template, the SM-DP+'s host id and the EID, so a package bound for one eUICC
cannot be replayed to another.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from mps_esim.crypto.errors import CryptoError

KEY_TYPE_AES = 0x88
"""Key type of the control reference template (GlobalPlatform: AES)."""

KEY_LENGTH = 0x10
"""Session key length in bytes (AES-128)."""

EID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The three 16-byte values the KDF yields, in the order SGP.22 takes them."""

    initial_mcv: bytes
    s_enc: bytes
    s_mac: bytes

    def __repr__(self) -> str:
        # Keys stay out of logs and tracebacks.
        return "SessionKeys(<hidden>)"


def _lv(value: bytes) -> bytes:
    # One length byte suffices: host id and EID are at most 16 bytes.
    return bytes((len(value),)) + value


def shared_info(host_id: bytes, eid: bytes, *, key_type: int = KEY_TYPE_AES,
                key_length: int = KEY_LENGTH) -> bytes:
    """``key type || key length || LV(host id) || LV(EID)``."""
    if not 1 <= len(host_id) <= 16:
        raise CryptoError(f"host id must be 1 to 16 bytes, got {len(host_id)}")
    if len(eid) != EID_LENGTH:
        raise CryptoError(f"EID must be {EID_LENGTH} bytes, got {len(eid)}")
    if not (0 <= key_type <= 0xFF and 0 <= key_length <= 0xFF):
        raise CryptoError("key type and key length are single bytes")
    return bytes((key_type, key_length)) + _lv(host_id) + _lv(eid)


def x963_kdf(secret: bytes, length: int, info: bytes) -> bytes:
    """ANSI X9.63 KDF with SHA-256: ``length`` bytes from ``secret`` and ``info``."""
    return X963KDF(algorithm=hashes.SHA256(), length=length, sharedinfo=info).derive(secret)


def derive_session_keys(secret: bytes, host_id: bytes, eid: bytes) -> SessionKeys:
    """The initial MAC chaining value, S-ENC and S-MAC for one profile download.

    ``secret`` is the ECDH shared secret (the x coordinate), ``eid`` the 16-byte EID.
    """
    if not secret:
        raise CryptoError("empty shared secret")
    out = x963_kdf(secret, 3 * KEY_LENGTH, shared_info(host_id, eid))
    return SessionKeys(out[:16], out[16:32], out[32:48])
