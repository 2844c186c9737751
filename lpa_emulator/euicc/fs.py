"""The UICC file system the card shows for its enabled profile (TS 102 221, TS 31.102).

The tree is derived from the profile on demand rather than stored, so it always follows
the enabled profile::

    MF 3F00
      EF.ICCID 2FE2   transparent, 10 bytes
      EF.DIR   2F00   linear fixed, one record per application
      ADF.USIM (7FFF) selected by AID
        EF.IMSI   6F07   transparent
        EF.MSISDN 6F40   linear fixed
        EF.SPN    6F46   transparent
        EF.AD     6FAD   transparent

With no enabled profile only an empty MF remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lpa_emulator.euicc.state import ProfileRecord
from mps_esim import simfiles, tlv

FID_ADF = 0x7FFF
"""The file id that stands for the current application's ADF."""
FID_EF_SPN = 0x6F46
FID_EF_AD = 0x6FAD

MSISDN_RECORD_LENGTH = 14
"""EF.MSISDN record without alpha identifier: length, TON/NPI, 10 BCD bytes, CCP, EXT."""
DIR_RECORD_LENGTH = 32


@dataclass(frozen=True)
class ElementaryFile:
    """An EF: transparent when ``record_length`` is 0, else linear fixed."""

    fid: int
    content: bytes
    sfi: int | None = None
    record_length: int = 0

    @property
    def is_transparent(self) -> bool:
        return self.record_length == 0

    @property
    def records(self) -> list[bytes]:
        n = self.record_length
        return [self.content[i:i + n] for i in range(0, len(self.content), n)]

    def fcp(self) -> bytes:
        """The FCP template (tag 62) a SELECT returns."""
        if self.is_transparent:
            descriptor = bytes([0x41, 0x21])
        else:
            descriptor = bytes([0x42, 0x21]) + self.record_length.to_bytes(2, "big") + bytes(
                [len(self.records)])
        parts = [
            tlv.encode(0x82, descriptor),
            tlv.encode(0x83, self.fid.to_bytes(2, "big")),
            tlv.encode(0x8A, b"\x05"),  # life cycle: operational, activated
            tlv.encode(0x80, len(self.content).to_bytes(2, "big")),
        ]
        if self.sfi is not None:
            parts.append(tlv.encode(0x88, bytes([self.sfi << 3])))
        return tlv.encode(0x62, b"".join(parts))


@dataclass(frozen=True)
class DedicatedFile:
    """The MF or an ADF with the EFs directly below it."""

    fid: int
    files: dict[int, ElementaryFile] = field(default_factory=dict)
    aid: bytes | None = None

    def by_sfi(self, sfi: int) -> ElementaryFile | None:
        for ef in self.files.values():
            if ef.sfi == sfi:
                return ef
        return None

    def fcp(self) -> bytes:
        parts = [tlv.encode(0x82, b"\x78\x21"), tlv.encode(0x83, self.fid.to_bytes(2, "big"))]
        if self.aid is not None:
            parts.append(tlv.encode(0x84, self.aid))
        parts.append(tlv.encode(0x8A, b"\x05"))
        return tlv.encode(0x62, b"".join(parts))


@dataclass(frozen=True)
class FileSystem:
    """The MF and, with an enabled profile, its USIM ADF."""

    mf: DedicatedFile
    usim: DedicatedFile | None

    def df(self, fid: int) -> DedicatedFile | None:
        if fid == simfiles.FID_MF:
            return self.mf
        if fid == FID_ADF:
            return self.usim
        return None


def encode_msisdn_record(msisdn: str | None) -> bytes:
    """An EF.MSISDN record (TS 31.102 4.2.26) with an empty alpha identifier.

    An absent number gives an all-FF (unused) record.
    """
    if msisdn is None:
        return b"\xff" * MSISDN_RECORD_LENGTH
    digits = msisdn.removeprefix("+")
    ton_npi = 0x91 if msisdn.startswith("+") else 0x81  # international / unknown, ISDN plan
    bcd = simfiles.swap_nibbles_encode(digits, (len(digits) + 1) // 2)
    number = bcd.ljust(10, b"\xff")
    return bytes([1 + len(bcd), ton_npi]) + number + b"\xff\xff"


def decode_msisdn_record(record: bytes) -> str | None:
    """Inverse of :func:`encode_msisdn_record`, for any alpha identifier length."""
    if len(record) < MSISDN_RECORD_LENGTH:
        raise ValueError("an EF.MSISDN record holds at least 14 bytes")
    body = record[len(record) - MSISDN_RECORD_LENGTH:]
    length = body[0]
    if length == 0xFF:
        return None
    if not 2 <= length <= 11:
        raise ValueError(f"bad BCD length {length} in EF.MSISDN")
    digits = simfiles.swap_nibbles_decode(body[2:1 + length])
    return ("+" if body[1] & 0x70 == 0x10 else "") + digits


def encode_spn(spn: str) -> bytes:
    """EF.SPN: display condition, then the name in the GSM default alphabet padded to 16."""
    # The printable ASCII letters, digits and common punctuation share their code points
    # with the GSM 7-bit default alphabet; anything else becomes "?".
    safe = "".join(c if c.isascii() and (c.isalnum() or c in " .-+/&()") else "?" for c in spn)
    return b"\x00" + safe[:16].encode("ascii").ljust(16, b"\xff")


def _dir_record(aid: bytes, label: str) -> bytes:
    entry = tlv.encode(0x4F, aid) + tlv.encode(0x50, label.encode("ascii"))
    return tlv.encode(0x61, entry).ljust(DIR_RECORD_LENGTH, b"\xff")


def build(profile: ProfileRecord | None) -> FileSystem:
    """The file tree the card shows with ``profile`` enabled (or none)."""
    if profile is None:
        return FileSystem(mf=DedicatedFile(simfiles.FID_MF), usim=None)
    mf_files = [
        ElementaryFile(simfiles.FID_EF_ICCID, simfiles.encode_iccid(profile.iccid), sfi=0x02),
        ElementaryFile(simfiles.FID_EF_DIR, _dir_record(profile.usim_aid, "USIM"), sfi=0x1E,
                       record_length=DIR_RECORD_LENGTH),
    ]
    usim_files = [
        ElementaryFile(simfiles.FID_EF_IMSI, simfiles.encode_imsi(profile.imsi), sfi=0x07),
        ElementaryFile(simfiles.FID_EF_MSISDN, encode_msisdn_record(profile.msisdn),
                       record_length=MSISDN_RECORD_LENGTH),
        ElementaryFile(FID_EF_SPN, encode_spn(profile.spn)),
        ElementaryFile(FID_EF_AD, bytes([0, 0, 0, profile.mnc_length]), sfi=0x03),
    ]
    return FileSystem(
        mf=DedicatedFile(simfiles.FID_MF, {ef.fid: ef for ef in mf_files}),
        usim=DedicatedFile(FID_ADF, {ef.fid: ef for ef in usim_files}, aid=profile.usim_aid),
    )
