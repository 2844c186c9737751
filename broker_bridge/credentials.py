"""The operator's credentials: its CA, the broker's TLS certificate, and one credential
bundle per identity (device, app, user agent, operator system, bridge process).

Every identity gets a broker username derived from its role (:func:`username_for`): a
device's is its EID, so the broker's ACL ties a device's credentials to its own topics,
and the registry ties the EID to the subscription the SM-DP+ installed on it. Issuing
records the identity in the registry (:class:`~broker_bridge.model.BrokerIdentity`), from
which ``mps-bridge broker-config`` writes Mosquitto's password and ACL files; a device
also gets a signing key whose public part is enrolled at once.

Private keys are P-256, made and stored with ``cryptography``; Mosquitto password hashes
are PBKDF2-SHA512 in its ``$7$`` format, made here so the operator needs no Mosquitto
tools.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker_bridge.errors import BridgeError
from broker_bridge.model import BrokerIdentity, Change, Role, now_ms
from broker_bridge.registry import INSTALLATIONS_SOURCE, Registry
from mps_mqtt import bundle
from mps_wire.identifiers import validate_device_id
from mps_wire.topics import check_level

log = logging.getLogger(__name__)

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"

#: The operator source whose identity may also publish installation results (the SM-DP+).
INSTALLATION_PUBLISHER = INSTALLATIONS_SOURCE

PASSWORD_ITERATIONS = 1000
"""PBKDF2 rounds of a Mosquitto ``$7$`` hash. Issued passwords are 192-bit random tokens,
so the count adds little; a low one keeps a reconnect storm of many devices cheap for
the (single-threaded) broker."""

_USERNAME_PREFIX = {Role.APP: "app.", Role.USER: "user.", Role.OPERATOR: "operator.",
                    Role.BRIDGE: "bridge."}


class CredentialError(BridgeError, ValueError):
    """Credentials could not be made, loaded or issued."""


def username_for(role: Role, subject: str) -> str:
    """The broker username of an identity: the device id for a device (its EID, or a
    plain SIM's ICCID), ``app.<id>``,
    ``user.<contract>``, ``operator.<source>`` or ``bridge.<name>`` otherwise.

    Role prefixes keep the names of different roles apart in the broker's one namespace
    (an app may not be called like a contract); ``:`` would break the password file.
    """
    if role is Role.DEVICE:
        return validate_device_id(subject)
    check_level(subject, f"{role.value} id")
    return _USERNAME_PREFIX[role] + subject


def mosquitto_hash(password: str, *, salt: bytes | None = None,
                   iterations: int = PASSWORD_ITERATIONS) -> str:
    """``password`` hashed for Mosquitto's password file: ``$7$iterations$salt$hash``."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def check_mosquitto_hash(password: str, hashed: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
        iterations = int(parts[2])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    """A fresh random password (192 bits, URL-safe so it fits in a broker URL)."""
    return secrets.token_urlsafe(24)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of a certificate, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True, slots=True)
class OperatorCA:
    """The operator's certificate authority, kept in a directory (``ca.pem``, ``ca.key``).

    It signs the broker's server certificate and every client certificate; devices and
    apps trust the broker only through it.
    """

    directory: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_file(self) -> Path:
        return self.directory / CA_CERT

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> OperatorCA:
        root = Path(directory)
        try:
            cert = x509.load_pem_x509_certificate((root / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((root / CA_KEY).read_bytes(),
                                                     password=None)
        except FileNotFoundError as exc:
            raise CredentialError(f"{root} holds no operator CA ({exc.filename} is "
                                  "missing); make one with 'mps-bridge operator ca'") from exc
        except (OSError, ValueError) as exc:
            raise CredentialError(f"the operator CA in {root} is unreadable: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CredentialError(f"{root / CA_KEY} is not an EC private key")
        if cert.public_key() != key.public_key():
            raise CredentialError(f"{root}: {CA_CERT} and {CA_KEY} do not belong together")
        return cls(root, cert, key)

    @classmethod
    def create(cls, directory: str | os.PathLike[str], *, name: str = "MPS Operator CA",
               days: int = 3650) -> OperatorCA:
        """Make a new CA in ``directory``; refuses to overwrite an existing one."""
        root = Path(directory)
        if (root / CA_KEY).exists() or (root / CA_CERT).exists():
            raise CredentialError(f"{root} already holds an operator CA")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MPS Operator"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        root.mkdir(parents=True, exist_ok=True)
        bundle.write_private(root / CA_KEY, _pem_key(key))
        (root / CA_CERT).write_bytes(_pem_cert(cert))
        return cls(root, cert, key)

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str]) -> OperatorCA:
        root = Path(directory)
        if (root / CA_CERT).exists() or (root / CA_KEY).exists():
            return cls.load(root)
        return cls.create(root)

    def _issue(self, common_name: str, public_key: ec.EllipticCurvePublicKey, *,
               server_names: Sequence[str] = (), client: bool, days: int) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                               common_name)]))
                   .issuer_name(self.certificate.subject).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.CLIENT_AUTH if client
                        else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), critical=False))
        if server_names:
            names: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    names.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server(self, out_dir: str | os.PathLike[str], *,
                     names: Sequence[str] = ("127.0.0.1", "localhost"), days: int = 825
                     ) -> tuple[Path, Path]:
        """The broker's TLS certificate for ``names`` (IPs or host names) and its key,
        written to ``out_dir``; returns their paths."""
        if not names:
            raise CredentialError("the server certificate needs at least one name")
        root = Path(out_dir)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(names[0], key.public_key(), server_names=names, client=False,
                           days=days)
        bundle.write_private(root / SERVER_KEY, _pem_key(key))
        (root / SERVER_CERT).write_bytes(_pem_cert(cert))
        return root / SERVER_CERT, root / SERVER_KEY

    def issue_client(self, username: str, *, days: int = 825
                     ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A client certificate whose common name is the broker username."""
        key = ec.generate_private_key(ec.SECP256R1())
        return self._issue(username, key.public_key(), client=True, days=days), key


@dataclass(frozen=True, slots=True)
class Issued:
    """What :func:`issue` made: the identity as recorded, and where its bundle is."""

    identity: BrokerIdentity
    directory: Path
    change: Change
    password: str | None = None
    signing_kid: bytes | None = None


def issue(registry: Registry, role: Role, subject: str, out_dir: str | os.PathLike[str], *,
          ca: OperatorCA | None = None, password: bool = True, certificate: bool = False,
          signing_key: bool | None = None, actor: str = "operator:cli") -> Issued:
    """Issue credentials for one identity and write its bundle to ``out_dir``.

    ``password`` issues a broker password, ``certificate`` a client certificate (needs
    ``ca``); a device also gets a signing key (``signing_key``, default yes) whose public
    part is enrolled in the registry. Issuing again replaces the identity's credentials:
    the old password, certificate and signing key stop working once the broker's files
    are written again (``mps-bridge broker-config``).
    """
    username = _check_request(role, subject, ca=ca, password=password,
                              certificate=certificate, signing_key=signing_key)
    if signing_key is None:
        signing_key = role is Role.DEVICE
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    if ca is not None:
        (root / bundle.CA_FILE).write_bytes(_pem_cert(ca.certificate))
    secret = _write_password(root) if password else None
    if not password:
        (root / bundle.PASSWORD_FILE).unlink(missing_ok=True)
    cert_print = _write_certificate(root, ca, username) if certificate and ca else None
    if cert_print is None:
        (root / bundle.CERT_FILE).unlink(missing_ok=True)
        (root / bundle.KEY_FILE).unlink(missing_ok=True)
    kid = _write_signing_key(root, registry, subject, actor) if signing_key else None
    (root / bundle.IDENTITY_FILE).write_text(json.dumps(
        {"username": username, "role": role.value, "subject": subject}, indent=2) + "\n",
        encoding="utf-8")
    identity = BrokerIdentity(username=username, role=role, subject=subject,
                              issued_at=now_ms(),
                              password_hash=mosquitto_hash(secret) if secret else None,
                              certificate=cert_print)
    store = registry.store
    with store.transaction():
        change = store.put_identity(identity)
        store.append_audit(actor, "credentials", "issued", subject=username,
                           app_id=subject if role is Role.APP else None,
                           contract_id=subject if role is Role.USER else None,
                           detail={"role": role.value, "password": secret is not None,
                                   "certificate": cert_print,
                                   "signing_kid": kid.hex() if kid else None})
    log.info("issued credentials for %s (%s) in %s", username, role.value, root)
    return Issued(identity, root, change, secret, kid)


def _check_request(role: Role, subject: str, *, ca: OperatorCA | None, password: bool,
                   certificate: bool, signing_key: bool | None) -> str:
    """The username of the identity to issue; CredentialError for a request that cannot
    be met."""
    if not (password or certificate):
        raise CredentialError("issue a password, a certificate or both")
    if certificate and ca is None:
        raise CredentialError("a client certificate needs the operator CA (--ca DIR)")
    try:
        username = username_for(role, subject)
    except ValueError as exc:
        raise CredentialError(str(exc)) from exc
    if signing_key and role is not Role.DEVICE:
        raise CredentialError("only devices get a signing key")
    return username


def _write_password(root: Path) -> str:
    secret = new_password()
    bundle.write_private(root / bundle.PASSWORD_FILE, (secret + "\n").encode())
    return secret


def _write_certificate(root: Path, ca: OperatorCA, username: str) -> str:
    """Issue a client certificate into the bundle; its fingerprint."""
    cert, key = ca.issue_client(username)
    bundle.write_private(root / bundle.KEY_FILE, _pem_key(key))
    (root / bundle.CERT_FILE).write_bytes(_pem_cert(cert))
    return fingerprint(cert)


def _write_signing_key(root: Path, registry: Registry, eid: str, actor: str) -> bytes:
    """Make a device's signing key, enroll its public part; the key id."""
    device_key = ec.generate_private_key(ec.SECP256R1())
    public = device_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    record, _ = registry.enroll_device_key(eid, public, actor=actor)
    bundle.write_private(root / bundle.SIGNING_KEY_FILE, _pem_key(device_key))
    return record.kid


def revoke(registry: Registry, username: str, *, actor: str = "operator:cli") -> bool:
    """Revoke an identity (it drops out of the broker's files at the next broker-config);
    a device's signing key is withdrawn with it."""
    store = registry.store
    with store.transaction():
        identity = store.identity(username)
        if identity is None or not store.revoke_identity(username):
            return False
        if identity.role is Role.DEVICE:
            registry.withdraw_device_key(identity.subject, actor=actor)
        store.append_audit(actor, "credentials", "revoked", subject=username,
                           detail={"role": identity.role.value})
    return True

