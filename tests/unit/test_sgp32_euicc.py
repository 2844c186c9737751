"""The eUICC's SGP.32 functions: eIM configuration, eUICC packages (PSMOs and eCOs) with
the eIM's signature and replay counter, signed results; reached through STORE DATA as an
IPA reaches them.

References: SGP.32 v1.2 section 2.11.1 (EimConfigurationData, EuiccPackageRequest, the
eimSignature over euiccPackageSigned and the association token), 2.11.2.1
(EuiccPackageResult and its error codes), 5.9 (ES10b: AddInitialEim, LoadEuiccPackage,
GetEimConfigurationData, GetCerts, RetrieveNotificationsList).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator.euicc import CardState, EuiccCard, ProfileRecord
from mps_esim.crypto.errors import SignatureError
from mps_esim.ipa import card as ipa_card
from mps_esim.lpa.es10 import Es10Client, Es10Error, Es10ResultError
from mps_esim.sgp32 import EimConfig, EuiccPackageRequest, EuiccPackageSigned, Operation
from mps_esim.sgp32.result import EuiccPackageResult
from mps_wire.identifiers import make_eid, make_iccid
from tests.rsp_support import IsdrChannel

EID = make_eid("890490320000000000000000000777")
OTHER_EID = make_eid("890490320000000000000000000778")
ICCID_A = make_iccid("894900000000000071")
ICCID_B = make_iccid("894900000000000072")
SMDP = "smdp.example.test"
EIM_ID = "eim.example.test"


def eim_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return eim_key()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    profiles = [ProfileRecord(iccid=ICCID_A, imsi="262011234500071", enabled=True,
                              smdp_address=SMDP),
                ProfileRecord(iccid=ICCID_B, imsi="262011234500072", enabled=False,
                              isdp_aid=bytes.fromhex("A0000005591010FFFFFFFF8900001200"),
                              smdp_address=SMDP)]
    state = CardState.new(eid=EID, profiles=profiles)
    file = tmp_path / "card.json"
    state.save(file)
    return file


def client_for(path: Path) -> tuple[EuiccCard, Es10Client]:
    card = EuiccCard.open(path)
    return card, Es10Client(IsdrChannel(card))


def config(key: ec.EllipticCurvePrivateKey, *, eim_id: str = EIM_ID, counter: int = 0,
           token: int | None = None) -> EimConfig:
    return EimConfig(eim_id, fqdn="127.0.0.1:8443", id_type=2, counter=counter,
                     association_token=token,
                     protocols=frozenset({"eimRetrieveHttps"})).with_key(key.public_key())


def package(key: ec.EllipticCurvePrivateKey, counter: int, *ops: Operation,
            eid: str = EID, eim_id: str = EIM_ID, token: int | None = None) -> bytes:
    signed = EuiccPackageSigned(eim_id, eid, counter, ops,
                                transaction_id=counter.to_bytes(4, "big"))
    return EuiccPackageRequest.sign(signed, key, association_token=token).encode()


def euicc_key(path: Path) -> ec.EllipticCurvePublicKey:
    _card, client = client_for(path)
    cert = x509.load_der_x509_certificate(ipa_card.get_certs(client).euicc)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public


def associated(path: Path, key: ec.EllipticCurvePrivateKey) -> Es10Client:
    _card, client = client_for(path)
    assert ipa_card.add_initial_eim(client, [config(key)]) == [None]
    return client


# --- eIM configuration (SGP.32 5.9, AddInitialEim / GetEimConfigurationData) ---------------------

def test_add_initial_eim_is_kept_across_restarts(path: Path, key: ec.EllipticCurvePrivateKey
                                                 ) -> None:
    associated(path, key)
    _card, client = client_for(path)  # a new card object reads the state file again
    (stored,) = ipa_card.get_eim_configuration(client)
    assert (stored.eim_id, stored.fqdn, stored.counter) == (EIM_ID, "127.0.0.1:8443", 0)
    assert stored.protocols == {"eimRetrieveHttps"}
    assert stored.verification_key().public_numbers() == key.public_key().public_numbers()
    assert ipa_card.get_eim_configuration(client, "no.such.eim") == []


def test_add_initial_eim_only_while_no_eim_is_associated(path: Path,
                                                         key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    before = path.read_bytes()
    with pytest.raises(Es10ResultError) as refused:
        ipa_card.add_initial_eim(client, [config(eim_key(), eim_id="second")])
    assert refused.value.reason == "associatedEimAlreadyExists"
    assert path.read_bytes() == before


@pytest.mark.parametrize(("token", "counter", "reason"), [
    (5, 0, "invalidAssociationToken"),      # only -1 (make one) may be sent
    (None, -1, "counterValueOutOfRange"),
])
def test_add_initial_eim_refusals(path: Path, key: ec.EllipticCurvePrivateKey,
                                  token: int | None, counter: int, reason: str) -> None:
    _card, client = client_for(path)
    with pytest.raises(Es10ResultError) as refused:
        ipa_card.add_initial_eim(client, [config(key, token=token, counter=counter)])
    assert refused.value.reason == reason
    assert ipa_card.get_eim_configuration(client) == []


def test_association_token_asked_for_is_made_and_binds_the_signature(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _card, client = client_for(path)
    (token,) = ipa_card.add_initial_eim(client, [config(key, token=-1)])
    assert token == 1
    # SGP.32 2.11.1.1: the eimSignature covers euiccPackageSigned and the associationToken.
    _raw, refused = ipa_card.load_euicc_package(
        client, package(key, 1, Operation("listEim"), token=None))
    assert refused.kind == "unsigned"
    _raw, result = ipa_card.load_euicc_package(
        client, package(key, 2, Operation("listEim"), token=token))
    assert result.kind == "result"
    result.verify(euicc_key(path), token)


# --- eUICC packages: PSMOs, signature, counter (SGP.32 2.11.1.1, 2.11.2.1, 5.9) ---------------

def test_psmo_disable_enable_delete_round_with_notifications(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    public = euicc_key(path)
    raw, result = ipa_card.load_euicc_package(client, package(
        key, 1, Operation("disable", iccid=ICCID_A), Operation("enable", iccid=ICCID_B)))
    assert [(r.kind, r.name) for r in result.results] == [("disable", "ok"), ("enable", "ok")]
    assert (result.eim_id, result.counter) == (EIM_ID, 1)
    assert result.transaction_id == bytes.fromhex("00000001")
    result.verify(public, None)
    assert EuiccPackageResult.decode(raw) == result
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 2, Operation("delete", iccid=ICCID_A), Operation("listProfileInfo")))
    assert [(r.kind, r.name) for r in result.results] == [("delete", "ok"),
                                                          ("listProfileInfo", "ok")]
    state = CardState.load(path)
    assert [(p.iccid, p.enabled) for p in state.profiles] == [(ICCID_B, True)]
    assert state.iot.find(EIM_ID).counter == 2  # type: ignore[union-attr]
    # Every change made the notification its profile asks for, for the SM-DP+.
    assert [n.operation for n in client.list_notifications()] == [
        "disable", "enable", "delete"]
    # The results wait on the card until the eIM has them (RemoveNotificationFromList).
    pending = ipa_card.package_results(client)
    assert [EuiccPackageResult.decode(p).seq for p in pending] == [r for r, _ in
                                                                    state.iot.results]
    client.notification_sent(state.iot.results[0][0])
    assert len(ipa_card.package_results(client)) == 1


def test_a_failing_psmo_ends_the_package(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 1, Operation("delete", iccid=ICCID_A), Operation("disable", iccid=ICCID_A)))
    assert [(r.kind, r.name) for r in result.results] == [
        ("delete", "profileNotInDisabledState")]
    assert CardState.load(path).iot.find(EIM_ID).counter == 1  # type: ignore[union-attr]


def _refused(path: Path, client: Es10Client, data: bytes) -> EuiccPackageResult:
    before = (path.read_bytes(), client.list_profiles())
    _raw, result = ipa_card.load_euicc_package(client, data)
    assert (path.read_bytes(), client.list_profiles()) == before, "the refusal changed the card"
    return result


def test_wrong_key_is_refused_unsigned_and_changes_nothing(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    result = _refused(path, client, package(eim_key(), 1, Operation("disable", iccid=ICCID_A)))
    assert (result.kind, result.error_name, result.eim_id) == ("unsigned", "undefinedError",
                                                                EIM_ID)
    with pytest.raises(SignatureError):
        result.verify(euicc_key(path), None)


def test_unknown_eim_is_refused_unsigned(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    result = _refused(path, client, package(key, 1, Operation("listEim"), eim_id="stranger"))
    assert (result.kind, result.eim_id) == ("unsigned", "stranger")


def test_altered_package_is_refused_and_changes_nothing(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    request = EuiccPackageRequest.decode(package(key, 1, Operation("disable", iccid=ICCID_A)))
    # disable (A4) becomes delete (A5): still valid DER, no longer what the eIM signed.
    swapped = request.signed_der.replace(bytes.fromhex("A40C5A0A"), bytes.fromhex("A50C5A0A"))
    assert swapped != request.signed_der
    altered = EuiccPackageRequest(request.signed, swapped, request.signature).encode()
    result = _refused(path, client, altered)
    assert (result.kind, result.error_name) == ("unsigned", "undefinedError")


def test_replayed_counter_is_refused_signed_and_changes_nothing(
        path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    first = package(key, 5, Operation("disable", iccid=ICCID_A))
    ipa_card.load_euicc_package(client, first)
    for replay in (first, package(key, 5, Operation("enable", iccid=ICCID_A)),
                   package(key, 4, Operation("enable", iccid=ICCID_A))):
        result = _refused(path, client, replay)
        assert (result.kind, result.error_code, result.error_name) == ("error", 4,
                                                                       "replayError")
        result.verify(euicc_key(path), None)


@pytest.mark.parametrize(("eid", "counter", "name"), [
    (OTHER_EID, 1, "invalidEid"),
    (EID, 0x80000000, "counterValueOutOfRange"),
])
def test_signed_package_refusals(path: Path, key: ec.EllipticCurvePrivateKey,
                                 eid: str, counter: int, name: str) -> None:
    client = associated(path, key)
    result = _refused(path, client, package(key, counter, Operation("listEim"), eid=eid))
    assert (result.kind, result.error_name) == ("error", name)


def test_nothing_partial_when_the_result_cannot_be_stored(
        path: Path, key: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    card, client = client_for(path)
    ipa_card.add_initial_eim(client, [config(key)])
    before = path.read_bytes()

    def full(_state: CardState, _path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CardState, "save", full)
    with pytest.raises(Es10Error) as failed:
        ipa_card.load_euicc_package(client, package(key, 1, Operation("disable", iccid=ICCID_A)))
    monkeypatch.undo()
    assert failed.value.sw == 0x6581
    assert path.read_bytes() == before
    assert card.state.enabled_profile().iccid == ICCID_A  # type: ignore[union-attr]
    assert card.state.iot.find(EIM_ID).counter == 0  # type: ignore[union-attr]


# --- eCOs (SGP.32 2.11.1.1: addEim, updateEim, deleteEim, listEim) ----------------------------

def test_ecos_add_update_list_delete(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    client = associated(path, key)
    second = eim_key()
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 1, Operation("addEim", eim=config(second, eim_id="second", token=-1)),
        Operation("listEim")))
    add, listing = result.results
    assert add.code is None and add.element.hex().upper() == "A803840101"
    assert b"second" in listing.element and EIM_ID.encode() in listing.element
    # The new eIM signs with its own key, bound to its association token.
    _raw, result = ipa_card.load_euicc_package(client, package(
        second, 1, Operation("updateEim", eim=EimConfig("second", fqdn="eim2.test")),
        eim_id="second", token=1))
    assert [r.name for r in result.results] == ["ok"]
    (updated,) = ipa_card.get_eim_configuration(client, "second")
    assert updated.fqdn == "eim2.test" and updated.public_key is not None
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 2, Operation("deleteEim", eim_id="second"), Operation("deleteEim", eim_id="x")))
    assert [r.name for r in result.results] == ["ok", "eimNotFound"]
    assert [e.eim_id for e in ipa_card.get_eim_configuration(client)] == [EIM_ID]
    _raw, result = ipa_card.load_euicc_package(client, package(
        key, 3, Operation("addEim", eim=config(key))))
    assert [r.name for r in result.results] == ["associatedEimAlreadyExists"]


def test_state_file_keeps_the_iot_part_readable(path: Path, key: ec.EllipticCurvePrivateKey
                                               ) -> None:
    associated(path, key)
    data = json.loads(path.read_text())
    assert len(data["iot"]["eims"]) == 1
    data["iot"]["eims"].append(data["iot"]["eims"][0])
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match="share an eimId"):
        CardState.load(path)


def test_euicc_info2_names_the_ipa_mode_and_iot_version(path: Path) -> None:
    _card, client = client_for(path)
    raw = client.command(bytes.fromhex("BF2200"))
    # ipaMode [16] = ipad (0); iotSpecificInfo [20] { iotVersion [0] { VersionType 1.2.0 } }
    assert raw.endswith(bytes.fromhex("900100" "B407" "A005" "0403010200"))
    assert client.get_euicc_info2().svn  # the SGP.22 part still decodes


def test_the_card_dispatches_every_es10_function_as_the_iot_module_does() -> None:
    # The card's table (isdr) loads the SGP.32 functions lazily; it must name the same ones.
    from lpa_emulator.euicc import iot, isdr

    assert set(isdr.HANDLERS) == set(iot.ISDR_HANDLERS)
    assert set(iot.HANDLERS) - set(isdr.EXTENDED) == isdr.SGP32_TAGS
    for tag, handler in iot.ISDR_HANDLERS.items():
        if tag not in isdr.SGP32_TAGS:
            assert isdr.HANDLERS[tag] is handler
