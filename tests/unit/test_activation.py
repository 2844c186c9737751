"""Activation codes: ``LPA:1$address$matchingId[$oid$ccRequired]``."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mps_esim.lpa.activation import (
    ActivationCode,
    ActivationCodeError,
    check_address,
    parse_activation_code,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("LPA:1$smdp.example.com$ABC-123", ActivationCode("smdp.example.com", "ABC-123")),
    ("1$smdp.example.com$ABC-123", ActivationCode("smdp.example.com", "ABC-123")),
    ("lpa:1$SMDP.Example.com$abc", ActivationCode("SMDP.Example.com", "abc")),
    ("  LPA:1$localhost:8443$X  ", ActivationCode("localhost:8443", "X")),
    ("LPA:1$127.0.0.1:9000$K2-4", ActivationCode("127.0.0.1:9000", "K2-4")),
    ("LPA:1$smdp.io$MID$1.3.6.1.4.1.31746$1",
     ActivationCode("smdp.io", "MID", "1.3.6.1.4.1.31746", True)),
    ("LPA:1$smdp.io$MID$$1", ActivationCode("smdp.io", "MID", None, True)),
    ("LPA:1$smdp.io$MID$2.999.10", ActivationCode("smdp.io", "MID", "2.999.10")),
    ("LPA:1$smdp.io$MID$$0", ActivationCode("smdp.io", "MID")),
    ("LPA:1$smdp.io$", ActivationCode("smdp.io", "")),
])
def test_valid_codes(text: str, expected: ActivationCode) -> None:
    assert parse_activation_code(text) == expected


@pytest.mark.parametrize(("text", "part"), [
    ("", "format"),
    ("LPA:2$smdp.io$MID", "format"),
    ("LPA:1", "code"),
    ("LPA:1$smdp.io", "code"),
    ("LPA:1$$MID", "address"),
    ("LPA:1$smdp io$MID", "address"),
    ("LPA:1$-smdp.io$MID", "address"),
    ("LPA:1$smdp.io:0$MID", "address"),
    ("LPA:1$smdp.io:70000$MID", "address"),
    ("LPA:1$smdp.io:08443$MID", "address"),
    ("LPA:1$smdp.io:abc$MID", "address"),
    ("LPA:1$a..b$MID", "address"),
    ("LPA:1$smdp.io$MI D", "matching_id"),
    ("LPA:1$smdp.io$MÏD", "matching_id"),
    ("LPA:1$smdp.io$MID$not-an-oid", "oid"),
    ("LPA:1$smdp.io$MID$1.3.6$2", "cc_required"),
    ("LPA:1$smdp.io$MID$1.3.6$1$extra", "code"),
    ("LPA:1$" + "a" * 600 + "$MID", "code"),
])
def test_invalid_codes_name_the_part(text: str, part: str) -> None:
    with pytest.raises(ActivationCodeError) as info:
        parse_activation_code(text)
    assert info.value.part == part
    assert str(info.value).startswith("activation code:")


def test_format_round_trip() -> None:
    for code in (ActivationCode("smdp.io", "MID"),
                 ActivationCode("smdp.io:8443", "MID", cc_required=True),
                 ActivationCode("smdp.io", "MID", "2.999.10"),
                 ActivationCode("smdp.io", "MID", "2.999.10", True)):
        assert parse_activation_code(str(code)) == code
    assert str(ActivationCode("smdp.io", "M", cc_required=True)) == "LPA:1$smdp.io$M$$1"


def test_host_property() -> None:
    assert ActivationCode("smdp.io:8443", "M").host == "smdp.io"
    assert ActivationCode("smdp.io", "M").host == "smdp.io"


def test_check_address() -> None:
    assert check_address("a-b.example:1") == "a-b.example:1"
    with pytest.raises(ActivationCodeError):
        check_address("x" * 64 + ".example")


@given(st.text(max_size=80))
def test_parser_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(ActivationCodeError):
        parse_activation_code(text)
