"""Profile packages as the TCA eUICC Profile Package specification (v2.3) codes them, read
and written by the project's code and by a second, independent path (asn1tools compiling
the PEDefinitions subset in ``tests/data/profiles/pe_subset.asn``).

The ProfileHeader's ``iccid`` is "encoded in a non-swapped ITU E.118 format" (TCA eUICC
Profile Package, ProfileHeader definition); EF.ICCID is nibble-swapped BCD (ETSI TS 102 221
13.2); "for Full Profiles, the eUICC does not check the consistency of this value with
EF_ICCID" (same definition), so the card reports EF.ICCID's ICCID.
"""

from __future__ import annotations

import dataclasses

import pytest

from mps_esim import simfiles
from mps_esim.sgp22 import saip
from mps_esim.sgp22.der import Asn1Error
from tests import profile_packages as pp

CONTENT = saip.ProfileContent(iccid="89490012345670001009", imsi="262011234567890",
                              ki=bytes(range(16)), opc=bytes(range(16, 32)),
                              msisdn="+4915112345678")


@pytest.mark.parametrize("name", sorted(pp.SHIPPED))
def test_shipped_packages_come_from_the_second_encoder(name: str) -> None:
    assert (pp.DATA / name).read_bytes() == pp.ts48_package(pp.SHIPPED[name])


@pytest.mark.parametrize("name", sorted(pp.SHIPPED))
def test_shipped_ts48_packages_decode_both_ways(name: str) -> None:
    data, profile = (pp.DATA / name).read_bytes(), pp.SHIPPED[name]
    elements = pp.decode(data)
    kinds = [kind for kind, _ in elements]
    assert kinds[0] == "header" and kinds[-1] == "end"
    assert {"mf", "pinCodes", "pukCodes", "usim", "isim", "akaParameter"} <= set(kinds)
    # Both codings side by side: plain digits in the header, swapped BCD in EF.ICCID.
    header = pp.element(elements, "header")["iccid"]
    assert header.hex().upper().rstrip("F") == profile.iccid
    ef_iccid = pp.file_content(pp.element(elements, "mf")["ef-iccid"])
    assert ef_iccid == simfiles.encode_iccid(profile.iccid) != header
    # The project's reader takes what a card needs from them, skipping PIN/PUK and ISIM.
    content = saip.parse_profile_package(data)
    assert (content.iccid, content.imsi, content.ki, content.opc, content.msisdn) == (
        profile.iccid, profile.imsi, profile.ki, profile.opc, profile.msisdn)
    assert content.service_provider == "GSMA TS.48"
    assert content.usim_aid == pp.USIM_AID


def test_built_package_decodes_independently_with_a_plain_header_iccid() -> None:
    elements = pp.decode(saip.build_profile_package(CONTENT))
    assert [kind for kind, _ in elements] == ["header", "mf", "usim", "opt-usim",
                                              "akaParameter", "end"]
    header = pp.element(elements, "header")
    assert header["iccid"] == bytes.fromhex("89490012345670001009")
    assert header["iccid"].hex() == "89490012345670001009"  # not 98940021436507000190
    assert header["eUICC-Mandatory-services"] == {"usim": None, "milenage": None}
    mf = pp.element(elements, "mf")
    assert pp.file_content(mf["ef-iccid"]) == bytes.fromhex("98940021436507000190")
    usim = pp.element(elements, "usim")
    assert pp.file_content(usim["ef-imsi"]) == simfiles.encode_imsi(CONTENT.imsi)
    algo = pp.element(elements, "akaParameter")["algoConfiguration"]
    assert algo == ("algoParameter", {"algorithmID": 1, "algorithmOptions": b"\x00",
                                      "key": CONTENT.ki, "opc": CONTENT.opc})
    ids = [next(v for k, v in value.items() if k.endswith("eader"))["identification"]
           for kind, value in elements[1:]]
    assert ids == [1, 2, 3, 4, 5]


def test_nineteen_digit_header_iccid_is_padded_with_f() -> None:
    assert saip.header_iccid("8949449999999990007") == bytes.fromhex("8949449999999990007F")
    assert simfiles.plain_bcd_decode(bytes.fromhex("8949449999999990007F")) == (
        "8949449999999990007")
    with pytest.raises(ValueError, match="non-digit"):
        simfiles.plain_bcd_decode(bytes.fromhex("89A9"))


def test_header_iccid_is_not_checked_against_ef_iccid() -> None:
    # The swapped coding older builders wrote, and a header naming another ICCID: both
    # install, with the ICCID EF.ICCID holds.
    for header_coding in ("swapped", "plain"):
        profile = dataclasses.replace(pp.SHIPPED["ts48-generic-20.der"],
                                      header_coding=header_coding)
        assert saip.parse_profile_package(pp.ts48_package(profile)).iccid == profile.iccid
    elements = pp.ts48_elements(pp.SHIPPED["ts48-generic-20.der"])
    elements[0][1]["iccid"] = pp.plain_bcd("8949449999999990007", 10)
    package = b"".join(pp.codec().encode("ProfileElement", e) for e in elements)
    assert saip.parse_profile_package(package).iccid == "89000123456789012341"


def test_header_iccid_stands_in_only_for_an_empty_ef_iccid() -> None:
    elements = pp.ts48_elements(pp.SHIPPED["ts48-generic-19.der"])
    elements[1][1]["ef-iccid"] = []
    package = b"".join(pp.codec().encode("ProfileElement", e) for e in elements)
    assert saip.parse_profile_package(package).iccid == "8949449999999990007"
    elements[0][1]["iccid"] = bytes.fromhex("8949FFFFFFFFFFFFFFFF")
    package = b"".join(pp.codec().encode("ProfileElement", e) for e in elements)
    with pytest.raises(Asn1Error, match="not 19 or 20 digits"):
        saip.parse_profile_package(package)


def test_header_iccid_must_be_ten_bytes() -> None:
    package = bytearray(saip.build_profile_package(CONTENT))
    at = package.index(bytes.fromhex("830A"))
    package[at + 1] = 9  # one byte short; the header's own length shrinks with it
    del package[at + 2]
    package[1] -= 1
    with pytest.raises(Asn1Error, match="ProfileHeader"):
        saip.parse_profile_package(bytes(package))


def test_round_trip_through_the_project_reader() -> None:
    for content in (CONTENT, dataclasses.replace(CONTENT, iccid="8949449999999990007",
                                                 msisdn=None)):
        read = saip.parse_profile_package(saip.build_profile_package(content))
        assert (read.iccid, read.imsi, read.msisdn) == (content.iccid, content.imsi,
                                                         content.msisdn)
