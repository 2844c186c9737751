"""The eUICC's identity: the built-in test chain, PKI directories and single files in PEM or
DER, what a state file keeps of them, and the euicc command's identity options."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lpa_emulator import pki as test_pki
from lpa_emulator.euicc import CardState, EuiccCard, StateError
from lpa_emulator.euicc import cli as euicc_cli
from lpa_emulator.euicc import identity as ident
from lpa_emulator.euicc.es10 import euicc_info1
from mps_esim.crypto import certs
from mps_wire.identifiers import make_eid

EID = make_eid("890490320000000000000000000888")
EID2 = make_eid("890490320000000000000000000889")
OTHER_IIN_EID = make_eid("890440000000000000000000000001")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PKI directory with a CI of its own, an EUM and one eUICC, as other tools write it."""
    directory = tmp_path_factory.mktemp("pki")
    ci = test_pki.make_ci(name="Other CI")
    eum = test_pki.make_eum(ci, eid_prefixes=(EID[:8],))
    issuer = ident.Issuer(eum.cert, eum.key, (ci.cert,))
    ident.write_pki_dir(directory, issuer, [issuer.issue(EID)], ci_keys=[ci.key])
    return directory


def test_generated_chain_follows_the_certificate_profiles() -> None:
    identity = ident.generate(EID)
    identity.check(EID)
    cert, eum = identity.certificate, identity.eum_certificate
    (ci,) = identity.ci_certificates
    assert identity.eid == EID
    assert cert.not_valid_after_utc.year == 9999
    assert cert.issuer == eum.subject and eum.issuer == ci.subject
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [certs.ROLE_EUICC]
    constraints = eum.extensions.get_extension_for_class(x509.NameConstraints).value
    (permitted,) = constraints.permitted_subtrees or []
    assert isinstance(permitted, x509.DirectoryName)
    assert permitted.value.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == EID[:8]
    basic = eum.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0
    assert identity.ci_pkids == (ident.subject_key_id(ci),)
    # Every card chains to the same built-in CI; another issuer number gets its own EUM.
    other = ident.generate(OTHER_IIN_EID)
    assert other.ci_pkids == identity.ci_pkids
    assert other.eum_certificate.subject == eum.subject
    assert other.eum_certificate != eum
    other.check(OTHER_IIN_EID)


def test_signature_is_raw_r_and_s() -> None:
    identity = ident.generate(EID)
    signature = identity.sign(b"data")
    assert len(signature) == 64
    assert identity.sign(b"data") != signature  # ECDSA is randomised


def test_pki_directory_round_trip_through_the_state(pki: Path, tmp_path: Path) -> None:
    identity = ident.load_pki_dir(pki, EID)
    identity.check(EID)
    ci = ident.load_certificate(pki / "ci.pem")
    assert identity.ci_pkids == (ident.subject_key_id(ci),)
    state = CardState.new(eid=EID, identity=identity)
    assert euicc_info1(state).ci_pkids_verification == identity.ci_pkids
    path = tmp_path / "card.json"
    state.save(path)
    saved = json.loads(path.read_text())["identity"]
    # Files are referred to, not copied.
    assert saved["certificate"] == {"path": str((pki / f"euicc-{EID}.pem").resolve())}
    assert saved["private_key"] == {"path": str((pki / f"euicc-{EID}.key").resolve())}
    assert CardState.load(path).identity == identity
    # Without an EID the directory's single eUICC is taken.
    assert ident.load_pki_dir(pki, None) == identity


def test_pki_directory_issues_for_a_new_eid_with_the_eum_key(pki: Path) -> None:
    identity = ident.load_pki_dir(pki, EID2)
    identity.check(EID2)
    assert identity.eid == EID2
    assert "certificate" not in identity.sources  # kept inline in the state
    assert identity.sources["eum_certificate"] == ((pki / "eum.pem").resolve(),)


def test_der_files_and_a_pki_without_ci(tmp_path: Path) -> None:
    source = ident.generate(EID)
    (tmp_path / "euicc.der").write_bytes(source.certificate_der)
    (tmp_path / "euicc.key").write_bytes(source.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    (tmp_path / "eum.der").write_bytes(source.eum_certificate_der)
    loaded = ident.load_files(certificate=tmp_path / "euicc.der",
                              private_key=tmp_path / "euicc.key",
                              eum_certificate=tmp_path / "eum.der")
    loaded.check(EID)
    # With no CI certificate the CI key id comes from CERT.EUM's authority key id.
    assert loaded.ci_pkids == source.ci_pkids
    assert ident.load_pki_dir(tmp_path, None).eid == EID


def test_a_passed_check_holds_for_that_identity_only(pki: Path) -> None:
    # Every change to a card's state copies it, and each copy checks its identity: the
    # signatures of one immutable identity are verified once, but a copy with another part
    # is verified again, and a failed check is not remembered as passed.
    good = ident.load_pki_dir(pki, EID)
    stranger = ident.generate(EID)
    good.check(EID)
    good.check(EID)
    swapped = dataclasses.replace(good, eum_certificate=stranger.eum_certificate)
    with pytest.raises(ident.IdentityError, match=r"not signed by CERT\.EUM"):
        swapped.check(EID)
    with pytest.raises(ident.IdentityError, match=r"not signed by CERT\.EUM"):
        swapped.check(EID)
    with pytest.raises(ident.IdentityError, match=f"not {EID2}"):
        good.check(EID2)


def test_mismatches_are_named(pki: Path, tmp_path: Path) -> None:
    good = ident.load_pki_dir(pki, EID)
    stranger = ident.generate(EID)
    with pytest.raises(ident.IdentityError, match="does not match"):
        ident.EuiccIdentity(good.certificate, stranger.private_key, good.eum_certificate).check(
            EID)
    with pytest.raises(ident.IdentityError, match=r"not signed by CERT\.EUM"):
        ident.EuiccIdentity(good.certificate, good.private_key,
                            stranger.eum_certificate).check(EID)
    with pytest.raises(ident.IdentityError, match="any of the CI"):
        ident.EuiccIdentity(good.certificate, good.private_key, good.eum_certificate,
                            stranger.ci_certificates).check(EID)
    with pytest.raises(ident.IdentityError, match=f"not {EID2}"):
        good.check(EID2)
    with pytest.raises(ident.IdentityError, match="not a certificate"):
        ident.load_certificate(pki / f"euicc-{EID}.key")
    with pytest.raises(ident.IdentityError, match="not an elliptic-curve key"):
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = tmp_path / "ed.key"
        key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        ident.load_private_key(key)
    # An EC key on a curve SGP.22 does not use (SGP.22 2.6.5: P-256 or brainpoolP256r1).
    p384 = tmp_path / "p384.key"
    p384.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ident.IdentityError, match="neither a NIST P-256 nor a brainpoolP256r1"):
        ident.load_private_key(p384)
    with pytest.raises(ident.IdentityError, match=r"no eum\.pem"):
        ident.load_pki_dir(tmp_path, EID)
    with pytest.raises(ident.IdentityError, match="does not exist"):
        ident.load_pki_dir(tmp_path / "nowhere", EID)


def test_state_with_missing_identity_files_is_refused(pki: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pki"
    copy.mkdir()
    for f in pki.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    path = tmp_path / "card.json"
    CardState.new(eid=EID, identity=ident.load_pki_dir(copy, EID)).save(path)
    (copy / f"euicc-{EID}.key").unlink()
    with pytest.raises(StateError, match="cannot read") as err:
        EuiccCard.open(path)
    assert str(path) in str(err.value)


def test_format_1_state_gets_an_identity_once(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": 1, "eid": EID, "profiles": []}))
    first = EuiccCard.open(path)
    assert json.loads(path.read_text())["format"] == 2
    assert EuiccCard.open(path).state.identity == first.state.identity


def test_cli_identity_options(pki: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "c.json"
    assert euicc_cli.main(["--state", str(state), "--pki", str(pki)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["eid"] == EID  # taken from the directory's only eUICC
    ci = ident.load_certificate(pki / "ci.pem")
    assert shown["identity"]["ci_pkids"] == [ident.subject_key_id(ci).hex().upper()]
    assert shown["identity"]["files"]["certificate"] == [str((pki / f"euicc-{EID}.pem")
                                                             .resolve())]
    # An existing generated card rebinds to files issued for its EID.
    other = tmp_path / "d.json"
    assert euicc_cli.main(["--state", str(other), "--eid", EID2]) == 0
    capsys.readouterr()
    assert euicc_cli.main(["--state", str(other), "--pki", str(pki)]) == 0
    assert json.loads(capsys.readouterr().out)["identity"]["ci_pkids"] == shown["identity"][
        "ci_pkids"]
    # Single files.
    third = tmp_path / "e.json"
    assert euicc_cli.main(["--state", str(third), "--cert", str(pki / f"euicc-{EID}.pem"),
                           "--key", str(pki / f"euicc-{EID}.key"),
                           "--eum-cert", str(pki / "eum.pem"),
                           "--ci-cert", str(pki / "ci.pem")]) == 0
    assert json.loads(capsys.readouterr().out)["eid"] == EID
    # Files of another EID: refused, nothing written.
    fourth = tmp_path / "f.json"
    assert euicc_cli.main(["--state", str(fourth), "--eid", EID2, "--cert",
                           str(pki / f"euicc-{EID}.pem"), "--key", str(pki / f"euicc-{EID}.key"),
                           "--eum-cert", str(pki / "eum.pem")]) == 1
    assert "EID" in capsys.readouterr().err and not fourth.exists()


@pytest.mark.parametrize("args", [
    ["--cert", "x.pem"],
    ["--pki", "d", "--cert", "a", "--key", "b", "--eum-cert", "c"],
    ["--ci-cert", "ci.pem"],
    ["--smdp-address", "dp.example"],
])
def test_cli_identity_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   args: list[str]) -> None:
    assert euicc_cli.main(["--state", str(tmp_path / "x.json"), *args]) == 2
    assert capsys.readouterr().err.strip()
