"""SCP03t: the protection of the bound profile package's segments (SGP.22 2.5.3, 2.6.4).

Each segment is one TLV. Tags ``86`` (profile element segments) and ``87`` (ConfigureISDP,
ReplaceSessionKeys) are encrypted and MACed, ``88`` (StoreMetadata) is MACed only.

* Encryption: AES-128-CBC with S-ENC over the data padded with ``80 00..`` to a multiple
  of 16 (padding is always added). The IV is AES-ECB(S-ENC, block counter), the counter a
  16-byte big-endian number that starts at 1 and advances once per segment, MAC-only
  segments included.
* MAC: AES-CMAC with S-MAC over ``MCV || tag || length || data`` where ``length`` is the
  final length of the value (data plus the 8-byte C-MAC); the C-MAC is the first 8 bytes,
  the full 16-byte CMAC becomes the next MCV.

A segment is at most :data:`MAX_SEGMENT` bytes including its tag, length field and MAC.
The receiving side accepts larger segments (up to :data:`MAX_RECEIVED_VALUE` bytes of value)
so packages from servers that cut their segments differently still load.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mps_esim import tlv
from mps_esim.crypto.errors import Scp03tError
from mps_esim.crypto.kdf import SessionKeys

TAG_PROFILE_SEGMENT = 0x86
TAG_ENCRYPTED = 0x87
TAG_MAC_ONLY = 0x88
ENCRYPTED_TAGS = frozenset((TAG_PROFILE_SEGMENT, TAG_ENCRYPTED))
SCP03T_TAGS = frozenset((TAG_PROFILE_SEGMENT, TAG_ENCRYPTED, TAG_MAC_ONLY))

MAC_LENGTH = 8
BLOCK = 16
MAX_SEGMENT = 1020
"""Largest segment a sender makes: tag, length field, data and C-MAC together."""

MAX_RECEIVED_VALUE = 2048
"""Largest segment value (data and C-MAC) a receiver accepts."""

# Tag (1 byte) + length field (82 xx xx) + C-MAC leave this much for (encrypted) data.
_MAX_DATA = MAX_SEGMENT - 1 - 3 - MAC_LENGTH
MAX_PLAIN_MAC_ONLY = _MAX_DATA
"""Most data one MAC-only segment carries."""
MAX_PLAIN_ENCRYPTED = (_MAX_DATA // BLOCK) * BLOCK - 1
"""Most plaintext one encrypted segment carries (at least one padding byte follows)."""


def pad(data: bytes) -> bytes:
    """``data || 80 || 00..`` to the next multiple of 16 (always at least one byte)."""
    n = BLOCK - (len(data) % BLOCK)
    return data + b"\x80" + bytes(n - 1)


def unpad(data: bytes) -> bytes:
    """Inverse of :func:`pad`; a malformed padding is a security error (as a bad MAC)."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise Scp03tError("segment padding is malformed", security=True)
    return stripped[:-1]


def _header(tag: int, length: int) -> bytes:
    """Tag and DER length of a segment (the length counts the C-MAC)."""
    if length < 0x80:
        return bytes((tag, length))
    if length <= 0xFF:
        return bytes((tag, 0x81, length))
    return bytes((tag, 0x82)) + length.to_bytes(2, "big")


class Scp03t:
    """One secure channel: session keys, block counter and MAC chaining value.

    The sending side (SM-DP+) calls :meth:`wrap`, the receiving side (eUICC) :meth:`unwrap`;
    both advance the same state, so the two stay in step segment by segment.
    """

    __slots__ = ("_counter", "_keys", "_mcv")

    def __init__(self, keys: SessionKeys) -> None:
        for name, value in (("initial MCV", keys.initial_mcv), ("S-ENC", keys.s_enc),
                            ("S-MAC", keys.s_mac)):
            if len(value) != BLOCK:
                raise Scp03tError(f"{name} must be 16 bytes, got {len(value)}", security=False)
        self._keys = keys
        self._mcv = keys.initial_mcv
        self._counter = 1

    def __repr__(self) -> str:
        return f"Scp03t(counter={self._counter})"

    @property
    def counter(self) -> int:
        """The block counter the next segment will use."""
        return self._counter

    def _iv(self) -> bytes:
        encryptor = Cipher(algorithms.AES(self._keys.s_enc), modes.ECB()).encryptor()  # noqa: S305
        return encryptor.update(self._counter.to_bytes(BLOCK, "big")) + encryptor.finalize()

    def _cbc(self, data: bytes, *, decrypt: bool) -> bytes:
        cipher = Cipher(algorithms.AES(self._keys.s_enc), modes.CBC(self._iv()))
        ctx = cipher.decryptor() if decrypt else cipher.encryptor()
        return ctx.update(data) + ctx.finalize()

    def _cmac(self, header: bytes, data: bytes) -> bytes:
        mac = cmac.CMAC(algorithms.AES(self._keys.s_mac))
        mac.update(self._mcv + header + data)
        return mac.finalize()

    def wrap(self, tag: int, data: bytes) -> bytes:
        """One protected segment TLV holding ``data`` (which must fit one segment)."""
        if tag not in SCP03T_TAGS:
            raise Scp03tError(f"tag {tag:02X} is not an SCP03t segment tag", security=False)
        limit = MAX_PLAIN_MAC_ONLY if tag == TAG_MAC_ONLY else MAX_PLAIN_ENCRYPTED
        if len(data) > limit:
            raise Scp03tError(f"{len(data)} bytes do not fit one segment (at most {limit})",
                              security=False)
        body = data if tag == TAG_MAC_ONLY else self._cbc(pad(data), decrypt=False)
        header = _header(tag, len(body) + MAC_LENGTH)
        full = self._cmac(header, body)
        self._mcv = full
        self._counter += 1
        return header + body + full[:MAC_LENGTH]

    def wrap_all(self, tag: int, data: bytes) -> list[bytes]:
        """``data`` cut into as many protected segments as it needs (at least one)."""
        limit = MAX_PLAIN_MAC_ONLY if tag == TAG_MAC_ONLY else MAX_PLAIN_ENCRYPTED
        chunks = [data[i:i + limit] for i in range(0, len(data), limit)] or [b""]
        return [self.wrap(tag, chunk) for chunk in chunks]

    def unwrap(self, segment: bytes | tlv.Tlv) -> tuple[int, bytes]:
        """Check and open one protected segment: its tag and its plaintext.

        Raises :class:`Scp03tError`: ``security=True`` for a wrong MAC or padding,
        ``security=False`` for a malformed segment.
        """
        try:
            item = segment if isinstance(segment, tlv.Tlv) else tlv.decode_one(segment)
        except tlv.TlvError as exc:
            raise Scp03tError(f"segment is not one TLV: {exc}", security=False) from exc
        tag, value = item.tag, item.value
        if tag not in SCP03T_TAGS:
            raise Scp03tError(f"tag {tag:02X} is not an SCP03t segment tag", security=False)
        if len(value) > MAX_RECEIVED_VALUE:
            raise Scp03tError(f"segment of {len(value)} bytes is too long", security=False)
        body, mac = value[:-MAC_LENGTH], value[-MAC_LENGTH:]
        if len(value) < MAC_LENGTH or (
                tag != TAG_MAC_ONLY and (not body or len(body) % BLOCK)):
            raise Scp03tError(f"segment {tag:02X} of {len(value)} bytes has no valid layout",
                              security=False)
        header = _header(tag, len(value))
        full = self._cmac(header, body)
        if not hmac.compare_digest(full[:MAC_LENGTH], mac):
            raise Scp03tError(f"C-MAC of segment {tag:02X} (block {self._counter}) is wrong",
                              security=True)
        plain = body if tag == TAG_MAC_ONLY else unpad(self._cbc(body, decrypt=True))
        self._mcv = full
        self._counter += 1
        return tag, plain
