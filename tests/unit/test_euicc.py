"""The software eUICC in-process: files, ES10, T=0, channels, status words, state, CLI, vpcd."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord, StateError
from lpa_emulator.euicc import cli as euicc_cli
from lpa_emulator.euicc.card import MAX_STORE_DATA
from lpa_emulator.euicc.fs import decode_msisdn_record
from lpa_emulator.vpcd import VpcdCardServer, VpcdError, serve_vpcd
from mps_esim import simfiles, tlv
from mps_wire.identifiers import make_eid, make_iccid, validate_eid, validate_iccid

EID = make_eid("890490320000000000000000000123")
ICCID = make_iccid("894900000000000001")
IMSI = "262011234567890"
MSISDN = "+4915112345678"
ISDR = simfiles.ISDR_AID
GET_EID = bytes.fromhex("BF3E035C015A")


def make_state(*, enabled: bool = True) -> CardState:
    profile = ProfileRecord(iccid=ICCID, imsi=IMSI, msisdn=MSISDN, enabled=enabled,
                            name="Test", spn="Test Net")
    return CardState.new(eid=EID, profiles=[profile])


@pytest.fixture
def card(tmp_path: Path) -> EuiccCard:
    state = make_state()
    path = tmp_path / "card.json"
    state.save(path)
    return EuiccCard.from_state(state, path)


def tx(card: EuiccCard, apdu: str | bytes) -> tuple[bytes, int]:
    """One raw APDU; data and SW."""
    raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
    r = card.transmit(raw)
    assert len(r) >= 2
    return r[:-2], int.from_bytes(r[-2:], "big")


def exchange(card: EuiccCard, apdu: str | bytes) -> tuple[bytes, int]:
    """One APDU with the T=0 response procedure done as a terminal would."""
    raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
    data, sw = tx(card, raw)
    out = bytearray(data)
    for _ in range(16):
        if sw >> 8 == 0x6C:
            body = raw[:4] if len(raw) <= 5 else raw[:5 + raw[4]]
            data, sw = tx(card, body + bytes([sw & 0xFF]))
        elif sw >> 8 == 0x61:
            cla = raw[0] & 0x4F if raw[0] & 0x40 else raw[0] & 0x03
            data, sw = tx(card, bytes([cla, 0xC0, 0, 0, sw & 0xFF]))
        else:
            return bytes(out), sw
        out += data
    raise AssertionError("endless 61xx/6Cxx")


def cla(channel: int, proprietary: bool = False) -> int:
    base = channel if channel < 4 else 0x40 | (channel - 4)
    return base | (0x80 if proprietary else 0)


def select_isdr(card: EuiccCard, channel: int = 0) -> None:
    _data, sw = exchange(card, bytes([cla(channel), 0xA4, 0x04, 0x00, len(ISDR)]) + ISDR)
    assert sw == 0x9000


def es10(card: EuiccCard, command: bytes, *, channel: int = 0, block: int = 120) -> bytes:
    blocks = [command[i:i + block] for i in range(0, len(command), block)] or [b""]
    for n, chunk in enumerate(blocks):
        last = n == len(blocks) - 1
        apdu = bytes([cla(channel, True), 0xE2, 0x91 if last else 0x11, n, len(chunk)]) + chunk
        data, sw = exchange(card, apdu)
        assert sw == 0x9000, f"block {n}: {sw:04X}"
        if not last:
            assert data == b""
    return data


# --- identity and ES10 -------------------------------------------------------------------

def test_atr_offers_t0_and_has_a_valid_check_byte(card: EuiccCard) -> None:
    atr = card.atr
    assert atr[0] == 0x3B
    t0 = atr[1]
    assert t0 & 0x80  # TD1 present
    td1 = atr[2 + bin(t0 & 0x70).count("1")]
    assert td1 & 0x0F == 0  # T=0 offered first
    check = 0
    for b in atr[1:]:
        check ^= b
    assert check == 0
    assert card.reset() == atr


def test_select_isdr_returns_fci_with_its_aid(card: EuiccCard) -> None:
    _data, sw = tx(card, bytes([0x00, 0xA4, 0x04, 0x00, len(ISDR)]) + ISDR)
    assert sw >> 8 == 0x61
    fci, sw = tx(card, bytes([0x00, 0xC0, 0, 0, sw & 0xFF]))
    assert sw == 0x9000
    item = tlv.decode_one(fci)
    assert item.tag == 0x6F
    aid = item.find(0x84)
    assert aid is not None and aid.value == ISDR
    assert tx(card, bytes([0x00, 0xA4, 0x04, 0x0C, len(ISDR)]) + ISDR) == (b"", 0x9000)


def test_get_euicc_data_returns_the_eid(card: EuiccCard) -> None:
    select_isdr(card)
    answer = es10(card, GET_EID)
    assert answer == bytes.fromhex("BF3E125A10") + bytes.fromhex(EID)
    assert card.eid == EID


@pytest.mark.parametrize("block", [1, 2, 5])
def test_store_data_blocks_are_reassembled(card: EuiccCard, block: int) -> None:
    """STORE DATA blocks (P1 11 more, 91 last; P2 the block number) make one ES10 command (SGP.22
    5.7.2)."""
    select_isdr(card)
    assert es10(card, GET_EID, block=block) == bytes.fromhex("BF3E125A10" + EID)


def test_store_data_wrong_block_order_resets_reassembly(card: EuiccCard) -> None:
    """A block out of order is refused with 6A86 and drops the command (SGP.22 5.7.2)."""
    select_isdr(card)
    assert tx(card, "80E2110003BF3E03") == (b"", 0x9000)
    assert tx(card, "80E2910203" + "5C015A") == (b"", 0x6A86)  # block 2 where 1 was due
    # The partial command is gone: the next block 1 is out of order as well.
    assert tx(card, "80E2910103" + "5C015A") == (b"", 0x6A86)
    assert exchange(card, "80E2910006" + GET_EID.hex())[1] == 0x9000


def test_store_data_block_zero_restarts_a_command(card: EuiccCard) -> None:
    """Block 0 starts a new ES10 command (SGP.22 5.7.2)."""
    select_isdr(card)
    assert tx(card, "80E2110002BF3E")[1] == 0x9000
    data, sw = exchange(card, "80E2910006" + GET_EID.hex())
    assert (data[:2], sw) == (b"\xbf\x3e", 0x9000)


def test_store_data_refusals(card: EuiccCard) -> None:
    """STORE DATA refusals: no ISD-R, bad P1, unknown or malformed ES10 commands, ISO class
    (SGP.22 5.7.2)."""
    assert tx(card, "80E2910006" + GET_EID.hex()) == (b"", 0x6985)  # ISD-R not selected
    select_isdr(card)
    assert tx(card, "80E2010006" + GET_EID.hex()) == (b"", 0x6A86)  # bad P1
    assert tx(card, "80E2910004BF990100") == (b"", 0x6A80)  # unknown ES10 command
    assert tx(card, "80E2910003BF3E05") == (b"", 0x6A80)  # truncated TLV
    assert tx(card, "80E2910005BF3E0000FF") == (b"", 0x6A80)  # trailing garbage
    assert tx(card, "80E29100035A0100") == (b"", 0x6A80)  # primitive, unknown
    assert tx(card, "80E2910005BF3E028000") == (b"", 0x6A80)  # no tag list
    assert tx(card, "00E2910006" + GET_EID.hex()) == (b"", 0x6E00)  # needs the GP class


def test_store_data_without_data_is_wrong_length(card: EuiccCard) -> None:
    """Each STORE DATA block carries part of an ES10 command (SGP.22 5.7.2): a block
    without data is a wrong length, 6700 (ISO 7816-4 5.6), never 9000, and it ends the
    command being assembled."""
    select_isdr(card)
    assert tx(card, "80E29100") == (b"", 0x6700)  # no Lc, no Le
    assert tx(card, "80E2910000") == (b"", 0x6700)  # Le only
    assert tx(card, "80E21100") == (b"", 0x6700)  # a non-last block
    assert tx(card, "80E2110003BF3E03") == (b"", 0x9000)
    assert tx(card, "80E2910100") == (b"", 0x6700)  # empty last block of a started command
    assert tx(card, "80E2910103" + "5C015A") == (b"", 0x6A86)  # the partial command is gone
    assert exchange(card, "80E2910006" + GET_EID.hex())[1] == 0x9000


def test_store_data_size_limit(card: EuiccCard) -> None:
    """An ES10 command longer than the card holds answers 6A84 (SGP.22 5.7.2)."""
    select_isdr(card)
    chunk = "FF" * 255
    n = 0
    sw = 0x9000
    while sw == 0x9000 and n < 255:
        _, sw = tx(card, f"80E211{n:02X}FF" + chunk)
        n += 1
    assert sw == 0x6A84
    assert n == MAX_STORE_DATA // 255 + 1
    assert tx(card, "80E2910103" + "5C015A") == (b"", 0x6A86)  # the partial command is gone


def test_default_dp_address_is_set_persisted_and_cleared(card: EuiccCard, tmp_path: Path) -> None:
    select_isdr(card)
    addresses = tlv.decode_one(es10(card, bytes.fromhex("BF3C00")))
    assert [c.tag for c in addresses.children()] == [0x81]
    request = tlv.encode(0xBF3F, tlv.encode(0x80, b"smdp.example.com"))
    assert es10(card, request) == bytes.fromhex("BF3F03800100")

    reopened = EuiccCard.open(tmp_path / "card.json")
    assert reopened.state.default_dp_address == "smdp.example.com"
    select_isdr(reopened)
    got = tlv.decode_one(es10(reopened, bytes.fromhex("BF3C00"))).find(0x80)
    assert got is not None and got.value == b"smdp.example.com"

    es10(reopened, tlv.encode(0xBF3F, tlv.encode(0x80, b"")))
    assert EuiccCard.open(tmp_path / "card.json").state.default_dp_address is None


def test_failed_save_answers_memory_failure_and_keeps_state(tmp_path: Path) -> None:
    # The state's directory is a plain file: no write can succeed there.
    (tmp_path / "not-a-dir").write_text("")
    card = EuiccCard.from_state(make_state(), tmp_path / "not-a-dir" / "card.json")
    select_isdr(card)
    request = tlv.encode(0xBF3F, tlv.encode(0x80, b"x.example"))
    assert exchange(card, bytes([0x80, 0xE2, 0x91, 0, len(request)]) + request) == (b"", 0x6581)
    assert card.state.default_dp_address is None


def test_long_response_is_chained_over_get_response(card: EuiccCard) -> None:
    select_isdr(card)
    address = b"a" * 250
    es10(card, tlv.encode(0xBF3F, tlv.encode(0x80, address)))
    _data, sw = tx(card, "80E2910003BF3C00")
    assert sw == 0x6100  # 256 or more waiting
    first, sw = tx(card, "00C0000000")
    assert len(first) == 256 and sw >> 8 == 0x61
    rest, sw = tx(card, bytes([0x00, 0xC0, 0, 0, sw & 0xFF]))
    assert sw == 0x9000
    whole = tlv.decode_one(first + rest)
    got = whole.find(0x80)
    assert got is not None and got.value == address


# --- files -----------------------------------------------------------------------------

def test_ef_iccid_holds_the_enabled_profiles_iccid(card: EuiccCard) -> None:
    assert tx(card, "00A4000C023F00") == (b"", 0x9000)
    assert tx(card, "00A4000C022FE2") == (b"", 0x9000)
    data, sw = tx(card, "00B000000A")
    assert sw == 0x9000
    assert simfiles.decode_iccid(data) == ICCID
    assert data == simfiles.encode_iccid(ICCID)


def test_read_binary_lengths_and_offsets(card: EuiccCard) -> None:
    tx(card, "00A4000C022FE2")
    full = simfiles.encode_iccid(ICCID)
    assert tx(card, "00B0000000") == (b"", 0x6C0A)  # Le 00 means 256 under T=0
    assert tx(card, "00B0000000"[:8]) == (b"", 0x6C0A)  # no Le at all
    assert tx(card, "00B000000B") == (b"", 0x6C0A)
    assert tx(card, "00B0000005") == (full[:5], 0x9000)
    assert tx(card, "00B0000505") == (full[5:], 0x9000)
    assert tx(card, "00B0000606") == (b"", 0x6C04)
    assert tx(card, "00B0000A01") == (b"", 0x6B00)
    assert tx(card, "00B0820005") == (full[:5], 0x9000)  # by SFI 2


def test_select_ef_returns_fcp(card: EuiccCard) -> None:
    data, sw = exchange(card, "00A40004022FE2")
    assert sw == 0x9000
    fcp = tlv.decode_one(data)
    assert fcp.tag == 0x62
    fid = fcp.find(0x83)
    size = fcp.find(0x80)
    assert fid is not None and fid.value == b"\x2f\xe2"
    assert size is not None and int.from_bytes(size.value, "big") == 10


def test_ef_imsi_and_msisdn_under_the_usim(card: EuiccCard) -> None:
    data, sw = exchange(card, "00A4040407" + simfiles.AID_USIM_PREFIX.hex())
    assert sw == 0x9000 and tlv.decode_one(data).tag == 0x62
    assert tx(card, "00A4000C026F07") == (b"", 0x9000)
    data, sw = tx(card, "00B0000009")
    assert sw == 0x9000 and simfiles.decode_imsi(data) == IMSI

    assert tx(card, "00A4000C026F40") == (b"", 0x9000)
    assert tx(card, "00B2010400") == (b"", 0x6C0E)
    record, sw = tx(card, "00B201040E")
    assert sw == 0x9000
    assert record[1] == 0x91  # international number, ISDN plan
    assert record[0] == 1 + 7  # TON/NPI + 7 BCD bytes for 13 digits
    assert record[2:9] == simfiles.swap_nibbles_encode(MSISDN[1:], 7)
    assert decode_msisdn_record(record) == MSISDN
    assert tx(card, "00B202040E") == (b"", 0x6A83)
    assert tx(card, "00B201020E") == (b"", 0x6A86)  # only absolute mode
    assert tx(card, "00B0000001") == (b"", 0x6981)  # a record EF is not transparent
    tx(card, "00A4000C026F07")
    assert tx(card, "00B2010409") == (b"", 0x6981)


def test_path_selection_and_usim_by_full_aid(card: EuiccCard) -> None:
    assert tx(card, "00A4080C047FFF6F07") == (b"", 0x9000)
    assert simfiles.decode_imsi(tx(card, "00B0000009")[0]) == IMSI
    aid = card.state.profiles[0].usim_aid
    assert tx(card, bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid) == (b"", 0x9000)
    assert tx(card, "00A4080C022FE2") == (b"", 0x9000)
    assert simfiles.decode_iccid(tx(card, "00B000000A")[0]) == ICCID


def test_file_status_words(card: EuiccCard) -> None:
    assert tx(card, "00A4000C023F00") == (b"", 0x9000)
    assert tx(card, "00B000000A") == (b"", 0x6986)  # a DF is current, no EF
    assert tx(card, "00A4000C026F07") == (b"", 0x6A82)  # EF.IMSI is not under the MF
    assert tx(card, "00A4000C021234") == (b"", 0x6A82)
    assert tx(card, "00A4040C05A000000000") == (b"", 0x6A82)  # unknown AID
    assert tx(card, "00A4000C03123456") == (b"", 0x6A87)
    assert tx(card, "00A4020C022FE2") == (b"", 0x6A86)  # P1 02 not supported
    assert tx(card, "00A4000802" + "2FE2") == (b"", 0x6A86)  # P2 08 not supported
    assert tx(card, "00B0E00001") == (b"", 0x6A86)  # SFI bits clash
    assert tx(card, "00B0850001") == (b"", 0x6A82)  # no file with SFI 5


def test_no_enabled_profile_hides_iccid_and_usim(tmp_path: Path) -> None:
    card = EuiccCard.from_state(make_state(enabled=False))
    assert card.enabled_profile() is None
    assert tx(card, "00A4000C023F00") == (b"", 0x9000)
    assert tx(card, "00A4000C022FE2") == (b"", 0x6A82)
    assert tx(card, "00A4040C07" + simfiles.AID_USIM_PREFIX.hex()) == (b"", 0x6A82)
    select_isdr(card)
    assert es10(card, GET_EID) == bytes.fromhex("BF3E125A10" + EID)


# --- ISO status words and T=0 ------------------------------------------------------------

@pytest.mark.parametrize(("apdu", "sw"), [
    ("00A40400", 0x6A82),        # no AID at all: nothing by that name
    ("00A4", 0x6700),            # shorter than a header
    ("00A4000C033F00", 0x6700),  # Lc 3, 2 bytes
    ("00A4000C0A3F00", 0x6700),  # Lc 10, 2 bytes
    ("00A4000C00000102", 0x6700),  # extended length
    ("00CA000000", 0x6D00),      # GET DATA: not supported
    ("00600000", 0x6D00),        # invalid INS
    ("FFA4000C023F00", 0x6E00),  # invalid CLA
    ("20A4000C023F00", 0x6E00),  # reserved CLA
    ("80A4000C023F00", 0x6E00),  # SELECT with a proprietary class
    ("0CA4000C023F00", 0x6882),  # secure messaging
    ("10A4000C023F00", 0x6884),  # command chaining
    ("01A4000C023F00", 0x6881),  # channel 1 not open
    ("4FA4000C023F00", 0x6881),  # channel 19 not open
    ("00C0000000", 0x6985),      # GET RESPONSE with nothing pending
    ("00C0000100", 0x6A86),      # GET RESPONSE with P2
    ("00C0000001AA", 0x6700),    # GET RESPONSE with data
    ("80AA000003A90100", 0x6A80),  # TERMINAL CAPABILITY, truncated TLV
    ("80AA010002A900", 0x6A86),
    ("0070400000", 0x6A86),      # MANAGE CHANNEL with a bad P1
    ("0070800000", 0x6A86),      # close the basic channel
    ("0070800500", 0x6A86),      # close a channel that is not open
    ("00700000020101", 0x6700),  # MANAGE CHANNEL with data
])
def test_status_words(card: EuiccCard, apdu: str, sw: int) -> None:
    assert tx(card, apdu) == (b"", sw)


def test_transmit_survives_non_bytes_and_internal_errors(card: EuiccCard,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert card.transmit(None) == b"\x67\x00"  # type: ignore[arg-type]

    def broken(*_args: object) -> bytes:
        raise RuntimeError("bug")

    monkeypatch.setattr("lpa_emulator.euicc.card.fs.build", broken)
    monkeypatch.setattr(card, "_fs", None)
    assert card.transmit(bytes.fromhex("00A4000C022FE2")) == b"\x6f\x00"


def test_terminal_capability_and_status(card: EuiccCard) -> None:
    assert tx(card, "80AA00000AA9088100820101830107") == (b"", 0x9000)
    assert tx(card, "80F2000C00") == (b"", 0x9000)
    exchange(card, "00A4040C07" + simfiles.AID_USIM_PREFIX.hex())
    data, sw = exchange(card, "80F2000100")
    assert sw == 0x9000
    name = tlv.decode_one(data)
    assert name.tag == 0x84 and name.value == card.state.profiles[0].usim_aid
    assert tx(card, "80F2000300") == (b"", 0x6A86)


def test_pending_response_is_dropped_by_the_next_command(card: EuiccCard) -> None:
    _, sw = tx(card, bytes([0x00, 0xA4, 0x04, 0x00, len(ISDR)]) + ISDR)
    assert sw >> 8 == 0x61
    assert tx(card, "00A4000C023F00") == (b"", 0x9000)
    assert tx(card, bytes([0x00, 0xC0, 0, 0, sw & 0xFF])) == (b"", 0x6985)


def test_get_response_wrong_le_keeps_the_data(card: EuiccCard) -> None:
    _, sw = tx(card, bytes([0x00, 0xA4, 0x04, 0x00, len(ISDR)]) + ISDR)
    n = sw & 0xFF
    assert tx(card, bytes([0x00, 0xC0, 0, 0, n + 1])) == (b"", 0x6C00 | n)
    assert tx(card, "00C0000000") == (b"", 0x6C00 | n)
    part, sw = tx(card, "00C0000004")
    assert sw == 0x6100 | (n - 4)
    rest, sw = tx(card, bytes([0x00, 0xC0, 0, 0, n - 4]))
    assert sw == 0x9000 and tlv.decode_one(part + rest).tag == 0x6F


def test_get_response_accepts_the_proprietary_class(card: EuiccCard) -> None:
    _, sw = tx(card, bytes([0x00, 0xA4, 0x04, 0x00, len(ISDR)]) + ISDR)
    data, sw2 = tx(card, bytes([0x80, 0xC0, 0, 0, sw & 0xFF]))
    assert sw2 == 0x9000 and data[0] == 0x6F


# --- logical channels ----------------------------------------------------------------------

def test_channels_open_select_and_close(card: EuiccCard) -> None:
    opened = [tx(card, "0070000001") for _ in range(4)]
    assert opened == [(bytes([n]), 0x9000) for n in (1, 2, 3, 4)]
    for ch in (1, 2, 3, 4):
        select_isdr(card, ch)
        assert es10(card, GET_EID, channel=ch)[5:] == bytes.fromhex(EID)
    assert tx(card, "0070800200") == (b"", 0x9000)
    assert tx(card, "02A4000C023F00") == (b"", 0x6881)
    assert tx(card, "0070000001") == (b"\x02", 0x9000)  # the lowest free number again
    assert tx(card, "0070000000") == (b"", 0x6C01)  # Le 00 (256) does not fit one byte
    assert tx(card, "03708000") == (b"", 0x9000)  # close the channel named by CLA
    assert tx(card, "0070000300") == (b"", 0x9000)  # open channel 3 by number
    assert tx(card, "0070000300") == (b"", 0x6A86)  # already open


def test_all_twenty_channels_and_the_further_class(card: EuiccCard) -> None:
    numbers = [tx(card, "0070000001")[0][0] for _ in range(19)]
    assert numbers == list(range(1, 20))
    assert tx(card, "0070000001") == (b"", 0x6A81)  # none free
    select_isdr(card, 19)
    assert cla(19) == 0x4F
    assert es10(card, GET_EID, channel=19)[5:] == bytes.fromhex(EID)


def test_channel_state_is_independent(card: EuiccCard) -> None:
    tx(card, "0070000001")
    tx(card, "00A4000C022FE2")                 # basic channel: EF.ICCID
    select_isdr(card, 1)                        # channel 1: ISD-R
    _, sw = tx(card, bytes([0x01, 0xA4, 0x04, 0x00, len(ISDR)]) + ISDR)
    assert tx(card, "00B000000A")[1] == 0x9000  # a command on channel 0 ...
    data, sw2 = tx(card, bytes([0x01, 0xC0, 0, 0, sw & 0xFF]))  # ... keeps channel 1's data
    assert sw2 == 0x9000 and data[0] == 0x6F
    assert tx(card, "81E2910006" + GET_EID.hex())[1] >> 8 == 0x61
    assert tx(card, "80E2910006" + GET_EID.hex()) == (b"", 0x6985)  # no ISD-R on 0


def test_reset_closes_channels_and_forgets(card: EuiccCard) -> None:
    tx(card, "0070000001")
    select_isdr(card, 1)
    tx(card, "81E2110003BF3E03")  # a partial command
    _, sw = tx(card, bytes([0x00, 0xA4, 0x04, 0x00, len(ISDR)]) + ISDR)
    assert sw >> 8 == 0x61
    assert card.reset() == card.atr
    assert tx(card, "00C0000000") == (b"", 0x6985)
    assert tx(card, "01A4000C023F00") == (b"", 0x6881)
    assert tx(card, "80E2910006" + GET_EID.hex()) == (b"", 0x6985)
    assert tx(card, "0070000001") == (b"\x01", 0x9000)
    select_isdr(card, 1)
    assert tx(card, "81E2910103" + "5C015A") == (b"", 0x6A86)


def test_transmit_is_thread_safe(card: EuiccCard) -> None:
    channels = [tx(card, "0070000001")[0][0] for _ in range(4)]
    errors: list[str] = []

    def worker(ch: int) -> None:
        select_isdr(card, ch)
        for _ in range(200):
            if es10(card, GET_EID, channel=ch)[5:] != bytes.fromhex(EID):
                errors.append(f"channel {ch}")

    threads = [threading.Thread(target=worker, args=(ch,)) for ch in channels]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


_CLAS = st.sampled_from([0x00, 0x01, 0x03, 0x40, 0x4F, 0x80, 0x81, 0xC0, 0x0C, 0x10, 0x20,
                         0xFF]) | st.integers(0, 255)
_INS = st.sampled_from([0x70, 0xA4, 0xB0, 0xB2, 0xC0, 0xE2, 0xAA, 0xF2]) | st.integers(0, 255)


@st.composite
def apdus(draw: st.DrawFn) -> bytes:
    header = bytes([draw(_CLAS), draw(_INS), draw(st.integers(0, 255)),
                    draw(st.integers(0, 255))])
    shape = draw(st.sampled_from(["case1", "case2", "case3", "case4", "random"]))
    data = draw(st.binary(min_size=1, max_size=40))
    if draw(st.booleans()):
        data = draw(st.sampled_from([ISDR, simfiles.AID_USIM_PREFIX, b"\x3f\x00",
                                     b"\x2f\xe2", GET_EID, b"\xbf\x3c\x00"]))
    le = draw(st.integers(0, 255))
    if shape == "case1":
        return header
    if shape == "case2":
        return header + bytes([le])
    if shape == "case3":
        return header + bytes([len(data)]) + data
    if shape == "case4":
        return header + bytes([len(data)]) + data + bytes([le])
    return header + draw(st.binary(max_size=20))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(apdus() | st.binary(max_size=12), min_size=1, max_size=12))
def test_random_apdus_always_get_a_status_word(sequence: list[bytes]) -> None:
    card = EuiccCard.from_state(make_state())
    for apdu in sequence:
        response = card.transmit(apdu)
        assert isinstance(response, bytes) and len(response) >= 2
        assert response[-2] in (0x61, 0x62, 0x63, 0x65, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C,
                                0x6D, 0x6E, 0x90)
        assert response[-2:] != b"\x6f\x00", f"internal error on {apdu.hex()}"
    assert card.reset() == card.atr


# --- state ---------------------------------------------------------------------------------

def test_open_creates_a_valid_card_and_reopens_it(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    card = EuiccCard.open(path)
    assert path.exists()
    assert validate_eid(card.eid) == card.eid
    assert card.eid.startswith("89049032")
    profile = card.enabled_profile()
    assert profile is not None and validate_iccid(profile.iccid) == profile.iccid
    again = EuiccCard.open(path)
    assert again.eid == card.eid
    assert again.state == card.state
    assert [p.name for p in tmp_path.iterdir()] == ["new.json"]  # no temp files left


def test_state_round_trip_keeps_every_field(tmp_path: Path) -> None:
    state = make_state()
    state.profiles.append(ProfileRecord(iccid=make_iccid("894900000000000002"), imsi="26201999",
                                        isdp_aid=bytes.fromhex("A0000005591010FFFFFFFF8900001100"),
                                        nickname="work", profile_class="test"))
    state.default_dp_address = "smdp.example"
    state.save(tmp_path / "s.json")
    assert CardState.load(tmp_path / "s.json") == state


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "corrupt JSON"),
    (b"\xff\xfe", "corrupt JSON"),
    (b"[]", "not a JSON object"),
    (b'{"format": 99, "eid": "x"}', "unsupported state format"),
    (b'{"format": 1}', "eid is missing"),
    (b'{"format": 1, "eid": "123"}', "must be 32 digits"),
    (json.dumps({"format": 1, "eid": EID, "profiles": [{"iccid": ICCID}]}).encode(),
     "missing field 'imsi'"),
    (json.dumps({"format": 1, "eid": EID, "profiles": [
        {"iccid": ICCID, "imsi": IMSI, "isdp_aid": "zz"}]}).encode(), "non-hexadecimal"),
    (json.dumps({"format": 1, "eid": EID, "profiles": "x"}).encode(), "list of objects"),
])
def test_corrupt_state_files_are_named_clearly(tmp_path: Path, content: bytes,
                                               message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=message) as info:
        EuiccCard.open(path)
    assert str(path) in str(info.value)


def test_state_consistency_checks() -> None:
    a = ProfileRecord(iccid=ICCID, imsi=IMSI, enabled=True)
    b = ProfileRecord(iccid=make_iccid("894900000000000002"), imsi=IMSI, enabled=True,
                      isdp_aid=bytes.fromhex("A0000005591010FFFFFFFF8900001100"))
    with pytest.raises(ValueError, match="more than one profile"):
        CardState.new(eid=EID, profiles=[a, b])
    with pytest.raises(ValueError, match="same iccid"):
        CardState.new(eid=EID, profiles=[a, ProfileRecord(iccid=ICCID, imsi=IMSI)])
    with pytest.raises(ValueError, match="Luhn"):
        ProfileRecord(iccid="89490000000000000010", imsi=IMSI)
    assert CardState.new(eid=EID, profiles=[]).enabled_profile() is None


# --- the euicc command ---------------------------------------------------------------------

def test_cli_creates_shows_and_checks_identities(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "c.json")
    assert euicc_cli.main(["--state", path, "--eid", EID, "--iccid", ICCID, "--imsi", IMSI,
                           "--msisdn", MSISDN]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["eid"] == EID
    assert shown["profiles"][0] | {"iccid": ICCID, "imsi": IMSI, "msisdn": MSISDN,
                                   "enabled": True} == shown["profiles"][0]
    # Same identities again: fine; another EID or IMSI: refused with a message.
    assert euicc_cli.main(["euicc", "--state", path, "--iccid", ICCID, "--imsi", IMSI]) == 0
    capsys.readouterr()
    other_eid = make_eid("890490320000000000000000000999")
    assert euicc_cli.main(["--state", path, "--eid", other_eid]) == 1
    assert f"not {other_eid}" in capsys.readouterr().err
    assert euicc_cli.main(["--state", path, "--iccid", ICCID, "--imsi", "262019999999"]) == 1
    assert "IMSI" in capsys.readouterr().err


def test_cli_random_card_and_corrupt_file(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    assert euicc_cli.main(["--state", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert validate_eid(shown["eid"]) and len(shown["profiles"]) == 1
    path.write_text("{")
    assert euicc_cli.main(["--state", str(path)]) == 1
    assert "corrupt" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["--eid", "123"],
    ["--iccid", ICCID],
    ["--imsi", IMSI],
    ["--msisdn", MSISDN],
    ["--iccid", "8949000000000000001", "--imsi", IMSI],
    ["--isdr-aid", "A000"],
    ["--isdr-aid", "zz"],
    ["--vpcd", "localhost"],
    ["--vpcd", "127.0.0.1:99999"],
])
def test_cli_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  args: list[str]) -> None:
    try:
        code = euicc_cli.main(["--state", str(tmp_path / "x.json"), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    assert capsys.readouterr().err.strip()
    assert not (tmp_path / "x.json").exists()


def test_cli_custom_isdr_aid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aid = "A0000005591010000000008900000300"
    assert euicc_cli.main(["--state", str(tmp_path / "a.json"), "--isdr-aid", aid]) == 0
    assert json.loads(capsys.readouterr().out)["isdr_aid"] == aid
    card = EuiccCard.open(tmp_path / "a.json", isdr_aid=bytes.fromhex(aid))
    assert tx(card, bytes([0x00, 0xA4, 0x04, 0x0C, len(ISDR)]) + ISDR) == (b"", 0x6A82)
    aid_b = bytes.fromhex(aid)
    assert tx(card, bytes([0x00, 0xA4, 0x04, 0x0C, len(aid_b)]) + aid_b) == (b"", 0x9000)


# --- the vpcd protocol against a stand-in vpcd -------------------------------------------------

class FakeVpcd:
    """Listens like vpcd and writes length and payload in separate sends, as vpcd does."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.server.settimeout(5)

    def accept(self) -> socket.socket:
        conn, _ = self.server.accept()
        conn.settimeout(5)
        return conn

    @staticmethod
    def send(conn: socket.socket, payload: bytes) -> None:
        conn.sendall(len(payload).to_bytes(2, "big"))
        conn.sendall(payload)

    @staticmethod
    def recv(conn: socket.socket) -> bytes:
        def exact(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = conn.recv(n - len(buf))
                assert chunk, "card closed the connection"
                buf += chunk
            return buf
        return exact(int.from_bytes(exact(2), "big"))


@pytest.fixture
def fake_vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.server.close()


def test_vpcd_protocol_and_reconnect(fake_vpcd: FakeVpcd) -> None:
    card = EuiccCard.from_state(make_state())
    stop = threading.Event()
    server = VpcdCardServer(card, "127.0.0.1", fake_vpcd.port, stop=stop)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for round_no in range(2):
            conn = fake_vpcd.accept()
            with conn:
                fake_vpcd.send(conn, b"\x01")  # power on: no answer
                fake_vpcd.send(conn, b"\x04")
                assert fake_vpcd.recv(conn) == card.atr
                fake_vpcd.send(conn, bytes([0x00, 0xA4, 0x04, 0x0C, len(ISDR)]) + ISDR)
                assert fake_vpcd.recv(conn) == b"\x90\x00"
                # Two messages in one segment must come apart correctly.
                apdu = bytes.fromhex("80E2910006") + GET_EID
                get_response = b"\x00\xc0\x00\x00\x15"
                conn.sendall(len(apdu).to_bytes(2, "big") + apdu + b"\x00\x05" + get_response)
                assert fake_vpcd.recv(conn) == b"\x61\x15"
                assert fake_vpcd.recv(conn) == bytes.fromhex("BF3E125A10" + EID + "9000")
                fake_vpcd.send(conn, b"\x02")  # reset: no answer, channels closed
                fake_vpcd.send(conn, b"\x00\xc0\x00\x00\x15")
                assert fake_vpcd.recv(conn) == b"\x69\x85"
                # Counted while this connection is open: once it closes the card is
                # already on its way to the next one.
                assert server.connections == round_no + 1
            # Closing the connection is what pcscd restarting looks like to the card.
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_vpcd_without_reconnect_raises_when_nobody_listens() -> None:
    port = socket.create_server(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    card = EuiccCard.from_state(make_state())
    with pytest.raises(VpcdError, match="cannot connect"):
        serve_vpcd(card, "127.0.0.1", free, reconnect=False)


def test_vpcd_stop_ends_a_quiet_connection(fake_vpcd: FakeVpcd) -> None:
    card = EuiccCard.from_state(make_state())
    stop = threading.Event()
    thread = threading.Thread(target=serve_vpcd, args=(card, "127.0.0.1", fake_vpcd.port),
                              kwargs={"stop": stop}, daemon=True)
    thread.start()
    conn = fake_vpcd.accept()
    stop.set()
    thread.join(3)
    assert not thread.is_alive()
    conn.close()
