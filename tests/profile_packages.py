"""A second encoder and decoder of TCA eUICC Profile Packages, for the tests.

It compiles ``tests/data/profiles/pe_subset.asn`` (the PEDefinitions types used, written
from the TCA eUICC Profile Package specification v2.3) with asn1tools, so packages are read
and written by a path that shares no code with :mod:`mps_esim.sgp22.saip`.

:func:`ts48_package` makes packages shaped like the GSMA TS.48 generic test profiles:
header, MF, PIN and PUK codes, USIM, optional USIM files, ISIM, Milenage parameters and
the end element. The header's ``iccid`` is coded the way the TS.48 profiles code it,
"non-swapped ITU E.118" (digits in plain order), while EF.ICCID holds the nibble-swapped
coding of ETSI TS 102 221 13.2. The shipped files in ``tests/data/profiles/`` are made
by ``python -m tests.profile_packages``; a test checks they still come out the same.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asn1tools

DATA = Path(__file__).parent / "data" / "profiles"
SCHEMA = DATA / "pe_subset.asn"

TEMPLATE_MF = "2.23.143.1.2.1"
TEMPLATE_USIM = "2.23.143.1.2.4"
TEMPLATE_OPT_USIM = "2.23.143.1.2.5"
TEMPLATE_ISIM = "2.23.143.1.2.8"
USIM_AID = bytes.fromhex("A0000000871002FF33FF018900000100")
ISIM_AID = bytes.fromhex("A0000000871004FF49FF0589")


@functools.cache
def codec() -> Any:
    """The compiled ASN.1 subset, DER."""
    return asn1tools.compile_files(str(SCHEMA), "der")


def swapped_bcd(digits: str, length: int) -> bytes:
    """ETSI TS 102 221 coding (EF.ICCID): each byte holds two digits, low nibble first."""
    padded = digits.ljust(2 * length, "F")
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, 2 * length, 2)))


def plain_bcd(digits: str, length: int) -> bytes:
    """ITU-T E.118 "non-swapped" coding (the ProfileHeader's iccid): digits in order."""
    return bytes.fromhex(digits.ljust(2 * length, "F"))


def decode(package: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The profile elements of a package, as (element name, value) in order."""
    elements: list[tuple[str, dict[str, Any]]] = []
    offset = 0
    while offset < len(package):
        element, length = codec().decode_with_length("ProfileElement", package[offset:])
        elements.append(element)
        offset += length
    return elements


def element(elements: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    """The first element called ``name``."""
    return next(value for kind, value in elements if kind == name)


def file_content(file: list[tuple[str, Any]]) -> bytes:
    """The ``fillFileContent`` of a ``File``, joined."""
    return b"".join(value for kind, value in file if kind == "fillFileContent")


@dataclass(frozen=True)
class Ts48:
    """What one TS.48-shaped test profile carries."""

    iccid: str
    imsi: str
    ki: bytes
    opc: bytes
    msisdn: str | None = None
    header_coding: str = "plain"  # "plain" (E.118, as the spec says) or "swapped"


def _header(p: Ts48) -> dict[str, Any]:
    coder = plain_bcd if p.header_coding == "plain" else swapped_bcd
    return {"major-version": 2, "minor-version": 3,
            "profileType": "GSMA Generic eUICC Test Profile", "iccid": coder(p.iccid, 10),
            "eUICC-Mandatory-services": {"usim": None, "isim": None, "milenage": None},
            "eUICC-Mandatory-GFSTEList": [TEMPLATE_MF, TEMPLATE_USIM, TEMPLATE_OPT_USIM,
                                          TEMPLATE_ISIM]}


def _dir_record(aid: bytes, label: bytes) -> bytes:
    body = bytes((0x4F, len(aid))) + aid + bytes((0x50, len(label))) + label
    return bytes((0x61, len(body))) + body + b"\xff" * 4


def _imsi(imsi: str) -> bytes:
    digits = ("9" if len(imsi) % 2 else "1") + imsi
    return bytes(((len(digits) + 1) // 2,)) + swapped_bcd(digits, 8)


def _msisdn(number: str) -> bytes:
    digits = number.lstrip("+")
    return (bytes(((len(digits) + 1) // 2 + 1, 0x91 if number.startswith("+") else 0x81))
            + swapped_bcd(digits, 10) + b"\xff\xff")


def _nai(tag: int, text: str) -> bytes:
    raw = text.encode()
    return bytes((tag, len(raw))) + raw


def _isim(p: Ts48, ident: int) -> dict[str, Any]:
    mcc, mnc = p.imsi[:3], p.imsi[3:5]
    realm = f"ims.mnc0{mnc}.mcc{mcc}.3gppnetwork.org"
    return {"isim-header": {"mandated": None, "identification": ident},
            "templateID": TEMPLATE_ISIM,
            "adf-isim": [("createFCP", {"fileID": bytes.fromhex("7FF2"), "dfName": ISIM_AID})],
            "ef-impi": [("fillFileContent", _nai(0x80, f"{p.imsi}@{realm}"))],
            "ef-impu": [("fillFileContent", _nai(0x80, f"sip:{p.imsi}@{realm}"))],
            "ef-domain": [("fillFileContent", _nai(0x80, realm))],
            "ef-ist": [("fillFileContent", bytes.fromhex("190200"))],
            "ef-ad": [("fillFileContent", bytes.fromhex("00000002"))],
            "ef-arr": []}


def _usim(p: Ts48) -> dict[str, Any]:
    return {"usim-header": {"mandated": None, "identification": 4},
            "templateID": TEMPLATE_USIM,
            "adf-usim": [("createFCP", {"fileID": bytes.fromhex("7FF1"), "dfName": USIM_AID})],
            "ef-imsi": [("fillFileContent", _imsi(p.imsi))],
            "ef-arr": [],
            "ef-ust": [("fillFileContent", bytes.fromhex("BEFF9F9DE73E0408400370330000002E00"))],
            "ef-spn": [("fillFileContent", b"\x01GSMA TS.48" + b"\xff" * 6)],
            "ef-est": [],
            "ef-acc": [("fillFileContent", (1 << int(p.imsi[-1])).to_bytes(2, "big"))],
            "ef-ad": [("fillFileContent", bytes.fromhex("00000002"))]}


def ts48_elements(p: Ts48) -> list[tuple[str, dict[str, Any]]]:
    """The profile elements of a TS.48-shaped test profile."""
    elements: list[tuple[str, dict[str, Any]]] = [
        ("header", _header(p)),
        ("mf", {"mf-header": {"mandated": None, "identification": 1},
                "templateID": TEMPLATE_MF, "mf": [],
                "ef-iccid": [("fillFileContent", swapped_bcd(p.iccid, 10))],
                "ef-dir": [("fillFileContent", _dir_record(USIM_AID, b"USIM")),
                           ("fillFileContent", _dir_record(ISIM_AID, b"ISIM"))],
                "ef-arr": []}),
        ("pukCodes", {"puk-Header": {"mandated": None, "identification": 2},
                      "pukCodes": [{"keyReference": 1, "pukValue": b"11111111"},
                                   {"keyReference": 2, "pukValue": b"22222222"}]}),
        ("pinCodes", {"pin-Header": {"mandated": None, "identification": 3},
                      "pinCodes": ("pinconfig", [
                          {"keyReference": 1, "pinValue": b"1234\xff\xff\xff\xff",
                           "unblockingPINReference": 1, "pinAttributes": 6},
                          {"keyReference": 10, "pinValue": b"88888888",
                           "maxNumOfAttemps-retryNumLeft": 170}])}),
        ("usim", _usim(p)),
    ]
    ident = 5
    if p.msisdn is not None:
        elements.append(("opt-usim", {
            "optusim-header": {"identification": ident}, "templateID": TEMPLATE_OPT_USIM,
            "ef-msisdn": [("fillFileContent", _msisdn(p.msisdn))]}))
        ident += 1
    elements.append(("isim", _isim(p, ident)))
    elements.append(("akaParameter", {
        "aka-header": {"mandated": None, "identification": ident + 1},
        "algoConfiguration": ("algoParameter", {
            "algorithmID": 1, "algorithmOptions": b"\x00", "key": p.ki, "opc": p.opc}),
        "sqnOptions": b"\x02"}))
    elements.append(("end", {"end-header": {"mandated": None, "identification": ident + 2}}))
    return elements


def ts48_package(p: Ts48) -> bytes:
    """The DER profile package of ``p`` (its elements one after the other)."""
    return b"".join(codec().encode("ProfileElement", e) for e in ts48_elements(p))


SHIPPED = {
    "ts48-generic-19.der": Ts48(
        iccid="8949449999999990007", imsi="001010000000063",
        ki=bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
        opc=bytes.fromhex("0F0E0D0C0B0A09080706050403020100"), msisdn="+4915199999007"),
    "ts48-generic-20.der": Ts48(
        iccid="89000123456789012341", imsi="001010123456063",
        ki=bytes.fromhex("11111111111111111111111111111111"),
        opc=bytes.fromhex("22222222222222222222222222222222")),
}
"""The shipped test packages, by file name, and what each carries."""


def main() -> None:
    for name, profile in SHIPPED.items():
        (DATA / name).write_bytes(ts48_package(profile))
        print(f"wrote {DATA / name}")


if __name__ == "__main__":
    main()
