"""Thousands of hostile APDUs against the software eUICC: valid headers with fuzzed bodies,
and STORE DATA carrying fuzzed DER built from the ES10 commands' own tags, split into
blocks (sometimes out of order). No command may end in an internal error (6F00), every
answer ends in a status word, and the state file stays loadable and consistent.

``make test`` runs a few thousand APDUs; the ``slow`` variant runs far more.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord
from lpa_emulator.euicc.es10 import HANDLERS
from lpa_emulator.euicc.state import isdp_aid_for
from mps_esim import simfiles, tlv
from mps_wire.identifiers import make_eid, make_iccid

EID = make_eid("890490320000000000000000000999")
ICCIDS = [make_iccid(f"8949000000000009{n:02d}") for n in range(3)]
AIDS = [isdp_aid_for(n) for n in range(3)]

# Every status word an ISO 7816 card may answer with here; 6F00 (internal error) is not one.
ALLOWED_SW1 = {0x61, 0x62, 0x63, 0x65, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x90}


def _initial_state() -> bytes:
    profiles = [
        ProfileRecord(iccid=ICCIDS[0], imsi="262010000000901", isdp_aid=AIDS[0], enabled=True,
                      smdp_address="smdp.example.com"),
        ProfileRecord(iccid=ICCIDS[1], imsi="262010000000902", isdp_aid=AIDS[1],
                      smdp_address="smdp.example.com", ppr=("ppr2",)),
        ProfileRecord(iccid=ICCIDS[2], imsi="001010000000903", isdp_aid=AIDS[2],
                      profile_class="test"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "card.json"
        CardState.new(eid=EID, profiles=profiles).save(path)
        return path.read_bytes()


INITIAL_STATE = _initial_state()
# State saves fsync; on a RAM file system that costs nothing, which keeps thousands of
# APDUs within seconds.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None


def fresh_card(directory: Path) -> EuiccCard:
    """The same card every time: profile 0 enabled, 1 with PPR2, 2 a test profile."""
    path = directory / "card.json"
    path.write_bytes(INITIAL_STATE)
    return EuiccCard.open(path)


# --- strategies --------------------------------------------------------------------------------

_VALUES = st.sampled_from([
    b"", b"\x00", b"\xff", b"\x01", b"\x7f", b"\x00\x01", b"\x05\xe0", b"\x04\x10",
    b"\x5a", b"\x5a\x4f\x9f\x70\x95", b"smdp.example.com",
    *(simfiles.encode_iccid(i) for i in ICCIDS), *AIDS, bytes(16),
]) | st.binary(max_size=24)
_FIELD_TAGS = st.sampled_from([0x80, 0x81, 0x82, 0x83, 0x5A, 0x4F, 0x5C, 0x90, 0x95, 0x9F70,
                               0x04, 0x0C, 0x06, 0x02, 0x01])
_CONSTRUCTED_TAGS = st.sampled_from([0xA0, 0xA1, 0x30, 0xE3, 0xBF2F])

_der = st.recursive(
    st.builds(tlv.encode, _FIELD_TAGS, _VALUES),
    lambda inner: st.builds(lambda tag, parts: tlv.encode(tag, b"".join(parts)),
                            _CONSTRUCTED_TAGS, st.lists(inner, max_size=3)),
    max_leaves=6)


@st.composite
def es10_command(draw: st.DrawFn) -> bytes:
    """A DER ES10 command of a known (or unknown) tag, sometimes damaged."""
    tag = draw(st.sampled_from(sorted(HANDLERS))
               | st.sampled_from([0xBF36, 0xBF37, 0xBF7F, 0x7F21]))
    body = b"".join(draw(st.lists(_der, max_size=4)))
    command = bytearray(tlv.encode(tag, body))
    damage = draw(st.sampled_from(["none", "none", "flip", "truncate", "append", "length"]))
    if damage == "flip" and command:
        i = draw(st.integers(0, len(command) - 1))
        command[i] ^= 1 << draw(st.integers(0, 7))
    elif damage == "truncate":
        del command[draw(st.integers(0, len(command))):]
    elif damage == "append":
        command += draw(st.binary(min_size=1, max_size=4))
    elif damage == "length" and len(command) > 2:
        command[2] = draw(st.integers(0, 255))
    return bytes(command)


@st.composite
def store_data_apdus(draw: st.DrawFn) -> list[bytes]:
    """An ES10 command in STORE DATA blocks on channel 1; blocks sometimes shuffled."""
    command = draw(es10_command())
    size = draw(st.integers(1, 255))
    blocks = [command[i:i + size] for i in range(0, len(command), size)] or [b""]
    apdus = []
    for number, block in enumerate(blocks):
        p1 = 0x91 if number == len(blocks) - 1 else 0x11
        apdus.append(bytes([0x81, 0xE2, p1, number, len(block)]) + block if block
                     else bytes([0x81, 0xE2, p1, number]))
    if len(apdus) > 1 and draw(st.booleans()):
        apdus = draw(st.permutations(apdus))
    return apdus


@st.composite
def fuzzed_body_apdu(draw: st.DrawFn) -> list[bytes]:
    """A valid header of a command the card knows, on a real channel, with a fuzzed body:
    right or wrong Lc, any Le, data that may or may not make sense."""
    cla = draw(st.sampled_from([0x00, 0x01, 0x80, 0x81, 0x02, 0x40, 0xC0, 0x04, 0x10]))
    ins = draw(st.sampled_from([0x70, 0xA4, 0xB0, 0xB2, 0xC0, 0xAA, 0xE2, 0xF2, 0xCA, 0x20]))
    p1 = draw(st.sampled_from([0x00, 0x04, 0x08, 0x09, 0x80, 0x11, 0x91, 0x82]) |
              st.integers(0, 255))
    p2 = draw(st.sampled_from([0x00, 0x01, 0x04, 0x0C, 0x1C]) | st.integers(0, 255))
    data = draw(st.sampled_from([simfiles.ISDR_AID, simfiles.AID_USIM_PREFIX, b"\x3f\x00",
                                 b"\x2f\xe2", b"\x6f\x07", b"\x7f\xff"]) | es10_command()
                | st.binary(max_size=40))
    shape = draw(st.sampled_from(["case1", "case2", "case3", "case4", "bad-lc"]))
    header = bytes([cla, ins, p1, p2])
    le = bytes([draw(st.integers(0, 255))])
    lc = bytes([len(data) & 0xFF])
    apdu = {"case1": header, "case2": header + le, "case3": header + lc + data,
            "case4": header + lc + data + le,
            "bad-lc": header + bytes([draw(st.integers(0, 255))]) + data}[shape]
    return [apdu]


_sequence = st.lists(store_data_apdus() | fuzzed_body_apdu(), min_size=1, max_size=20)

APDU_COUNTS: list[int] = []


def run_sequence(groups: list[list[bytes]]) -> int:
    """Send every APDU to a fresh card; check each answer and the state file afterwards."""
    count = 0
    with tempfile.TemporaryDirectory(prefix="mps-fuzz-", dir=SCRATCH) as tmp:
        card = fresh_card(Path(tmp))
        # The ISD-R on channel 1, as an LPA would leave it.
        assert card.transmit(bytes.fromhex("0070000001")) == b"\x01\x90\x00"
        select = bytes([0x01, 0xA4, 0x04, 0x0C, len(card.isdr_aid)]) + card.isdr_aid
        assert card.transmit(select) == b"\x90\x00"
        for group in groups:
            for apdu in group:
                response = card.transmit(apdu)
                count += 1
                assert isinstance(response, bytes) and len(response) >= 2, apdu.hex()
                assert response[-2] in ALLOWED_SW1, f"{apdu.hex()} -> {response.hex()}"
                assert response[-2:] != b"\x6f\x00", f"internal error on {apdu.hex()}"
        assert card.state_path is not None
        state = CardState.load(card.state_path)
        state.check()
        assert state == card.state
        assert sum(p.enabled for p in state.profiles) <= 1
        reopened = EuiccCard.open(card.state_path)
        assert reopened.transmit(select.replace(b"\x01", b"\x00", 1)) == b"\x90\x00"
    return count


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sequence)
def test_hostile_apdus_never_break_the_card(groups: list[list[bytes]]) -> None:
    APDU_COUNTS.append(run_sequence(groups))


def test_thousands_of_apdus_were_sent() -> None:
    if not APDU_COUNTS:
        pytest.skip("the fuzz test did not run first")
    assert sum(APDU_COUNTS) >= 2000, sum(APDU_COUNTS)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sequence)
def test_hostile_apdus_never_break_the_card_long(groups: list[list[bytes]]) -> None:
    run_sequence(groups)


def test_the_fuzz_reaches_every_es10_handler() -> None:
    # Well-formed commands of every handler reach it: the strategies are not all noise.
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        card = fresh_card(Path(tmp))
        assert card.transmit(bytes.fromhex("0070000001")) == b"\x01\x90\x00"
        select = bytes([0x01, 0xA4, 0x04, 0x0C, len(card.isdr_aid)]) + card.isdr_aid
        assert card.transmit(select) == b"\x90\x00"
        for tag in HANDLERS:
            command = tlv.encode(tag, b"")
            response = card.transmit(bytes([0x81, 0xE2, 0x91, 0x00, len(command)]) + command)
            assert response[-2] in (0x61, 0x6A, 0x90), f"{tag:X}: {response.hex()}"
