"""CBOR encoding with the limits every receiver applies to payloads from outside."""

from __future__ import annotations

import io
from typing import Any

import cbor2

from mps_wire.errors import DecodeError, ErrorCode

MAX_PAYLOAD = 16 * 1024
"""Largest payload any party accepts, in bytes. A DeviceInfo is a few hundred bytes."""

MAX_DEPTH = 8
"""Deepest nesting of arrays/maps accepted; the contract's messages nest three levels."""

# The contract uses no CBOR tags. cbor2 would otherwise build regexes (35), MIME messages
# (36), decimals and fractions with hostile exponents (4, 5, 30) and shared or cyclic
# references (28, 29, 25, 256) from a payload; refusing them keeps decoding cheap and inert.
_REFUSED_TAGS: dict[int, Any] = dict.fromkeys(
    (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 100, 256, 258, 260, 261, 1004)
)


def encode(message: dict[str, Any]) -> bytes:
    """Encode a message map as CBOR (deterministic key order for signatures and caches)."""
    return cbor2.dumps(message, canonical=True)


def decode(payload: bytes, *, max_size: int = MAX_PAYLOAD, max_depth: int = MAX_DEPTH
           ) -> dict[str, Any]:
    """Decode one CBOR map with text keys; raise DecodeError for anything else.

    The size is checked before decoding and cbor2's container depth limit is set to the
    contract's, so hostile input bounds neither memory nor recursion.
    """
    if len(payload) > max_size:
        raise DecodeError(
            f"payload of {len(payload)} bytes exceeds the limit of {max_size}",
            code=ErrorCode.TOO_LARGE,
        )
    if not payload:
        raise DecodeError("empty payload")
    try:
        stream = io.BytesIO(payload)
        value = cbor2.CBORDecoder(stream, max_depth=max_depth, allow_duplicate_keys=False,
                                  semantic_decoders=_REFUSED_TAGS).decode()
    except cbor2.CBORDecodeError as exc:
        text = str(exc)
        if "depth" in text:
            raise DecodeError(f"payload nests too deeply: {text}",
                              code=ErrorCode.TOO_LARGE) from exc
        raise DecodeError(f"payload is not valid CBOR: {text}") from exc
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise DecodeError(f"payload is not valid CBOR: {exc}") from exc
    if stream.tell() != len(payload):
        raise DecodeError(f"payload has {len(payload) - stream.tell()} bytes after the CBOR item")
    if not isinstance(value, dict):
        raise DecodeError(f"payload must be a CBOR map, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise DecodeError(f"map keys must be text, got {type(key).__name__}")
    return value
