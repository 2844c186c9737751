"""Small codecs the SGP.22 types share: named bits, versions, ICCID, PLMN, and reading
the components of a constructed value by tag."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mps_esim import simfiles, tlv

# --- small codecs ------------------------------------------------------------------------------

def names_to_bits(names: Iterable[str], table: Sequence[str]) -> list[int]:
    """Bit numbers of ``names`` in a named-bit ``table``; ``ValueError`` for an unknown name."""
    out = []
    for name in names:
        if name not in table:
            raise ValueError(f"unknown bit name {name!r}; known: {', '.join(table)}")
        out.append(table.index(name))
    return out


def bits_to_names(bits: Iterable[int], table: Sequence[str]) -> frozenset[str]:
    """Names of the set ``bits``; bits beyond the table are named ``bitN``."""
    return frozenset(table[b] if b < len(table) else f"bit{b}" for b in bits)


def encode_named_bits(names: Iterable[str], table: Sequence[str]) -> bytes:
    return tlv.encode_bits(names_to_bits(names, table))


def decode_named_bits(data: bytes, table: Sequence[str]) -> frozenset[str]:
    return bits_to_names(tlv.decode_bits(data), table)


def encode_version(version: str) -> bytes:
    """VersionType: ``"2.2.2"`` -> three bytes (major, minor, revision)."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"a version is three numbers 0-255, got {version!r}")
    return bytes(int(p) for p in parts)


def decode_version(data: bytes) -> str:
    if len(data) != 3:
        raise tlv.TlvError(f"a VersionType is 3 bytes, got {len(data)}")
    return ".".join(str(b) for b in data)


def encode_iccid(iccid: str) -> bytes:
    """Iccid: 10 bytes, swapped-nibble BCD with F filler, as in EF.ICCID."""
    return simfiles.encode_iccid(iccid)


def decode_iccid(data: bytes) -> str:
    try:
        return simfiles.decode_iccid(data)
    except ValueError as exc:
        raise tlv.TlvError(f"bad ICCID: {exc}") from None


def plmn_bytes(mcc: str, mnc: str) -> bytes:
    """MCC + MNC as the three PLMN bytes of TS 24.008 (``mccMnc`` of OperatorID)."""
    if len(mcc) != 3 or len(mnc) not in (2, 3) or not (mcc + mnc).isdigit():
        raise ValueError(f"bad MCC/MNC {mcc}/{mnc}")
    m3 = mnc[2] if len(mnc) == 3 else "F"
    return bytes.fromhex(mcc[1] + mcc[0] + m3 + mcc[2] + mnc[1] + mnc[0])


def plmn_text(data: bytes) -> str:
    """Inverse of :func:`plmn_bytes` as ``MCC-MNC`` text (wildcard nibbles ``E`` kept)."""
    if len(data) != 3:
        raise tlv.TlvError(f"mccMnc is 3 bytes, got {len(data)}")
    h = data.hex().upper()
    mcc = h[1] + h[0] + h[3]
    mnc = h[5] + h[4] + ("" if h[2] == "F" else h[2])
    return f"{mcc}-{mnc}"


def fields(item: tlv.Tlv, order: Sequence[int], *, required: Iterable[int] = ()
           ) -> dict[int, tlv.Tlv]:
    """The components of a constructed ``item`` by tag.

    Known tags must appear at most once and in ``order`` (DER keeps the ASN.1 order);
    unknown tags are skipped as extensions. A ``required`` tag that is missing raises.
    """
    if not item.constructed:
        raise tlv.TlvError(f"{item.tag:X} must be constructed")
    found: dict[int, tlv.Tlv] = {}
    last = -1
    for child in item.children():
        if child.tag not in order:
            continue
        index = order.index(child.tag)
        if child.tag in found:
            raise tlv.TlvError(f"{child.tag:X} appears twice in {item.tag:X}")
        if index < last:
            raise tlv.TlvError(f"{child.tag:X} is out of order in {item.tag:X}")
        last = index
        found[child.tag] = child
    for tag in required:
        if tag not in found:
            raise tlv.TlvError(f"{item.tag:X} lacks its mandatory {tag:X}")
    return found


def single(data: bytes, tag: int) -> tlv.Tlv:
    """``data`` as exactly one TLV with ``tag``."""
    item = tlv.decode_one(data)
    if item.tag != tag:
        raise tlv.TlvError(f"expected {tag:X}, got {item.tag:X}")
    return item
