"""One suite, every card link: the software eUICC reached in-process, through pcscd + vpcd,
and behind the emulated modem (AT+CCHO/CGLA in both answer styles, and AT+CSIM alone)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agent.card.at import AtCardLink
from agent.errors import CardError, CardRemovedError, StatusWordError
from lpa_emulator.euicc import ATR
from mps_esim.iso7816 import build_apdu
from mps_esim.lpa import Es10Client, Es10ResultError
from mps_esim.simfiles import ISDR_AID
from tests.fixtures.cards import (
    LINK_EID,
    LINK_ICCID_A,
    LINK_ICCID_B,
    LINK_SMDP,
    LinkUnderTest,
)

OTHER_ISDR = bytes.fromhex("A0000005591010000000008900000300")


def test_connect_reads_iccid_and_eid(card_link: LinkUnderTest) -> None:
    link = card_link.link
    if card_link.name.startswith("at"):
        assert isinstance(link, AtCardLink)
        assert link.modem.supports_ccho() == (card_link.name != "at-csim")
    assert link.read_iccid() == LINK_ICCID_A
    with link.open_isdr() as isdr:
        client = Es10Client(isdr)
        assert client.get_eid() == LINK_EID
        info1 = client.get_euicc_info1()
        info2 = client.get_euicc_info2()
        assert info1.ci_pkids_verification == info2.ci_pkids_verification
        assert info2.resources.installed_applications == 2
        assert client.get_configured_addresses().root_ds_address == "lpa.ds.gsma.com"


def test_atr_where_the_path_passes_it(card_link: LinkUnderTest) -> None:
    atr = card_link.link.reconnect()
    # A modem does not pass the ATR on; the other paths show the card's T=0 ATR.
    assert atr == (b"" if card_link.name.startswith("at") else ATR)


def test_profile_life_cycle_and_notifications(card_link: LinkUnderTest) -> None:
    link = card_link.link
    with link.open_isdr() as isdr:
        client = Es10Client(isdr)
        assert [(p.iccid, p.state) for p in client.list_profiles()] == [
            (LINK_ICCID_A, "enabled"), (LINK_ICCID_B, "disabled")]
        client.enable_profile(iccid=LINK_ICCID_B)
        client.set_nickname(LINK_ICCID_A, "home")
        client.delete_profile(iccid=LINK_ICCID_A)
        with pytest.raises(Es10ResultError, match="iccidOrAidNotFound"):
            client.disable_profile(iccid=LINK_ICCID_A)
        listed = client.list_notifications()
        assert [(n.seq, n.operation, n.iccid) for n in listed] == [
            (1, "disable", LINK_ICCID_A), (2, "enable", LINK_ICCID_B),
            (3, "delete", LINK_ICCID_A)]
        assert {n.address for n in listed} == {LINK_SMDP}
        # The signed notifications are over 256 bytes each: GET RESPONSE chaining.
        pending = client.retrieve_notifications()
        assert [p.metadata for p in pending] == listed
        assert all(len(p.der) > 256 for p in pending)
        client.notification_sent(1)
    # The file system follows the enabled profile on the basic channel.
    assert link.read_iccid() == LINK_ICCID_B
    # And the card kept it all in its state file.
    state = card_link.state
    assert [p.iccid for p in state.profiles] == [LINK_ICCID_B]
    assert [n.seq for n in state.notifications] == [2, 3]


def test_store_data_segmentation(card_link: LinkUnderTest) -> None:
    with card_link.link.open_isdr() as isdr:
        for block_size in (255, 120, 7):
            # A 251-byte command: one block of 255, three of 120, thirty-six of 7.
            address = f"dp{block_size:03d}-" + "x" * 238 + ".example"
            client = Es10Client(isdr, block_size=block_size)
            client.set_default_dp_address(address)
            assert client.get_configured_addresses().default_dp_address == address


def test_four_logical_channels_at_once(card_link: LinkUnderTest) -> None:
    link = card_link.link
    channels = [link.open_isdr() for _ in range(4)]
    try:
        if card_link.name in ("emu", "pcsc", "at-csim"):
            # MANAGE CHANNEL numbers them; behind AT+CCHO the modem keeps the numbers.
            assert sorted(c.number for c in channels) == [1, 2, 3, 4]
        for channel in channels:
            assert Es10Client(channel).get_eid() == LINK_EID
    finally:
        for channel in channels:
            channel.close()
    # Closed channels are free again.
    with link.open_isdr() as again:
        assert Es10Client(again).get_eid() == LINK_EID


def test_status_words_reach_the_caller(card_link: LinkUnderTest) -> None:
    link = card_link.link
    with pytest.raises(StatusWordError) as err:
        link.send(build_apdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A000000000"), le=0))
    assert err.value.sw == 0x6A82
    with pytest.raises(StatusWordError) as err:
        link.send(build_apdu(0x00, 0xCA, 0x00, 0x00, le=0))
    assert err.value.sw == 0x6D00
    with link.open_isdr() as isdr, pytest.raises(StatusWordError) as err:
        isdr.send(build_apdu(0x80, 0xE2, 0x91, 0x00, bytes.fromhex("BF99020000")))
    assert err.value.sw == 0x6A80


def wait_for(check: Callable[[], object], timeout: float = 15.0) -> object:
    """Retry ``check`` until it stops raising CardError; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except CardError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_card_removed_mid_session_and_back(card_link: LinkUnderTest) -> None:
    link = card_link.link
    isdr = link.open_isdr()
    assert Es10Client(isdr).get_eid() == LINK_EID
    card_link.remove()
    with pytest.raises(CardRemovedError) as err:
        Es10Client(isdr).get_eid()
    assert "went away" in str(err.value) or "lost the SIM" in str(err.value)
    assert link.lost
    # The channel died with the card, whatever happens next.
    with pytest.raises(CardRemovedError, match="open a new one"):
        isdr.transmit(build_apdu(0x80, 0xE2, 0x91, 0x00, bytes.fromhex("BF3E035C015A")))
    card_link.restore()
    # The next use reconnects by itself once the card answers again.
    assert wait_for(link.read_iccid) == LINK_ICCID_A
    assert not link.lost
    with pytest.raises(CardRemovedError, match="open a new one"):
        Es10Client(isdr).get_eid()
    isdr.close()  # nothing is sent for a dead channel
    with link.open_isdr() as fresh:
        assert Es10Client(fresh).get_eid() == LINK_EID


@pytest.mark.parametrize("name", ["emu", "at-ccho", "at-csim"])
def test_removed_card_without_auto_reconnect(link_factory: Callable[..., LinkUnderTest],
                                             name: str) -> None:
    under = link_factory(name)
    link = under.link
    link.auto_reconnect = False
    under.remove()
    with pytest.raises(CardRemovedError):
        link.read_iccid()
    under.restore()
    with pytest.raises(CardRemovedError, match="reconnect"):
        link.read_iccid()
    link.reconnect()
    assert link.read_iccid() == LINK_ICCID_A


@pytest.mark.parametrize("name", ["emu", "pcsc", "at-ccho", "at-csim"])
def test_isd_r_aid_must_match_the_card(link_factory: Callable[..., LinkUnderTest], name: str,
                                       request: pytest.FixtureRequest) -> None:
    if name == "pcsc":
        request.applymarker(pytest.mark.pcsc)
    under = link_factory(name, isdr_aid=OTHER_ISDR)
    # Asking for the standard ISD-R of a card that has another: not found.
    with pytest.raises(StatusWordError) as err:
        under.link.open_isdr()
    assert err.value.sw == 0x6A82
    assert under.link.isdr_aid == ISDR_AID
    under.link.isdr_aid = OTHER_ISDR
    with under.link.open_isdr() as isdr:
        assert Es10Client(isdr).get_eid() == LINK_EID


@pytest.mark.pcsc
def test_pcsc_card_process_killed_between_commands(
        link_factory: Callable[..., LinkUnderTest]) -> None:
    under = link_factory("pcsc")
    assert under.remove_abruptly is not None
    link = under.link
    isdr = link.open_isdr()
    client = Es10Client(isdr)
    assert client.get_eid() == LINK_EID
    under.remove_abruptly()
    # Whatever pcscd says first (NOT_TRANSACTED while it has not noticed, REMOVED_CARD once
    # it has), the caller sees the card gone, with the PC/SC reason in the message.
    with pytest.raises(CardRemovedError, match="SCARD_"):
        client.get_eid()
    with pytest.raises(CardRemovedError, match="not back"):
        link.read_iccid()
    # pcscd polls the reader (vpcd: every 400 ms); a card back within the same poll is never
    # seen to leave and the reader keeps a stale state. A real card is out for longer.
    time.sleep(1.0)
    under.restore()
    assert wait_for(link.read_iccid) == LINK_ICCID_A
    with link.open_isdr() as fresh:
        assert Es10Client(fresh).get_eid() == LINK_EID
