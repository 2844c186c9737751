"""The test PKI (mps-emu pki) and the RSP certificate checks every role applies."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lpa_emulator import pki
from lpa_emulator.cli import main as emu_main
from mps_esim.crypto import certs
from mps_esim.crypto.errors import CertificateError, CertificateProblem
from mps_wire.identifiers import make_eid

EID = make_eid("890490320000000000000000004242")
OTHER_RANGE_EID = make_eid("890440000000000000000000004242")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_pki(root, eids=[EID])
    return root


def test_init_writes_every_role(pki_dir: Path) -> None:
    for name in (pki.CI_CERT, pki.CI_KEY, pki.EUM_CERT, pki.EUM_KEY, pki.DPAUTH_CERT,
                 pki.DPAUTH_KEY, pki.DPPB_CERT, pki.DPPB_KEY, pki.TLS_CERT, pki.TLS_KEY,
                 pki.euicc_cert_name(EID), pki.euicc_key_name(EID)):
        assert (pki_dir / name).is_file(), name
    for key in pki_dir.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_all_keys_are_p256(pki_dir: Path) -> None:
    for path in pki_dir.glob("*.key"):
        assert pki.load_private_key(path).curve.name == "secp256r1"


def test_roles_and_chains(pki_dir: Path) -> None:
    ci = pki.load_certificate(pki_dir / pki.CI_CERT)
    eum = pki.load_certificate(pki_dir / pki.EUM_CERT)
    euicc = pki.load_euicc(pki_dir, EID).cert
    assert certs.has_role(ci, certs.ROLE_CI)
    assert certs.has_role(eum, certs.ROLE_EUM)
    assert certs.has_role(euicc, certs.ROLE_EUICC)
    assert certs.verify_euicc_chain(euicc, eum, [ci], at=certs.now()) == EID
    for role, name in ((certs.ROLE_DP_AUTH, pki.DPAUTH_CERT), (certs.ROLE_DP_PB, pki.DPPB_CERT)):
        cert = pki.load_certificate(pki_dir / name)
        assert certs.verify_server_certificate(cert, [ci], role=role, at=certs.now()) == ci
        assert certs.server_oid(cert) == pki.DEFAULT_SMDP_OID


def test_euicc_subject_carries_the_eid(pki_dir: Path) -> None:
    euicc = pki.load_euicc(pki_dir, EID).cert
    serial = euicc.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert serial == EID
    assert euicc.not_valid_after_utc.year == 9999


def test_eum_name_constraint(pki_dir: Path) -> None:
    eum = pki.load_certificate(pki_dir / pki.EUM_CERT)
    ext = eum.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    assert certs.permitted_eid_ranges(eum) == [(pki.DEFAULT_EUM_ORG, pki.DEFAULT_EID_PREFIX)]


def test_tls_certificate_names_the_address(pki_dir: Path) -> None:
    tls = pki.load_certificate(pki_dir / pki.TLS_CERT)
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert certs.has_role(tls, certs.ROLE_DP_TLS)


def test_eid_outside_the_eum_range_is_refused(pki_dir: Path) -> None:
    eum = pki.Credential.load(pki_dir / pki.EUM_CERT, pki_dir / pki.EUM_KEY)
    stray = pki.make_euicc(eum, OTHER_RANGE_EID)
    ci = pki.load_certificate(pki_dir / pki.CI_CERT)
    with pytest.raises(CertificateError) as info:
        certs.verify_euicc_chain(stray.cert, eum.cert, [ci], at=certs.now())
    assert info.value.problem is CertificateProblem.EID_OUT_OF_RANGE
    with pytest.raises(pki.PkiError, match="outside"):
        pki.issue_euicc(pki_dir, OTHER_RANGE_EID)


def test_eum_of_another_organisation_is_refused(pki_dir: Path) -> None:
    ci = pki.Credential.load(pki_dir / pki.CI_CERT, pki_dir / pki.CI_KEY)
    eum = pki.make_eum(ci, org="Other EUM")
    real_eum = pki.Credential.load(pki_dir / pki.EUM_CERT, pki_dir / pki.EUM_KEY)
    # An eUICC of the real EUM's organisation, checked against a range meant for "Other EUM".
    euicc = pki.make_euicc(real_eum, EID)
    with pytest.raises(CertificateError):
        certs.check_eid_range(euicc.cert, eum.cert)


def test_unknown_ci_is_refused(pki_dir: Path, tmp_path: Path) -> None:
    other = pki.init_pki(tmp_path / "other", eids=[EID])
    other_ci = pki.load_certificate(other.directory / pki.CI_CERT)
    eum = pki.load_certificate(pki_dir / pki.EUM_CERT)
    euicc = pki.load_euicc(pki_dir, EID).cert
    with pytest.raises(CertificateError) as info:
        certs.verify_euicc_chain(euicc, eum, [other_ci], at=certs.now())
    assert info.value.problem is CertificateProblem.UNKNOWN_CI
    dpauth = pki.load_certificate(pki_dir / pki.DPAUTH_CERT)
    with pytest.raises(CertificateError) as info:
        certs.verify_server_certificate(dpauth, [other_ci], role=certs.ROLE_DP_AUTH)
    assert info.value.problem is CertificateProblem.UNKNOWN_CI


def test_wrong_role_is_refused(pki_dir: Path) -> None:
    ci = pki.load_certificate(pki_dir / pki.CI_CERT)
    dppb = pki.load_certificate(pki_dir / pki.DPPB_CERT)
    with pytest.raises(CertificateError, match="role"):
        certs.verify_server_certificate(dppb, [ci], role=certs.ROLE_DP_AUTH)


def test_forged_signature_is_refused(pki_dir: Path) -> None:
    ci = pki.load_certificate(pki_dir / pki.CI_CERT)
    eum = pki.load_certificate(pki_dir / pki.EUM_CERT)
    # Same names and key ids, signed by a stranger's key.
    stranger = ec.generate_private_key(ec.SECP256R1())
    real = pki.load_euicc(pki_dir, EID).cert
    builder = x509.CertificateBuilder(
        issuer_name=real.issuer, subject_name=real.subject, public_key=real.public_key(),
        serial_number=real.serial_number, not_valid_before=real.not_valid_before_utc,
        not_valid_after=real.not_valid_after_utc, extensions=list(real.extensions))
    forged = builder.sign(stranger, hashes.SHA256())
    with pytest.raises(CertificateError) as info:
        certs.verify_euicc_chain(forged, eum, [ci], at=certs.now())
    assert info.value.role == "euicc"


def test_expired_certificate_is_refused(pki_dir: Path) -> None:
    ci = pki.load_certificate(pki_dir / pki.CI_CERT)
    dpauth = pki.load_certificate(pki_dir / pki.DPAUTH_CERT)
    later = certs.now() + datetime.timedelta(days=365 * 50)
    with pytest.raises(CertificateError) as info:
        certs.verify_server_certificate(dpauth, [ci], role=certs.ROLE_DP_AUTH, at=later)
    assert info.value.problem is CertificateProblem.EXPIRED
    # Without a clock (an eUICC) validity is not checked.
    certs.verify_server_certificate(dpauth, [ci], role=certs.ROLE_DP_AUTH, at=None)


def test_der_files_load_like_pem(pki_dir: Path, tmp_path: Path) -> None:
    cred = pki.Credential.load(pki_dir / pki.DPAUTH_CERT, pki_dir / pki.DPAUTH_KEY)
    (tmp_path / "c.der").write_bytes(cred.cert_der)
    (tmp_path / "k.der").write_bytes(cred.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    again = pki.Credential.load(tmp_path / "c.der", tmp_path / "k.der")
    assert again.cert == cred.cert


def test_key_of_another_certificate_is_refused(pki_dir: Path) -> None:
    with pytest.raises(pki.PkiError, match="does not belong"):
        pki.Credential.load(pki_dir / pki.DPAUTH_CERT, pki_dir / pki.DPPB_KEY)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError) as info:
        pki.load_certificate(tmp_path / "nope.pem")
    assert info.value.path == tmp_path / "nope.pem"
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nxx\n")
    with pytest.raises(pki.PkiError):
        pki.load_certificate(tmp_path / "junk.pem")
    (tmp_path / "junk.key").write_bytes(b"\x30\x03\x02\x01\x00")
    with pytest.raises(pki.PkiError):
        pki.load_private_key(tmp_path / "junk.key")


def test_init_refuses_to_overwrite(pki_dir: Path) -> None:
    with pytest.raises(pki.PkiError, match="exists"):
        pki.init_pki(pki_dir, eids=[EID])


def test_cli_init_and_euicc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cli"
    assert emu_main(["pki", "init", str(root), "--euicc-count", "2", "--tls-host",
                     "smdp.test", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"eids"' in out
    eids = [p.name[6:-4] for p in root.glob("euicc-*.pem")]
    assert len(eids) == 2 and all(e.startswith(pki.DEFAULT_EID_PREFIX) for e in eids)
    tls = pki.load_certificate(root / pki.TLS_CERT)
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["smdp.test"]
    new_eid = make_eid("890490320000000000000000009999")
    assert emu_main(["pki", "euicc", str(root), "--eid", new_eid]) == 0
    assert (root / pki.euicc_cert_name(new_eid)).is_file()
    assert emu_main(["pki", "euicc", str(root), "--eid", OTHER_RANGE_EID]) == 1
    assert "outside" in capsys.readouterr().err
    assert emu_main(["pki", "init", str(root)]) == 1


def test_builtin_ci_serves_cards_made_without_a_pki(tmp_path: Path) -> None:
    from lpa_emulator.euicc import identity as ident

    assert emu_main(["pki", "init", str(tmp_path), "--builtin-ci", "--euicc-count", "0"]) == 0
    ci = pki.load_certificate(tmp_path / pki.CI_CERT)
    assert ci.public_key() == pki.builtin_ci().cert.public_key()
    # A card issued anywhere under the built-in issuer chains to this directory's CI ...
    card = ident.generate(EID)
    assert certs.verify_euicc_chain(card.certificate, card.eum_certificate, [ci],
                                    at=certs.now()) == EID
    assert card.signing_pkids == card.ci_pkids == (certs.subject_key_id(ci),)
    # ... and trusts the SM-DP+ certificates made in it.
    dpauth = pki.load_certificate(tmp_path / pki.DPAUTH_CERT)
    certs.verify_server_certificate(dpauth, card.ci_certificates, role=certs.ROLE_DP_AUTH)
    # The SM-DP+'s own keys are fresh: only CI and EUM are fixed.
    again = pki.init_pki(tmp_path / "again", builtin_ci=True, euicc_count=0)
    assert pki.load_private_key(again.directory / pki.DPAUTH_KEY).private_numbers() != (
        pki.load_private_key(tmp_path / pki.DPAUTH_KEY).private_numbers())
    with pytest.raises(pki.PkiError, match="organisation"):
        pki.init_pki(tmp_path / "org", builtin_ci=True, eum_org="Other")


# --- reading EC private keys ---------------------------------------------------------------

_KEY_FORMATS = [(e, f) for e in (serialization.Encoding.PEM, serialization.Encoding.DER)
                for f in (serialization.PrivateFormat.PKCS8,
                          serialization.PrivateFormat.TraditionalOpenSSL)]


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.BrainpoolP256R1()], ids=lambda c: c.name)
@pytest.mark.parametrize(("encoding", "fmt"), _KEY_FORMATS, ids=str)
def test_an_rsp_key_is_read_without_the_library_loaders(
        curve: ec.EllipticCurve, encoding: serialization.Encoding,
        fmt: serialization.PrivateFormat) -> None:
    from lpa_emulator import pki_files

    for _ in range(8):  # a private value or point with leading zero bytes now and then
        key = ec.generate_private_key(curve)
        data = key.private_bytes(encoding, fmt, serialization.NoEncryption())
        read = pki_files._rsp_key(data)
        assert read is not None
        assert read.curve.name == curve.name
        assert read.private_numbers() == key.private_numbers()
        assert pki_files.parse_private_key(data).private_numbers() == key.private_numbers()


def test_other_keys_get_the_library_verdict() -> None:
    from lpa_emulator import pki_files

    p384 = ec.generate_private_key(ec.SECP384R1())
    pem = p384.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    assert pki_files._rsp_key(pem) is None
    assert pki_files.parse_private_key(pem).curve.name == "secp384r1"

    key = ec.generate_private_key(ec.SECP256R1())
    locked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(b"secret"))
    assert pki_files._rsp_key(locked) is None
    with pytest.raises(pki_files.PkiError, match="unencrypted"):
        pki_files.parse_private_key(locked)

    # A SEC 1 key whose public key is another key's: refused by the reader itself, with
    # every release of the library (those before 43 would take it).
    sec1 = key.private_bytes(serialization.Encoding.DER,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    other = pki_files.public_bytes(ec.generate_private_key(ec.SECP256R1()).public_key())
    forged = sec1.replace(pki_files.public_bytes(key.public_key()), other)
    assert forged != sec1
    with pytest.raises(pki_files.PkiError, match="does not match its private key"):
        pki_files.parse_private_key(forged)
    with pytest.raises(pki_files.PkiError):
        pki_files.parse_private_key(b"-----BEGIN PRIVATE KEY-----\nnot base64!\n"
                                    b"-----END PRIVATE KEY-----\n")


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.BrainpoolP256R1()], ids=lambda c: c.name)
def test_an_rsp_public_key_is_read_as_the_library_reads_it(curve: ec.EllipticCurve) -> None:
    from mps_esim.crypto import ecka
    from mps_esim.sgp32.eim import EimConfigError, _spki

    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    for _ in range(8):
        public = ec.generate_private_key(curve).public_key()
        read = ecka.read_spki(public.public_bytes(serialization.Encoding.DER, spki))
        assert read is not None and read.public_numbers() == public.public_numbers()
    # Off the curve or on another curve: left to the library, which decides.
    der = bytearray(public.public_bytes(serialization.Encoding.DER, spki))
    der[-1] ^= 1
    assert ecka.read_spki(bytes(der)) is None
    with pytest.raises(EimConfigError):
        _spki(bytes(der))
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_der = p384.public_bytes(serialization.Encoding.DER, spki)
    assert ecka.read_spki(p384_der) is None
    assert _spki(p384_der).curve.name == "secp384r1"


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.BrainpoolP256R1(), ec.SECP384R1()],
                         ids=lambda c: c.name)
def test_a_key_is_written_as_the_library_writes_it(curve: ec.EllipticCurve) -> None:
    from lpa_emulator import pki_files

    for _ in range(16):  # now and then a private value or coordinate with leading zeros
        key = ec.generate_private_key(curve)
        assert pki_files.key_pem(key) == key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
