"""ES10a/b/c on the software eUICC: byte-exact requests and responses, result codes, DER
strictness, notifications, the file system following the enabled profile, and the LPA's
ES10 client against the card."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord
from lpa_emulator.euicc.es10 import RULES_AUTHORISATION_TABLE
from lpa_emulator.euicc.state import isdp_aid_for
from mps_esim import sgp22, simfiles, tlv
from mps_esim.iso7816 import Response, build_apdu, t0_transceive, with_channel
from mps_esim.lpa import Es10Client, Es10Error, Es10ResultError
from mps_wire.identifiers import make_eid, make_iccid

EID = make_eid("890490320000000000000000000777")
ICCID_A = make_iccid("894900000000000071")
ICCID_B = make_iccid("894900000000000072")
ICCID_T = make_iccid("894900000000000073")
SMDP = "smdp.example.com"


class CardChannel:
    """A logical channel to an in-process card with the ISD-R selected (T=0 done here)."""

    def __init__(self, card: EuiccCard, number: int = 1) -> None:
        self.card = card
        self.number = number
        opened = t0_transceive(card.transmit, bytes.fromhex("0070000001"))
        assert opened.ok and opened.data == bytes([number])
        aid = card.isdr_aid
        assert self.transmit(build_apdu(0, 0xA4, 0x04, 0x00, aid, le=0)).ok

    def transmit(self, apdu: bytes) -> Response:
        return t0_transceive(self.card.transmit, with_channel(apdu, self.number))


def profiles() -> list[ProfileRecord]:
    return [
        ProfileRecord(iccid=ICCID_A, imsi="262011111111111", msisdn="+4915111111111",
                      isdp_aid=isdp_aid_for(0), enabled=True, name="Home", spn="Home Net",
                      smdp_address=SMDP),
        ProfileRecord(iccid=ICCID_B, imsi="26202222222222", isdp_aid=isdp_aid_for(1),
                      name="Travel", spn="Roam", smdp_address=SMDP, notify=("delete",)),
        ProfileRecord(iccid=ICCID_T, imsi="00101333333333", isdp_aid=isdp_aid_for(2),
                      name="Test", profile_class="test"),
    ]


@pytest.fixture
def card(tmp_path: Path) -> EuiccCard:
    state = CardState.new(eid=EID, profiles=profiles())
    path = tmp_path / "card.json"
    state.save(path)
    return EuiccCard.open(path)


@pytest.fixture
def isdr(card: EuiccCard) -> CardChannel:
    return CardChannel(card)


@pytest.fixture
def client(isdr: CardChannel) -> Es10Client:
    return Es10Client(isdr)


def es10(isdr: CardChannel, command: str | bytes) -> tuple[bytes, int]:
    """One ES10 command in a single STORE DATA; response data and SW."""
    raw = bytes.fromhex(command) if isinstance(command, str) else command
    resp = isdr.transmit(build_apdu(0x80, 0xE2, 0x91, 0x00, raw))
    return resp.data, resp.sw


def iccid_hex(iccid: str) -> str:
    return simfiles.encode_iccid(iccid).hex().upper()


def reopen(card: EuiccCard) -> EuiccCard:
    assert card.state_path is not None
    return EuiccCard.open(card.state_path)


# --- byte level -------------------------------------------------------------------------------

def test_euicc_info1_bytes(card: EuiccCard, isdr: CardChannel) -> None:
    """GetEUICCInfo1 (SGP.22 5.7.8)."""
    data, sw = es10(isdr, "BF2000")
    assert sw == 0x9000
    pkid = card.state.identity.ci_pkids[0]
    assert len(pkid) == 20
    expected = ("BF2035" "820302" "0202" "A916" "0414" + pkid.hex() +
                "AA16" "0414" + pkid.hex()).upper()
    assert data.hex().upper() == expected


def test_euicc_info2_is_strict_der_in_asn1_order(isdr: CardChannel) -> None:
    """GetEUICCInfo2 (SGP.22 5.7.8), DER in the order of the ASN.1."""
    data, sw = es10(isdr, "BF2200")
    assert sw == 0x9000
    item = tlv.decode_one(data)
    # SGP.32 adds ipaMode (90) and iotSpecificInfo (B4) after the SGP.22 members.
    assert [c.tag for c in item.children()] == [
        0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0xA9, 0xAA, 0x8B, 0x04, 0x0C, 0x90, 0xB4]
    info = sgp22.EuiccInfo2.decode(item)
    assert info.encode() == tlv.encode(item.tag, b"".join(c.encode() for c in item.children()[:-2]))
    assert info.svn == "2.2.2" and info.resources.installed_applications == 3
    assert {"usimSupport", "profile-b-p256"} <= info.uicc_capabilities
    assert info.rsp_capabilities == {"additionalProfile", "testProfileSupport"}


def test_enable_by_iccid_bytes_and_result_codes(card: EuiccCard, isdr: CardChannel) -> None:
    """EnableProfile and its result codes (SGP.22 5.7.16)."""
    enable_b = "BF3111A00C5A0A" + iccid_hex(ICCID_B) + "8101FF"
    assert es10(isdr, enable_b) == (bytes.fromhex("BF3103800100"), 0x9000)
    assert es10(isdr, enable_b) == (bytes.fromhex("BF3103800102"), 0x9000)  # not disabled
    unknown = "BF3111A00C5A0A" + iccid_hex(make_iccid("894900000000009999")) + "810100"
    assert es10(isdr, unknown) == (bytes.fromhex("BF3103800101"), 0x9000)
    # By ISD-P AID, refresh flag off.
    by_aid = "BF3117A0124F10" + isdp_aid_for(0).hex() + "810100"
    assert es10(isdr, by_aid) == (bytes.fromhex("BF3103800100"), 0x9000)
    enabled = card.enabled_profile()
    assert enabled is not None and enabled.iccid == ICCID_A


def test_disable_and_delete_result_codes(card: EuiccCard, isdr: CardChannel) -> None:
    """DisableProfile (SGP.22 5.7.17) and DeleteProfile (5.7.18) result codes."""
    disable = "BF3211A00C5A0A{}810100"
    delete = "BF330C5A0A{}"
    assert es10(isdr, disable.format(iccid_hex(ICCID_B)))[0].hex() == "bf3203800102"
    assert es10(isdr, delete.format(iccid_hex(ICCID_A)))[0].hex() == "bf3303800102"
    assert es10(isdr, delete.format(iccid_hex(make_iccid("894900000000009999"))))[0].hex() == (
        "bf3303800101")
    assert es10(isdr, disable.format(iccid_hex(ICCID_A)))[0].hex() == "bf3203800100"
    assert card.enabled_profile() is None
    assert es10(isdr, delete.format(iccid_hex(ICCID_A)))[0].hex() == "bf3303800100"
    assert [p.iccid for p in card.state.profiles] == [ICCID_B, ICCID_T]
    by_aid = "BF33124F10" + isdp_aid_for(1).hex()
    assert es10(isdr, by_aid)[0].hex() == "bf3303800100"


def test_policy_rules_refuse_disable_enable_and_delete(tmp_path: Path) -> None:
    """Profile policy rules refuse the operations they forbid (SGP.22 2.9, 5.7.16 to 5.7.18)."""
    state = CardState.new(eid=EID, profiles=profiles())
    state.profiles[0].ppr = ("ppr1",)
    state.profiles[1].ppr = ("ppr2",)
    card = EuiccCard.from_state(state, tmp_path / "p.json")
    client = Es10Client(CardChannel(card))
    with pytest.raises(Es10ResultError) as err:
        client.disable_profile(iccid=ICCID_A)
    assert (err.value.code, err.value.reason) == (3, "disallowedByPolicy")
    with pytest.raises(Es10ResultError, match="disallowedByPolicy"):
        client.enable_profile(iccid=ICCID_B)
    with pytest.raises(Es10ResultError, match="disallowedByPolicy"):
        client.delete_profile(iccid=ICCID_B)
    info = client.list_profiles(iccid=ICCID_A)[0]
    assert info.ppr == frozenset({"ppr1"})


def test_list_profile_info_search_criteria_and_tag_list(isdr: CardChannel) -> None:
    """GetProfilesInfo search criteria and tag list (SGP.22 5.7.15)."""
    data, sw = es10(isdr, "BF2D00")
    assert sw == 0x9000
    infos = [sgp22.ProfileInfo.decode(e) for e in tlv.decode_one(data).find(0xA0).children()]  # type: ignore[union-attr]
    assert [(i.iccid, i.state, i.profile_class) for i in infos] == [
        (ICCID_A, "enabled", "operational"), (ICCID_B, "disabled", "operational"),
        (ICCID_T, "disabled", "test")]
    assert infos[0].owner is not None and infos[0].owner.plmn == "262-01"
    assert infos[0].notification_config == (sgp22.NotificationConfig(
        frozenset(sgp22.NOTIFICATION_EVENTS), SMDP),)
    # One profile by ICCID, only ICCID and state: exactly those bytes.
    data, _ = es10(isdr, "BF2D14A00C5A0A" + iccid_hex(ICCID_B) + "5C045A9F7095")
    assert data.hex().upper() == ("BF2D14A012E3105A0A" + iccid_hex(ICCID_B) + "9F700100")
    # The DEFAULT profile class (operational) is left out even when asked for; test is not.
    data, _ = es10(isdr, "BF2D09A003950100" + "5C025A95")
    assert data.hex().upper() == ("BF2D13A011E30F5A0A" + iccid_hex(ICCID_T) + "950100")
    data, _ = es10(isdr, "BF2D14A0124F10" + isdp_aid_for(1).hex() + "")
    assert [i.iccid for i in map(sgp22.ProfileInfo.decode,
                                 tlv.decode_one(data).find(0xA0).children())] == [ICCID_B]  # type: ignore[union-attr]
    # Nothing matches: an empty list, not an error.
    data, _ = es10(isdr, "BF2D0EA00C5A0A" + iccid_hex(make_iccid("894900000000009999")))
    assert data.hex() == "bf2d02a000"


@pytest.mark.parametrize("criteria", [
    "A00B5A09" + "98" * 9,  # ICCID of 9 bytes
    "A0035A0101",  # ICCID of 1 byte
    "A003950107",  # no profile class 7
    "A0065A0101950100",  # two criteria
    "A003800100",  # an unknown criterion
    "A00495020001",  # INTEGER not in its shortest form
])
def test_list_profile_info_bad_criteria_is_incorrect_input(isdr: CardChannel,
                                                           criteria: str) -> None:
    """GetProfilesInfo with a bad search criterion (SGP.22 5.7.15)."""
    body = bytes.fromhex(criteria)
    assert es10(isdr, tlv.encode(0xBF2D, body)) == (bytes.fromhex("BF2D03810101"), 0x9000)


def test_nickname_set_listed_cleared_and_refused(client: Es10Client, isdr: CardChannel) -> None:
    """SetNickname (SGP.22 5.7.21)."""
    client.set_nickname(ICCID_B, "Ferien ✈")
    assert client.list_profiles(iccid=ICCID_B)[0].nickname == "Ferien ✈"
    client.set_nickname(ICCID_B, "")
    assert client.list_profiles(iccid=ICCID_B)[0].nickname is None
    with pytest.raises(Es10ResultError, match="iccidNotFound"):
        client.set_nickname(make_iccid("894900000000009999"), "x")
    too_long = tlv.encode(0xBF29, tlv.encode(0x5A, simfiles.encode_iccid(ICCID_B))
                          + tlv.encode(0x90, b"x" * 65))
    assert es10(isdr, too_long) == (b"", 0x6A80)
    not_utf8 = tlv.encode(0xBF29, tlv.encode(0x5A, simfiles.encode_iccid(ICCID_B))
                          + tlv.encode(0x90, b"\xff"))
    assert es10(isdr, not_utf8) == (b"", 0x6A80)


def test_file_system_follows_enable_and_disable(card: EuiccCard, client: Es10Client) -> None:
    def basic(apdu: str) -> Response:
        return t0_transceive(card.transmit, bytes.fromhex(apdu))

    def iccid() -> str:
        # EF.ICCID sits under the MF: it is not selectable from within the USIM.
        assert basic("00A4000C023F00").ok
        assert basic("00A4000C022FE2").ok
        return simfiles.decode_iccid(basic("00B000000A").data)

    def imsi() -> str:
        aid = simfiles.AID_USIM_PREFIX
        assert basic(f"00A4040C{len(aid):02X}{aid.hex()}").ok
        assert basic("00A4000C026F07").ok
        return simfiles.decode_imsi(basic("00B0000009").data)

    assert (iccid(), imsi()) == (ICCID_A, "262011111111111")
    client.enable_profile(iccid=ICCID_B)
    assert (iccid(), imsi()) == (ICCID_B, "26202222222222")
    client.disable_profile(iccid=ICCID_B)
    assert basic("00A4000C023F00").ok
    assert basic("00A4000C022FE2").sw == 0x6A82  # no enabled profile: no EF.ICCID
    client.enable_profile(iccid=ICCID_A)
    assert iccid() == ICCID_A
    assert imsi() == "262011111111111"
    assert basic("00A4000C026F40").ok
    record = basic("00B201040E").data
    assert record[:2] == bytes([8, 0x91])  # TON/NPI + 13 digits in 7 bytes, international


def test_notifications_are_made_listed_signed_and_removed(card: EuiccCard,
                                                          client: Es10Client) -> None:
    """ListNotification, RetrieveNotificationsList, RemoveNotificationFromList
    (SGP.22 5.7.9 to 5.7.11)."""
    client.enable_profile(iccid=ICCID_B)  # A: disable, B: enable is not configured
    client.delete_profile(iccid=ICCID_A)  # A: delete
    client.delete_profile(iccid=ICCID_T)  # no SM-DP+ address: no notification
    listed = client.list_notifications()
    assert [(n.seq, n.operation, n.iccid, n.address) for n in listed] == [
        (1, "disable", ICCID_A, SMDP), (2, "delete", ICCID_A, SMDP)]
    assert [n.seq for n in client.list_notifications(["delete", "install"])] == [2]
    pending = client.retrieve_notifications()
    assert [p.metadata for p in pending] == listed
    # The signature covers the metadata and verifies with CERT.EUICC.
    signed = tlv.decode_one(pending[0].der)
    metadata, signature, cert, eum = signed.children()
    assert (metadata.tag, signature.tag, cert.tag, eum.tag) == (0xBF2F, 0x5F37, 0x30, 0x30)
    assert cert.encode() == card.state.identity.certificate_der
    r, s = signature.value[:32], signature.value[32:]
    public = card.state.identity.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(encode_dss_signature(int.from_bytes(r), int.from_bytes(s)),
                  metadata.encode(), ec.ECDSA(hashes.SHA256()))
    assert [p.metadata.seq for p in client.retrieve_notifications(seq=2)] == [2]
    assert [p.metadata.seq for p in client.retrieve_notifications(operations=["disable"])] == [1]
    with pytest.raises(Es10ResultError, match="noResultAvailable"):
        client.retrieve_notifications(seq=7)
    client.notification_sent(1)
    with pytest.raises(Es10ResultError, match="nothingToDelete"):
        client.notification_sent(1)
    # Sequence numbers survive a restart and are never reused.
    again = Es10Client(CardChannel(reopen(card)))
    assert [n.seq for n in again.list_notifications()] == [2]
    again.notification_sent(2)
    again.disable_profile(iccid=ICCID_B)  # B notifies only deletes
    again.delete_profile(iccid=ICCID_B)
    assert [(n.seq, n.operation) for n in again.list_notifications()] == [(3, "delete")]


def test_memory_reset_options(card: EuiccCard, client: Es10Client) -> None:
    """eUICCMemoryReset options (SGP.22 5.7.19)."""
    client.set_default_dp_address("dp.example")
    client.memory_reset(["deleteFieldLoadedTestProfiles"])
    assert [p.iccid for p in client.list_profiles()] == [ICCID_A, ICCID_B]
    with pytest.raises(Es10ResultError, match="nothingToDelete"):
        client.memory_reset(["deleteFieldLoadedTestProfiles"])
    client.memory_reset(["deleteOperationalProfiles", "resetDefaultSmdpAddress"])
    assert client.list_profiles() == []
    assert client.get_configured_addresses().default_dp_address is None
    assert card.state.notifications == []  # a memory reset makes no notifications
    with pytest.raises(Es10ResultError, match="nothingToDelete"):
        client.memory_reset([])


def test_configured_addresses(client: Es10Client, isdr: CardChannel) -> None:
    """GetEuiccConfiguredAddresses (SGP.22 5.7.3) and SetDefaultDpAddress (5.7.4)."""
    assert es10(isdr, "BF3C00")[0].hex().upper() == "BF3C11" + "810F" + b"lpa.ds.gsma.com".hex(
        ).upper()
    assert es10(isdr, "BF3F0480027878")[0].hex() == "bf3f03800100"
    assert client.get_configured_addresses().default_dp_address == "xx"
    client.set_default_dp_address("")
    assert client.get_configured_addresses().default_dp_address is None


def test_challenge_rat_and_cancel_session(card: EuiccCard, client: Es10Client,
                                          isdr: CardChannel) -> None:
    """GetEUICCChallenge (SGP.22 5.7.7), GetRAT (5.7.22), CancelSession (5.7.14)."""
    first, second = client.get_euicc_challenge(), client.get_euicc_challenge()
    assert len(first) == 16 and first != second
    assert card.session.challenge == second
    assert client.get_rat() == list(RULES_AUTHORISATION_TABLE)
    assert es10(isdr, "BF4300")[0].hex().upper() == (
        "BF4315A013301180020560A1073005800" + "3EEEEEE" + "82020780")
    # No session: invalidTransactionId.
    tid = bytes(range(16))
    assert es10(isdr, "BF4115" "8010" + tid.hex() + "810101") == (
        bytes.fromhex("BF4103810105"), 0x9000)
    with pytest.raises(Es10ResultError, match="invalidTransactionId"):
        client.cancel_session(tid, 1)
    # (The signed receipt of a running session: tests/unit/test_euicc_download.py.)
    # Malformed: transaction id too long, unknown reason.
    assert es10(isdr, "BF4116" "8011" + "00" * 17 + "810101")[1] == 0x6A80
    assert es10(isdr, "BF4115" "8010" + tid.hex() + "810109")[1] == 0x6A80


@pytest.mark.parametrize(("command", "why"), [
    ("BF31", "truncated"),
    ("BF3108A0035A0101810100", "ICCID of one byte"),
    ("BF3111A00C5A0A" + "98" * 10 + "810101", "BOOLEAN 01 is not DER"),
    ("BF3111810100A00C5A0A" + "98" * 10, "fields out of order"),
    ("BF3107A00C5A0A" + "98" * 10, "length too short for its content"),
    ("BF310E" "A00C5A0A" + "98" * 10, "refreshFlag missing"),
    ("BF3014800200018101", "INTEGER not minimal"),
    ("BF300A80010180010181020000", "seqNumber twice"),
    ("BF3E00", "tag list missing"),
    ("BF3405820207C0", "BIT STRING with unused bits set"),
    ("BF99020000", "unknown ES10 command"),
    ("5A0100", "not an ES10 command"),
    ("BF3E035C015A00", "trailing byte"),
    ("BF3E83000003" "5C015A", "non-minimal length"),
    ("BF3E80" "5C015A0000", "indefinite length"),
    ("9F3E035C015A", "primitive command tag"),
])
def test_malformed_commands_answer_6a80(card: EuiccCard, isdr: CardChannel, command: str,
                                       why: str) -> None:
    """A malformed ES10 command in STORE DATA answers 6A80 (SGP.22 5.7.2)."""
    before = card.state.to_dict()
    assert es10(isdr, command) == (b"", 0x6A80), why
    assert card.state.to_dict() == before


# --- the LPA client against the card ---------------------------------------------------------

def test_client_reads_everything_with_small_blocks(card: EuiccCard, isdr: CardChannel) -> None:
    client = Es10Client(isdr, block_size=7)
    assert client.get_eid() == EID
    info1 = client.get_euicc_info1()
    assert info1.ci_pkids_verification == card.state.identity.ci_pkids
    assert client.get_euicc_info2().resources.free_nvm > 0
    assert [p.iccid for p in client.list_profiles(profile_class="test")] == [ICCID_T]
    with pytest.raises(ValueError, match="exactly one"):
        client.enable_profile()
    with pytest.raises(ValueError, match="at most one"):
        client.list_profiles(iccid=ICCID_A, profile_class="test")


def test_client_reports_status_words_and_garbage() -> None:
    class Canned:
        def __init__(self, answers: list[str]) -> None:
            self.answers = answers

        def transmit(self, apdu: bytes) -> Response:
            return Response.parse(bytes.fromhex(self.answers.pop(0)))

    with pytest.raises(Es10Error) as err:
        Es10Client(Canned(["6A80"])).get_eid()
    assert err.value.sw == 0x6A80
    with pytest.raises(Es10Error, match="malformed"):
        Es10Client(Canned(["BF3E0200009000"])).get_euicc_info1()
    with pytest.raises(Es10Error, match="malformed"):
        Es10Client(Canned(["BF31039000"])).enable_profile(iccid=ICCID_A)
    with pytest.raises(Es10Error, match="malformed"):
        Es10Client(Canned(["BF2D03A001FF9000"])).list_profiles()
    with pytest.raises(Es10ResultError, match="incorrectInput"):
        Es10Client(Canned(["BF2D038101019000"])).list_profiles()


# --- the codec alone ------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@given(st.builds(
    sgp22.ProfileInfo,
    iccid=st.sampled_from([ICCID_A, ICCID_B, None]),
    isdp_aid=st.none() | st.binary(min_size=5, max_size=16),
    state=st.sampled_from([None, *sgp22.PROFILE_STATES]),
    nickname=st.none() | _text, provider_name=st.none() | _text,
    profile_name=st.none() | _text,
    icon_type=st.none() | st.integers(0, 1), icon=st.none() | st.binary(max_size=40),
    profile_class=st.sampled_from(sgp22.PROFILE_CLASSES),
    notification_config=st.none() | st.lists(st.builds(
        sgp22.NotificationConfig,
        operations=st.frozensets(st.sampled_from(sgp22.NOTIFICATION_EVENTS)),
        address=_text), max_size=2).map(tuple),
    owner=st.none() | st.builds(sgp22.OperatorId, mcc_mnc=st.binary(min_size=3, max_size=3),
                                gid1=st.none() | st.binary(max_size=4)),
    ppr=st.none() | st.frozensets(st.sampled_from(sgp22.PPR_IDS)),
))
def test_profile_info_round_trip(info: sgp22.ProfileInfo) -> None:
    encoded = info.encode()
    assert sgp22.ProfileInfo.decode(tlv.decode_one(encoded)) == info
    assert tlv.decode_one(encoded).encode() == encoded


@given(st.builds(sgp22.NotificationMetadata, seq=st.integers(0, 2**31),
                 operation=st.sampled_from(sgp22.NOTIFICATION_EVENTS), address=_text,
                 iccid=st.sampled_from([ICCID_A, None])))
def test_notification_metadata_round_trip(meta: sgp22.NotificationMetadata) -> None:
    assert sgp22.NotificationMetadata.decode(tlv.decode_one(meta.encode())) == meta


def test_der_primitives() -> None:
    assert [tlv.encode_int(v).hex() for v in (0, 127, 128, 255, -1, -129)] == [
        "00", "7f", "0080", "00ff", "ff", "ff7f"]
    for bad in ("", "0001", "ff80", "00" * 9 + "01"):
        with pytest.raises(tlv.TlvError):
            tlv.decode_int(bytes.fromhex(bad))
    with pytest.raises(tlv.TlvError):
        tlv.decode_int(b"\x05", max_value=4)
    assert tlv.encode_bits([0, 1, 2]).hex() == "05e0"
    assert tlv.encode_bits([]).hex() == "00"
    assert tlv.encode_bits([8]).hex() == "070080"
    assert tlv.decode_bits(bytes.fromhex("0490")) == {0, 3}
    for bad in ("", "08ff", "01", "0401"):
        with pytest.raises(tlv.TlvError):
            tlv.decode_bits(bytes.fromhex(bad))
    assert tlv.decode_bool(b"\xff") and not tlv.decode_bool(b"\x00")
    with pytest.raises(tlv.TlvError):
        tlv.decode_bool(b"\x01")
    assert tlv.decode_tag_list(bytes.fromhex("5A9F70BF2F4F")) == [0x5A, 0x9F70, 0xBF2F, 0x4F]
    with pytest.raises(tlv.TlvError):
        tlv.decode_tag_list(b"\x9f")
    assert sgp22.plmn_bytes("262", "01").hex() == "62f210"
    assert sgp22.plmn_text(bytes.fromhex("62f210")) == "262-01"
    assert sgp22.plmn_text(sgp22.plmn_bytes("310", "260")) == "310-260"
    with pytest.raises(tlv.TlvError, match="twice"):
        sgp22.fields(tlv.decode_one(bytes.fromhex("3006800100800101")), (0x80,))
