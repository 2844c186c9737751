"""Both curves of SGP.22 (2.6.5): NIST P-256 and brainpoolP256r1 for the CI, EUM, eUICC,
DPauth and DPpb certificates and the one-time ECKA keys, chosen per CI from the eUICC's
euiccCiPKIdListForVerification and euiccCiPKIdListForSigning (SGP.22 3.1.2, 5.6.1), over
HTTPS with real crypto.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator import cli as emu_cli
from lpa_emulator import pki
from lpa_emulator.euicc import CardState, EuiccCard, EuiccIdentity
from lpa_emulator.euicc.identity import load_certificate
from lpa_emulator.smdp.credentials import SmdpCredentials
from mps_esim.crypto import certs, ecka
from mps_esim.lpa.download import ServerRefusedError
from mps_esim.simfiles import ISDR_AID
from mps_wire.identifiers import make_eid
from tests.rsp_support import card_for, new_subscription, served_smdp

EID_A = make_eid("890490320000000000000000077001")
EID_B = make_eid("890490320000000000000000077002")


@pytest.fixture
def curves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The curve of every one-time ECKA key made (by the card and by the SM-DP+)."""
    made: list[str] = []
    original = ecka.new_key

    def recording(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
        key = original(curve)
        made.append(key.curve.name)
        return key

    monkeypatch.setattr(ecka, "new_key", recording)
    yield made


def _download(pki_dir: Path, tmp_path: Path, card: EuiccCard) -> str:
    with served_smdp(pki_dir, tmp_path / "smdp") as served:
        iccid, imsi = new_subscription()
        order = served.store.add(iccid=iccid, imsi=imsi)
        result = served.downloader(card).download(served.address, order.matching_id)
        assert result.iccid == iccid and result.notification_sent
        assert card.state.find_profile(iccid=iccid) is not None
        return iccid


def test_brainpool_pki_downloads_end_to_end(tmp_path: Path, curves: list[str]) -> None:
    pki.init_pki(tmp_path / "pki", eids=[EID_A], curve="brainpool")
    for name in ("ci", "eum", "dpauth", "dppb", f"euicc-{EID_A}"):
        key = load_certificate(tmp_path / "pki" / f"{name}.pem").public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "brainpoolP256r1", name
    card = card_for(tmp_path / "pki", EID_A)
    _download(tmp_path / "pki", tmp_path, card)
    # otSK.EUICC and otSK.DP, both on CERT.DPpb's curve.
    assert curves == ["brainpoolP256r1", "brainpoolP256r1"]


def _brainpool_card(pki_dir: Path, eid: str) -> EuiccCard:
    """A card whose own chain is on brainpoolP256r1 and which trusts both CIs."""
    eum = pki.Credential.load(pki_dir / "eum-brainpool.pem", pki_dir / "eum-brainpool.key")
    euicc = pki.make_euicc(eum, eid)
    cis = (load_certificate(pki_dir / "ci.pem"), load_certificate(pki_dir / "ci-brainpool.pem"))
    identity = EuiccIdentity(euicc.cert, euicc.key, eum.cert, cis)
    return EuiccCard.from_state(CardState.new(eid=eid, profiles=[], identity=identity,
                                              isdr_aid=ISDR_AID), None)


def test_both_curves_the_smdp_chooses_per_ci(tmp_path: Path, curves: list[str]) -> None:
    pki_dir = tmp_path / "pki"
    pki.init_pki(pki_dir, eids=[EID_A], curve="both")
    nist_card = card_for(pki_dir, EID_A)
    bp_card = _brainpool_card(pki_dir, EID_B)
    # Both cards verify under both CIs; each signs under its own chain's CI.
    nist_info = nist_card.state.identity
    assert nist_info is not None and len(nist_info.ci_pkids) == 2
    _download(pki_dir, tmp_path / "a", nist_card)
    _download(pki_dir, tmp_path / "b", bp_card)
    assert curves == ["secp256r1"] * 2 + ["brainpoolP256r1"] * 2


def test_selection_follows_the_euicc_lists(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    pki.init_pki(pki_dir, euicc_count=0, curve="both")
    creds = SmdpCredentials.from_dir(pki_dir)
    nist, bp = (certs.subject_key_id(load_certificate(pki_dir / f"{n}.pem"))
                for n in ("ci", "ci-brainpool"))
    assert nist is not None and bp is not None
    chosen = creds.select([bp, nist], [bp])
    assert not isinstance(chosen, str)
    keys, to_be_used = chosen
    assert (keys.ci_pkid, to_be_used) == (bp, bp)
    assert keys.dppb.key.curve.name == "brainpoolP256r1"
    # Verifies only NIST, signs only brainpool: DPauth under NIST, the card signs under BP.
    chosen = creds.select([nist], [bp])
    assert not isinstance(chosen, str) and (chosen[0].ci_pkid, chosen[1]) == (nist, bp)
    assert creds.select([nist, bp], [b"\x01" * 20]) == "signing"
    assert creds.select([b"\x01" * 20], [nist]) == "verification"


def test_a_card_of_an_unknown_ci_is_refused(tmp_path: Path) -> None:
    """A NIST-only SM-DP+ and a card of a brainpool CI alone: InitiateAuthentication answers
    8.8.2 / 3.1, security configuration not supported (SGP.22 5.6.1)."""
    pki.init_pki(tmp_path / "nist", euicc_count=0)
    pki.init_pki(tmp_path / "bp", eids=[EID_A], curve="brainpool")
    card = card_for(tmp_path / "bp", EID_A)
    with served_smdp(tmp_path / "nist", tmp_path / "smdp") as served:
        iccid, imsi = new_subscription()
        order = served.store.add(iccid=iccid, imsi=imsi)
        with pytest.raises(ServerRefusedError) as exc:
            served.downloader(card).download(served.address, order.matching_id)
        assert (exc.value.subject, exc.value.reason) == ("8.8.2", "3.1")
    assert card.state.profiles == []


@pytest.mark.parametrize(("curve", "files"), [
    ("nist", {"ci.pem": "secp256r1"}),
    ("brainpool", {"ci.pem": "brainpoolP256r1", "dppb.pem": "brainpoolP256r1"}),
    ("both", {"ci.pem": "secp256r1", "ci-brainpool.pem": "brainpoolP256r1",
              "dpauth-brainpool.pem": "brainpoolP256r1", "eum-brainpool.pem": "brainpoolP256r1"}),
])
def test_pki_init_curve_option(tmp_path: Path, curve: str, files: dict[str, str],
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert emu_cli.main(["pki", "init", str(tmp_path), "--curve", curve, "--json"]) == 0
    capsys.readouterr()
    for name, expected in files.items():
        key = load_certificate(tmp_path / name).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == expected
    assert (tmp_path / "ci-brainpool.pem").exists() == (curve == "both")
    assert emu_cli.main(["pki", "init", str(tmp_path / "x"), "--curve", "p384"]) == 2
    assert "invalid choice" in capsys.readouterr().err
