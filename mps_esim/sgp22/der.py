"""Decoding helpers for the SGP.22 structures on the shared codec :mod:`mps_esim.tlv`:
errors that say where in a structure a value was bad, OBJECT IDENTIFIER contents, and a
reader for the members of a SEQUENCE in order (:class:`Members`), which also handles
SEQUENCEs holding several members of one tag (certificates)."""

from __future__ import annotations

from mps_esim import tlv

Buffer = bytes | bytearray | memoryview


class Asn1Error(tlv.TlvError):
    """A DER value does not have the structure its type requires.

    A :class:`tlv.TlvError`, as every error of the shared codec is; ``where`` names the
    type or member being decoded (``"EuiccSigned1.serverChallenge"``).
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


# The universal types' contents come from the shared codec (:mod:`mps_esim.tlv`); the
# decoders here only add where in a structure a bad value sat.
int_bytes = tlv.encode_int
bool_bytes = tlv.encode_bool
bits_bytes = tlv.encode_bits


def int_value(content: bytes, where: str, *, low: int | None = 0,
              high: int | None = None) -> int:
    """An INTEGER's value in ``low..high`` (DER minimal)."""
    try:
        return tlv.decode_int(content, min_value=low, max_value=high)
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


def bool_value(content: bytes, where: str) -> bool:
    try:
        return tlv.decode_bool(content)
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


def bits_value(content: bytes, where: str) -> frozenset[int]:
    """The numbers of the set bits of a BIT STRING."""
    try:
        return tlv.decode_bits(content)
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


def text_value(content: bytes, where: str, *, max_length: int | None = None) -> str:
    """A UTF8String's text of at most ``max_length`` characters."""
    try:
        return tlv.decode_utf8(content, max_chars=max_length)
    except tlv.TlvError as exc:
        raise Asn1Error(str(exc), where=where) from exc


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
