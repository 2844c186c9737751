"""DER primitives (INTEGER, BOOLEAN, BIT STRING, OBJECT IDENTIFIER, UTF8String) and a
reader for the members of a SEQUENCE, on top of :mod:`lpa_emulator.tlv`."""

from __future__ import annotations

from collections.abc import Iterable

from lpa_emulator import tlv

Buffer = bytes | bytearray | memoryview


class Asn1Error(ValueError):
    """A DER value does not have the structure its type requires.

    ``where`` names the type or member being decoded (``"EuiccSigned1.serverChallenge"``).
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


def parse(data: Buffer, where: str) -> tlv.Tlv:
    """Exactly one TLV; TLV errors become :class:`Asn1Error` naming ``where``."""
    try:
        return tlv.decode_one(data)
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


def expect(data: Buffer | tlv.Tlv, tag: int, where: str) -> tlv.Tlv:
    """One TLV with ``tag`` (decoded from ``data`` unless it already is a :class:`Tlv`)."""
    item = data if isinstance(data, tlv.Tlv) else parse(data, where)
    if item.tag != tag:
        raise Asn1Error(f"expected tag {tag:X}, got {item.tag:X}", where=where)
    return item


def children(item: tlv.Tlv, where: str) -> list[tlv.Tlv]:
    """The members of a constructed value."""
    try:
        return item.children()
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


def seq(tag: int, *members: bytes | None) -> bytes:
    """A constructed value of the given members (None members are left out)."""
    return tlv.encode(tag, b"".join(m for m in members if m is not None))


def opt(tag: int, value: Buffer | None) -> bytes | None:
    """A primitive member, or None when ``value`` is None."""
    return None if value is None else tlv.encode(tag, value)


# --- INTEGER -----------------------------------------------------------------------------

def int_bytes(value: int) -> bytes:
    """Content octets of an INTEGER: shortest two's complement."""
    length = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return value.to_bytes(length, "big", signed=True)


def int_value(content: bytes, where: str, *, low: int | None = 0,
              high: int | None = None) -> int:
    """An INTEGER's value, checked for DER minimality and the range ``low..high``."""
    if not content:
        raise Asn1Error("INTEGER has no content", where=where)
    if len(content) > 1 and (
            (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)):
        raise Asn1Error("INTEGER is not in its shortest form", where=where)
    if len(content) > 8:
        raise Asn1Error("INTEGER is too large", where=where)
    value = int.from_bytes(content, "big", signed=True)
    if (low is not None and value < low) or (high is not None and value > high):
        raise Asn1Error(f"INTEGER {value} is outside {low}..{high}", where=where)
    return value


# --- BOOLEAN -----------------------------------------------------------------------------

def bool_bytes(value: bool) -> bytes:
    return b"\xff" if value else b"\x00"


def bool_value(content: bytes, where: str) -> bool:
    if content == b"\xff":
        return True
    if content == b"\x00":
        return False
    raise Asn1Error("BOOLEAN must be one byte, 00 or FF", where=where)


# --- BIT STRING (named bits) -------------------------------------------------------------

def bits_bytes(bits: Iterable[int]) -> bytes:
    """Content octets of a named-bit BIT STRING with the given bits set (bit 0 first)."""
    numbers = sorted(set(bits))
    if not numbers:
        return b"\x00"
    if numbers[0] < 0:
        raise Asn1Error("bit numbers are not negative")
    nbytes = numbers[-1] // 8 + 1
    out = bytearray(nbytes)
    for n in numbers:
        out[n // 8] |= 0x80 >> (n % 8)
    # DER drops trailing zero bits of a named-bit list: unused bits after the last set one.
    unused = 7 - numbers[-1] % 8
    return bytes((unused,)) + bytes(out)


def bits_value(content: bytes, where: str) -> frozenset[int]:
    """The numbers of the set bits of a BIT STRING."""
    if not content or content[0] > 7 or (len(content) == 1 and content[0]):
        raise Asn1Error("BIT STRING has a malformed unused-bits count", where=where)
    unused, data = content[0], content[1:]
    if data and data[-1] & ((1 << unused) - 1):
        raise Asn1Error("BIT STRING has bits set in its unused part", where=where)
    return frozenset(i * 8 + j for i, byte in enumerate(data) for j in range(8)
                     if byte & (0x80 >> j))


# --- OBJECT IDENTIFIER -------------------------------------------------------------------

def oid_bytes(dotted: str) -> bytes:
    """Content octets of an OBJECT IDENTIFIER given in dotted form."""
    try:
        arcs = [int(a) for a in dotted.split(".")]
    except ValueError as exc:
        raise Asn1Error(f"OID {dotted!r} is not dotted decimal") from exc
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise Asn1Error(f"OID {dotted!r} is not valid")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def oid_value(content: bytes, where: str) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets."""
    if not content or content[-1] & 0x80 or len(content) > 64:
        raise Asn1Error("OID is empty, truncated or too long", where=where)
    arcs: list[int] = []
    value = 0
    start = True
    for byte in content:
        if start and byte == 0x80:
            raise Asn1Error("OID arc is not in its shortest form", where=where)
        value = (value << 7) | (byte & 0x7F)
        start = not byte & 0x80
        if start:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


# --- UTF8String --------------------------------------------------------------------------

def text_value(content: bytes, where: str, *, max_length: int | None = None) -> str:
    """A UTF8String's text, with an optional limit on its encoded length."""
    if max_length is not None and len(content) > max_length:
        raise Asn1Error(f"text of {len(content)} bytes exceeds {max_length}", where=where)
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Asn1Error("text is not valid UTF-8", where=where) from exc


def sized(content: bytes, where: str, *, size: int | None = None, low: int = 0,
          high: int | None = None) -> bytes:
    """An OCTET STRING's content with its size checked (exact ``size`` or ``low..high``)."""
    n = len(content)
    if size is not None and n != size:
        raise Asn1Error(f"must be {size} bytes, got {n}", where=where)
    if n < low or (high is not None and n > high):
        raise Asn1Error(f"must be {low} to {high} bytes, got {n}", where=where)
    return content


class Members:
    """Reads the members of a constructed value in order, as a SEQUENCE lists them.

    Members not asked for at the end are ignored, so later extensions of a type decode.
    """

    def __init__(self, item: tlv.Tlv, where: str) -> None:
        self._items = children(item, where)
        self._pos = 0
        self.where = where

    def _peek(self) -> tlv.Tlv | None:
        return self._items[self._pos] if self._pos < len(self._items) else None

    def optional(self, tag: int) -> tlv.Tlv | None:
        """The next member if it has ``tag``, else None (and nothing is consumed)."""
        item = self._peek()
        if item is None or item.tag != tag:
            return None
        self._pos += 1
        return item

    def required(self, tag: int, name: str) -> tlv.Tlv:
        """The next member, which must have ``tag``."""
        item = self.optional(tag)
        if item is None:
            found = self._peek()
            got = f"tag {found.tag:X}" if found is not None else "the end"
            raise Asn1Error(f"expected {name} (tag {tag:X}), got {got}",
                            where=self.where)
        return item

    def any(self, name: str) -> tlv.Tlv:
        """The next member, whatever its tag."""
        item = self._peek()
        if item is None:
            raise Asn1Error(f"expected {name}, got the end", where=self.where)
        self._pos += 1
        return item

    def skip_to(self, tag: int) -> tlv.Tlv | None:
        """The first remaining member with ``tag``, skipping those before it."""
        while (item := self._peek()) is not None:
            self._pos += 1
            if item.tag == tag:
                return item
        return None

    def rest(self) -> list[tlv.Tlv]:
        """Every member not read yet."""
        items, self._pos = self._items[self._pos:], len(self._items)
        return items
