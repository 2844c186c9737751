"""Credential bundles: what the operator issues to one broker identity, as a directory.

    identity.json    {"username": ..., "role": ..., "subject": ...}
    ca.pem           the operator's CA: the only trust anchor for the broker's TLS
    client.pem       client certificate (CN = username) and its key client.key, or
    password         the broker password (one line)
    signing-key.pem  devices only: the P-256 key that signs DeviceInfo (COSE_Sign1)

Devices, apps, user agents and operator systems load their bundle and apply it to the
broker URL they were given (:meth:`CredentialBundle.broker_url`). Private keys and the
password are written readable by the owner only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mps_mqtt.client import BrokerURL, MqttError

IDENTITY_FILE = "identity.json"
CA_FILE = "ca.pem"
CERT_FILE = "client.pem"
KEY_FILE = "client.key"
PASSWORD_FILE = "password"  # noqa: S105 - a file name, not a password
SIGNING_KEY_FILE = "signing-key.pem"

ROLES = ("device", "app", "user", "operator", "bridge")


class BundleError(MqttError, ValueError):
    """A credential bundle is missing, incomplete or unreadable."""


@dataclass(frozen=True, slots=True)
class CredentialBundle:
    """One identity's credentials, loaded from (or about to be written to) a directory."""

    directory: Path
    username: str
    role: str
    subject: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    password: str | None = None
    signing_key_file: Path | None = None

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CredentialBundle:
        """Read the bundle in ``directory``; BundleError says what is wrong."""
        root = Path(directory)
        try:
            raw: Any = json.loads((root / IDENTITY_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BundleError(f"{root} holds no credential bundle ({IDENTITY_FILE} "
                              "is missing)") from exc
        except (OSError, ValueError) as exc:
            raise BundleError(f"{root / IDENTITY_FILE} is unreadable: {exc}") from exc
        if not isinstance(raw, dict):
            raise BundleError(f"{root / IDENTITY_FILE} must hold a JSON object")
        fields: dict[str, str] = {}
        for key in ("username", "role", "subject"):
            value = raw.get(key)
            if not isinstance(value, str) or not value:
                raise BundleError(f"{root / IDENTITY_FILE}: {key!r} must be non-empty text")
            fields[key] = value
        if fields["role"] not in ROLES:
            raise BundleError(f"{root / IDENTITY_FILE}: unknown role {fields['role']!r}")

        def present(name: str) -> Path | None:
            path = root / name
            return path if path.is_file() else None

        cert, cert_key = present(CERT_FILE), present(KEY_FILE)
        if (cert is None) != (cert_key is None):
            raise BundleError(f"{root}: {CERT_FILE} and {KEY_FILE} come together")
        password: str | None = None
        if (pw_path := present(PASSWORD_FILE)) is not None:
            try:
                password = pw_path.read_text(encoding="utf-8").strip() or None
            except (OSError, UnicodeDecodeError) as exc:
                raise BundleError(f"{pw_path} is unreadable: {exc}") from exc
        return cls(directory=root, username=fields["username"], role=fields["role"],
                   subject=fields["subject"], ca_file=present(CA_FILE), cert_file=cert,
                   key_file=cert_key, password=password,
                   signing_key_file=present(SIGNING_KEY_FILE))

    def broker_url(self, base: BrokerURL | str) -> BrokerURL:
        """``base`` with this identity's credentials: username and password, and for
        ``mqtts`` the operator's CA and the client certificate."""
        url = base if isinstance(base, BrokerURL) else BrokerURL.parse(base)
        if self.password is None and self.cert_file is None:
            raise BundleError(f"{self.directory} holds neither a password nor a certificate")
        if not url.tls and self.password is None:
            raise BundleError(f"{self.directory} holds a client certificate only, which "
                              f"needs a TLS broker URL (mqtts://), not {url}")
        changes: dict[str, Any] = {"username": self.username, "password": self.password}
        if url.tls:
            changes["ca_file"] = url.ca_file or (str(self.ca_file) if self.ca_file else None)
            if self.cert_file is not None and self.key_file is not None:
                changes["cert_file"] = str(self.cert_file)
                changes["key_file"] = str(self.key_file)
        return dataclasses.replace(url, **changes)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file only its owner may read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
