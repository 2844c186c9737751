"""A small BER-TLV codec for the GSMA roles (ES10 over APDUs, ES9+ payloads, profiles).

Tags are kept as integers holding their encoded bytes (``0x5A``, ``0xBF3E``, ``0x7F21``),
which is how SGP.22 writes them. Only definite lengths of one to three length bytes
(``0x00..0x7F``, ``0x81 xx``, ``0x82 xx xx``, ``0x83 xx xx xx``) are accepted, in their
shortest form, as DER requires.

Every length and depth in the input is treated as hostile: truncation, length fields that
run past the data, indefinite or over-long length forms, malformed tags, trailing bytes and
nesting deeper than ``max_depth`` all raise :class:`TlvError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mps_esim.errors import EsimError

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Tlv",
    "TlvError",
    "decode",
    "decode_bits",
    "decode_bool",
    "decode_int",
    "decode_one",
    "decode_tag_list",
    "decode_utf8",
    "encode",
    "encode_bits",
    "encode_bool",
    "encode_int",
    "iter_decode",
    "tag_bytes",
]

MAX_DEPTH = 16
"""Default limit on the nesting of constructed values (SGP.22 data nests far less)."""

MAX_LENGTH = 0xFFFFFF
"""The largest length three length bytes can carry."""

_MAX_TAG_BYTES = 3
_CONSTRUCTED = 0x20
_HIGH_TAG = 0x1F

Buffer = bytes | bytearray | memoryview


class TlvError(EsimError, ValueError):
    """Malformed BER-TLV: truncated, over-long, trailing garbage, or nested too deeply.

    ``offset`` is the position in the outermost input where the problem was found, when known.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at offset {offset})")
        self.offset = offset


def _tag_bytes(tag: int) -> bytes:
    """The encoded form of ``tag``, checked for well-formedness."""
    if tag < 0:
        raise TlvError(f"tag must not be negative, got {tag}")
    raw = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    if len(raw) > _MAX_TAG_BYTES:
        raise TlvError(f"tag {tag:X} is longer than {_MAX_TAG_BYTES} bytes")
    first, rest = raw[0], raw[1:]
    if (first & _HIGH_TAG) != _HIGH_TAG:
        if rest:
            raise TlvError(f"tag {tag:X}: a one-byte tag number cannot be followed by more bytes")
        return raw
    if not rest:
        raise TlvError(f"tag {tag:X}: the high-tag-number form needs subsequent bytes")
    if rest[0] == 0x80:
        raise TlvError(f"tag {tag:X}: tag number is not in its shortest form")
    if any(b & 0x80 == 0 for b in rest[:-1]) or rest[-1] & 0x80:
        raise TlvError(f"tag {tag:X}: continuation bits are inconsistent")
    return raw


def _length_bytes(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length > MAX_LENGTH:
        raise TlvError(f"value of {length} bytes is longer than {MAX_LENGTH}")
    n = (length.bit_length() + 7) // 8
    return bytes([0x80 | n]) + length.to_bytes(n, "big")


def encode(tag: int, value: Buffer) -> bytes:
    """One TLV: ``tag`` (e.g. ``0xBF3E``), the shortest definite length, then ``value``."""
    value = bytes(value)
    return _tag_bytes(tag) + _length_bytes(len(value)) + value


class Tlv:
    """One decoded (or hand-built) TLV.

    ``constructed`` follows the tag's constructed bit unless given explicitly.
    """

    __slots__ = ("constructed", "tag", "value")

    tag: int
    value: bytes
    constructed: bool

    def __init__(self, tag: int, value: Buffer, constructed: bool | None = None) -> None:
        first = _tag_bytes(tag)[0]
        self.tag = tag
        self.value = bytes(value)
        self.constructed = bool(first & _CONSTRUCTED) if constructed is None else constructed

    def __repr__(self) -> str:
        return f"Tlv(0x{self.tag:X}, {self.value.hex()!r}, constructed={self.constructed})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tlv):
            return NotImplemented
        return (self.tag, self.value, self.constructed) == (
            other.tag, other.value, other.constructed)

    def __hash__(self) -> int:
        return hash((self.tag, self.value, self.constructed))

    def encode(self) -> bytes:
        """The TLV's encoding (tag, length, value)."""
        return encode(self.tag, self.value)

    def children(self, *, max_depth: int = MAX_DEPTH) -> list[Tlv]:
        """The TLVs inside a constructed value; :class:`TlvError` for a primitive one."""
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive and has no children")
        return decode(self.value, max_depth=max_depth)

    def find(self, tag: int) -> Tlv | None:
        """The first direct child with ``tag``, or None."""
        for child in self.children():
            if child.tag == tag:
                return child
        return None


def _read_tag(data: memoryview, pos: int) -> tuple[int, int, bool]:
    first = data[pos]
    tag = first
    pos += 1
    if first & _HIGH_TAG == _HIGH_TAG:
        for i in range(1, _MAX_TAG_BYTES):
            if pos >= len(data):
                raise TlvError("truncated tag", offset=pos)
            b = data[pos]
            if i == 1 and b == 0x80:
                raise TlvError("tag number is not in its shortest form", offset=pos)
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
        else:
            raise TlvError(f"tag longer than {_MAX_TAG_BYTES} bytes", offset=pos)
    return tag, pos, bool(first & _CONSTRUCTED)


def _read_length(data: memoryview, pos: int) -> tuple[int, int]:
    end = len(data)
    if pos >= end:
        raise TlvError("truncated: length missing", offset=pos)
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    n = first & 0x7F
    if n == 0:
        raise TlvError("indefinite length is not allowed", offset=pos - 1)
    if n > 3:
        raise TlvError(f"length field of {n} bytes is too long (at most 3)", offset=pos - 1)
    if pos + n > end:
        raise TlvError("truncated length field", offset=pos)
    length = int.from_bytes(data[pos:pos + n], "big")
    if length < 0x80 or length < 1 << (8 * (n - 1)):
        raise TlvError(f"length {length} is not in its shortest form", offset=pos - 1)
    return length, pos + n


def _read_header(data: memoryview, pos: int, base: int) -> tuple[int, bool, int, int]:
    """Tag, constructed flag, value start and value end of the TLV at ``pos``."""
    start = pos
    tag, pos, constructed = _read_tag(data, pos)
    length, pos = _read_length(data, pos)
    if length > len(data) - pos:
        raise TlvError(f"tag {tag:X} claims {length} bytes, only {len(data) - pos} remain",
                       offset=base + start)
    return tag, constructed, pos, pos + length


def _check(data: memoryview, base: int, depth_left: int) -> None:
    """Walk a constructed value without building objects: every inner length must hold."""
    pos = 0
    while pos < len(data):
        _tag, constructed, start, end = _read_header(data, pos, base)
        if constructed:
            if depth_left <= 0:
                raise TlvError("TLV nested too deeply", offset=base + pos)
            _check(data[start:end], base + start, depth_left - 1)
        pos = end


def _read_one(data: memoryview, pos: int, max_depth: int) -> tuple[Tlv, int]:
    tag, constructed, start, end = _read_header(data, pos, 0)
    if constructed:
        if max_depth <= 0:
            raise TlvError("TLV nested too deeply", offset=pos)
        _check(data[start:end], start, max_depth - 1)
    return Tlv(tag, data[start:end], constructed), end


def iter_decode(data: Buffer, *, max_depth: int = MAX_DEPTH) -> Iterator[Tlv]:
    """Yield the TLVs of ``data`` one after another, checking each one fully first.

    ``max_depth`` bounds how many constructed levels may nest (1: no constructed value may
    hold another constructed value).
    """
    view = memoryview(bytes(data))
    pos = 0
    while pos < len(view):
        item, pos = _read_one(view, pos, max_depth)
        yield item


def decode(data: Buffer, *, max_depth: int = MAX_DEPTH) -> list[Tlv]:
    """All TLVs concatenated in ``data``; any malformed or left-over byte raises."""
    return list(iter_decode(data, max_depth=max_depth))


def decode_one(data: Buffer, *, max_depth: int = MAX_DEPTH) -> Tlv:
    """Exactly one TLV filling ``data``; nothing may follow it."""
    view = memoryview(bytes(data))
    if not view:
        raise TlvError("no TLV in empty input", offset=0)
    item, end = _read_one(view, 0, max_depth)
    if end != len(view):
        raise TlvError(f"{len(view) - end} trailing bytes after tag {item.tag:X}", offset=end)
    return item


# --- DER contents of universal types (the value part only; the caller picks the tag) --------

def tag_bytes(tag: int) -> bytes:
    """The encoded form of ``tag`` (as a tag list such as GetEuiccData's ``5C`` carries it)."""
    return _tag_bytes(tag)


def decode_tag_list(data: Buffer) -> list[int]:
    """The tags concatenated in a tag list (``5C``): ``5A 9F70 4F`` -> [0x5A, 0x9F70, 0x4F]."""
    view = memoryview(bytes(data))
    tags: list[int] = []
    pos = 0
    while pos < len(view):
        tag, pos, _constructed = _read_tag(view, pos)
        tags.append(tag)
    return tags


def encode_int(value: int) -> bytes:
    """An INTEGER's content: two's complement in the fewest bytes (DER)."""
    length = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return value.to_bytes(length, "big", signed=True)


def decode_int(data: Buffer, *, min_value: int | None = None,
               max_value: int | None = None) -> int:
    """Inverse of :func:`encode_int`; refuses empty, non-minimal or out-of-range content."""
    raw = bytes(data)
    if not raw:
        raise TlvError("INTEGER with no content")
    if len(raw) > 1 and ((raw[0] == 0x00 and raw[1] < 0x80) or
                         (raw[0] == 0xFF and raw[1] >= 0x80)):
        raise TlvError(f"INTEGER {raw.hex()} is not in its shortest form")
    if len(raw) > 8:
        raise TlvError(f"INTEGER of {len(raw)} bytes is too large")
    value = int.from_bytes(raw, "big", signed=True)
    if (min_value is not None and value < min_value) or (
            max_value is not None and value > max_value):
        raise TlvError(f"INTEGER {value} is out of range")
    return value


def encode_bool(value: bool) -> bytes:
    """A BOOLEAN's content: ``FF`` or ``00`` (DER)."""
    return b"\xff" if value else b"\x00"


def decode_bool(data: Buffer) -> bool:
    """Inverse of :func:`encode_bool`; DER allows only ``00`` and ``FF``."""
    raw = bytes(data)
    if raw not in (b"\x00", b"\xff"):
        raise TlvError(f"BOOLEAN content {raw.hex() or 'empty'} is not 00 or FF")
    return raw == b"\xff"


def encode_bits(bits: Iterable[int]) -> bytes:
    """A named-bit BIT STRING's content: the unused-bit count, then the bits with bit 0 as the
    first (most significant) bit; trailing zero bits are dropped as DER requires."""
    chosen = sorted(set(bits))
    if not chosen:
        return b"\x00"
    if chosen[0] < 0:
        raise TlvError(f"bit {chosen[0]} is negative")
    size = chosen[-1] + 1
    raw = bytearray((size + 7) // 8)
    for bit in chosen:
        raw[bit // 8] |= 0x80 >> (bit % 8)
    return bytes([len(raw) * 8 - size]) + bytes(raw)


def decode_bits(data: Buffer) -> frozenset[int]:
    """The numbers of the bits set in a BIT STRING's content.

    The unused bits must be zero (DER); a trailing zero bit is tolerated because some
    encoders keep the declared size of a named-bit list.
    """
    raw = bytes(data)
    if not raw:
        raise TlvError("BIT STRING with no content")
    unused = raw[0]
    if unused > 7 or (unused and len(raw) == 1):
        raise TlvError(f"BIT STRING with {unused} unused bits")
    if len(raw) > 1 and raw[-1] & ((1 << unused) - 1):
        raise TlvError("BIT STRING has its unused bits set")
    return frozenset(i * 8 + j for i, b in enumerate(raw[1:]) for j in range(8)
                     if b & (0x80 >> j))


def decode_utf8(data: Buffer, *, max_chars: int | None = None) -> str:
    """A UTF8String's content, with an optional size limit in characters."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TlvError(f"not UTF-8: {exc}") from None
    if max_chars is not None and len(text) > max_chars:
        raise TlvError(f"text of {len(text)} characters is longer than {max_chars}")
    return text
