"""T=0 handling, logical channels and status-word errors of the card link base class."""

from __future__ import annotations

import pytest

from agent.card.link import CardLink
from agent.errors import CardError, CardRemovedError, NoCardError, StatusWordError
from mps_esim.iso7816 import ApduError, Response, build_apdu, t0_transceive, with_channel


class Scripted(CardLink):
    """A card link whose card answers from a script of (expected command, answer) pairs."""

    scheme = "test"

    def __init__(self, script: list[tuple[str, str]]) -> None:
        super().__init__()
        self.script = [(bytes.fromhex(c), bytes.fromhex(a)) for c, a in script]
        self.sent: list[bytes] = []

    def _connect(self) -> bytes:
        return bytes.fromhex("3B9F96801FC78031E073FE211B63F100")

    def _exchange(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        expected, answer = self.script.pop(0)
        assert apdu == expected, f"sent {apdu.hex()} but the script expected {expected.hex()}"
        return answer


def test_61xx_is_collected_with_get_response_on_the_same_channel() -> None:
    link = Scripted([
        ("81E2910006BF3E035C015A", "6114"),
        ("01C0000014", "BF3E125A10" + "89049032" + "00" * 12 + "6110"),
        ("01C0000010", "AABB9000"),
    ])
    link.connect()
    resp = link.transmit(bytes.fromhex("81E2910006BF3E035C015A"))
    assert resp.sw == 0x9000
    assert resp.data.endswith(b"\xaa\xbb")
    assert len(link.sent) == 3


def test_6cxx_resends_with_the_right_le() -> None:
    link = Scripted([("00B000000A", "6C05"), ("00B0000005", "01020304059000")])
    link.connect()
    assert link.send(build_apdu(0, 0xB0, 0, 0, le=10)) == b"\x01\x02\x03\x04\x05"


def test_6cxx_on_case_4_replaces_only_le() -> None:
    sent: list[bytes] = []

    def exchange(apdu: bytes) -> bytes:
        sent.append(apdu)
        return bytes.fromhex("6C02") if len(sent) == 1 else bytes.fromhex("AABB9000")

    t0_transceive(exchange, bytes.fromhex("00A4040002AABB00"))
    assert sent[1].hex() == "00a4040002aabb02"


def test_status_word_error_carries_sw() -> None:
    link = Scripted([("00A4000C022FE2", "6A82")])
    link.connect()
    with pytest.raises(StatusWordError) as err:
        link.send(bytes.fromhex("00A4000C022FE2"))
    assert err.value.sw == 0x6A82
    assert "file or application not found" in str(err.value)
    assert isinstance(err.value, OSError)


def test_open_channel_selects_and_closes() -> None:
    aid = "A0000005591010FFFFFFFF8900000100"
    link = Scripted([
        ("0070000001", "029000"),
        ("02A4040010" + aid + "00", "6112"),
        ("02C0000012", "6F108410" + aid + "9000"),
        ("82E2910003BF2E00", "9000"),
        ("00708002", "9000"),
    ])
    link.connect()
    with link.open_isdr() as ch:
        assert ch.number == 2
        assert ch.transmit(bytes.fromhex("80E2910003BF2E00")).ok
    assert link.sent[-1] == bytes.fromhex("00708002")
    with pytest.raises(CardError, match="closed"):
        ch.transmit(b"\x00\x00\x00\x00")


def test_transmit_before_connect_is_an_error() -> None:
    with pytest.raises(CardError, match="not connected"):
        Scripted([]).transmit(b"\x00\xa4\x00\x00")


def test_endless_61xx_is_bounded() -> None:
    with pytest.raises(ApduError, match="61xx"):
        t0_transceive(lambda _a: b"\x61\x01", b"\x00\xb0\x00\x00\x01", max_rounds=5)


def test_with_channel_codes_cla() -> None:
    assert with_channel(bytes.fromhex("80E29100"), 1)[0] == 0x81
    assert with_channel(bytes.fromhex("00A40400"), 3)[0] == 0x03
    assert with_channel(bytes.fromhex("00A40400"), 4)[0] == 0x40
    assert with_channel(bytes.fromhex("80E29100"), 19)[0] == 0xCF
    with pytest.raises(ApduError):
        with_channel(bytes.fromhex("00A40400"), 20)


def test_build_apdu_and_response() -> None:
    assert build_apdu(0, 0xA4, 4, 0, b"\xa0", le=256).hex() == "00a4040001a000"
    with pytest.raises(ApduError):
        build_apdu(0, 0x100, 0, 0)
    with pytest.raises(ApduError):
        Response.parse(b"\x90")
    assert Response.parse(b"\x01\x90\x00") == Response(b"\x01", 0x9000)


class Flaky(CardLink):
    """A card that can be pulled: ``present`` False makes the next exchange fail."""

    scheme = "flaky"

    def __init__(self, *, auto_reconnect: bool = True) -> None:
        super().__init__(auto_reconnect=auto_reconnect)
        self.present = True
        self.connects = 0

    def _connect(self) -> bytes:
        if not self.present:
            raise NoCardError("no card")
        self.connects += 1
        return b"\x3b\x00"

    def _exchange(self, apdu: bytes) -> bytes:
        if not self.present:
            raise CardRemovedError("pulled")
        if apdu[1] == 0x70:  # MANAGE CHANNEL open
            return b"\x01\x90\x00"
        return b"\x90\x00"


def test_a_removed_card_kills_its_channels_and_comes_back_on_next_use() -> None:
    link = Flaky()
    link.connect()
    channel = link.open_channel(b"\xa0\x00\x00\x00\x05")
    assert channel.alive and link.generation == 1
    link.present = False
    with pytest.raises(CardRemovedError, match="pulled"):
        channel.transmit(b"\x80\xe2\x91\x00")
    assert link.lost and not channel.alive
    with pytest.raises(CardRemovedError, match="not back"):
        link.transmit(b"\x00\xa4\x00\x00")
    link.present = True
    assert link.transmit(b"\x00\xa4\x00\x00").ok  # reconnects first
    assert (link.generation, link.connects, link.lost) == (2, 2, False)
    with pytest.raises(CardRemovedError, match="open a new one"):
        channel.transmit(b"\x80\xe2\x91\x00")
    channel.close()  # sends nothing for a dead channel
    with pytest.raises(CardError, match="closed"):
        channel.transmit(b"\x80\xe2\x91\x00")
    assert link.open_channel(b"\xa0\x00\x00\x00\x05").alive


def test_without_auto_reconnect_only_reconnect_brings_it_back() -> None:
    link = Flaky(auto_reconnect=False)
    link.connect()
    link.present = False
    with pytest.raises(CardRemovedError):
        link.transmit(b"\x00\xa4\x00\x00")
    link.present = True
    with pytest.raises(CardRemovedError, match="reconnect"):
        link.transmit(b"\x00\xa4\x00\x00")
    with pytest.raises(CardRemovedError, match="reconnect"):
        link.transmit(b"\x00\xa4\x00\x00")
    assert link.reconnect() == b"\x3b\x00"
    assert link.transmit(b"\x00\xa4\x00\x00").ok
    assert isinstance(CardRemovedError("x"), OSError)
