"""CBOR encoding with the limits every receiver applies to payloads from outside."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import cbor2

from mps_wire.errors import DecodeError, ErrorCode, WireError

MAX_PAYLOAD = 16 * 1024
"""Largest payload any party accepts, in bytes. A DeviceInfo is a few hundred bytes."""

MAX_DEPTH = 8
"""Deepest nesting of arrays/maps accepted; the contract's messages nest three levels."""

# The contract uses no CBOR tags. cbor2 would otherwise build regexes, MIME messages,
# decimals and fractions with hostile exponents, and shared or cyclic references from a
# payload; refusing every tag it knows keeps decoding cheap and inert.
_TAG_MEANINGS: dict[int, str] = {
    0: "date/time text", 1: "epoch date/time", 2: "positive bignum", 3: "negative bignum",
    4: "decimal fraction", 5: "bigfloat", 25: "string reference", 28: "shareable value",
    29: "shared reference", 30: "rational number", 35: "regular expression",
    36: "MIME message", 37: "UUID", 52: "IPv4 address or network",
    54: "IPv6 address or network", 100: "epoch date", 256: "string reference namespace",
    258: "set", 260: "network address", 261: "network prefix", 1004: "date text",
    43000: "complex number", 55799: "self-described CBOR",
}


class RefusedTagError(DecodeError):
    """A payload holds a CBOR tag the contract does not use."""

    def __init__(self, tag: int) -> None:
        super().__init__(f"CBOR tag {tag} ({_TAG_MEANINGS.get(tag, 'unknown')}) is refused: "
                         "the contract uses no tags")
        self.tag = tag


def _refuser(tag: int) -> Callable[..., NoReturn]:
    # cbor2 calls a semantic decoder with the tagged value (a shareable's initializer with
    # a flag only); whatever it passes, the tag is refused.
    def refuse(*_: object) -> NoReturn:
        raise RefusedTagError(tag)
    return refuse


REFUSED_TAGS: Mapping[int, Callable[..., NoReturn]] = {
    tag: _refuser(tag) for tag in _TAG_MEANINGS}
"""cbor2 semantic decoders for every tag it would decode itself: each raises
:class:`RefusedTagError` naming its tag."""


def encode(message: dict[str, Any]) -> bytes:
    """Encode a message map as CBOR (deterministic key order for signatures and caches)."""
    return cbor2.dumps(message, canonical=True)


def decode_item(data: bytes, what: str, *, max_size: int = MAX_PAYLOAD,
                max_depth: int = MAX_DEPTH,
                tag_hook: Callable[..., Any] | None = None) -> Any:
    """Decode exactly one CBOR item of ``data`` (``what`` names it in errors).

    The size is checked before decoding and cbor2's container depth limit is set to the
    contract's, so hostile input bounds neither memory nor recursion; the tags cbor2 knows
    are refused (:data:`REFUSED_TAGS`), others go to ``tag_hook``. A WireError raised by
    a refusal or the hook comes out as it is; anything else is a DecodeError.
    """
    if len(data) > max_size:
        raise DecodeError(f"{what} of {len(data)} bytes exceeds the limit of {max_size}",
                          code=ErrorCode.TOO_LARGE)
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream, max_depth=max_depth, tag_hook=tag_hook,
                                  semantic_decoders=REFUSED_TAGS,
                                  allow_duplicate_keys=False).decode()
    except WireError:
        raise
    except cbor2.CBORDecodeError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, WireError):
            raise cause from None
        text = str(exc)
        if "depth" in text:
            raise DecodeError(f"{what} nests too deeply: {text}",
                              code=ErrorCode.TOO_LARGE) from exc
        raise DecodeError(f"{what} is not valid CBOR: {text}") from exc
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise DecodeError(f"{what} is not valid CBOR: {exc}") from exc
    if stream.tell() != len(data):
        raise DecodeError(f"{what} has {len(data) - stream.tell()} bytes after the CBOR item")
    return value


def decode(payload: bytes, *, max_size: int = MAX_PAYLOAD, max_depth: int = MAX_DEPTH
           ) -> dict[str, Any]:
    """Decode one CBOR map with text keys; raise DecodeError for anything else."""
    if len(payload) <= max_size and not payload:
        raise DecodeError("empty payload")
    value = decode_item(payload, "payload", max_size=max_size, max_depth=max_depth)
    if not isinstance(value, dict):
        raise DecodeError(f"payload must be a CBOR map, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise DecodeError(f"map keys must be text, got {type(key).__name__}")
    return value
