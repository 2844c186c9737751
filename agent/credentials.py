"""The device's credentials: the bundle the operator issued for it (see
:mod:`mps_mqtt.bundle`) with its broker login and its signing key.

Where they are, first found wins: ``--credentials DIR``, ``$MPS_CREDENTIALS``, then
``<state dir>/credentials``. A device without a bundle connects with the broker URL as
given and registers unsigned, which only a registry accepting unsigned registrations
(and a broker without login) lets through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentConfigError
from agent.signing import DeviceSigner
from mps_mqtt.bundle import IDENTITY_FILE, BundleError, CredentialBundle
from mps_mqtt.url import BrokerURL

ENV = "MPS_CREDENTIALS"
DIR_NAME = "credentials"


class CredentialsError(AgentConfigError):
    """The device's credential bundle is missing, incomplete or not this device's."""


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """A loaded device bundle: the broker login and, if issued, the signing key."""

    bundle: CredentialBundle
    signer: DeviceSigner | None

    @property
    def eid(self) -> str:
        return self.bundle.subject

    def broker_url(self, base: str | BrokerURL) -> BrokerURL:
        """``base`` with the device's username, password, CA and client certificate."""
        try:
            return self.bundle.broker_url(base)
        except (BundleError, ValueError) as exc:
            raise CredentialsError(str(exc)) from exc

    def check_device(self, eid: str) -> None:
        """Refuse to speak for a card the credentials were not issued for."""
        if eid != self.eid:
            raise CredentialsError(f"the credentials in {self.bundle.directory} are for device "
                                   f"{self.eid}, but the card is {eid}")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DeviceCredentials:
        try:
            bundle = CredentialBundle.load(directory)
        except BundleError as exc:
            raise CredentialsError(str(exc)) from exc
        if bundle.role != "device":
            raise CredentialsError(f"{directory} holds credentials of a {bundle.role}, "
                                   "not of a device")
        signer = (DeviceSigner.from_file(bundle.signing_key_file)
                  if bundle.signing_key_file is not None else None)
        return cls(bundle, signer)


def find_credentials(state_dir: str | os.PathLike[str], explicit: str | os.PathLike[str]
                     | None = None) -> DeviceCredentials | None:
    """The device's credentials (see the module documentation), None if it has none.

    A directory named explicitly (argument or environment) must hold a bundle; the
    state directory's is used only when it is there.
    """
    named = explicit or os.environ.get(ENV) or None
    if named:
        return DeviceCredentials.load(named)
    default = Path(state_dir) / DIR_NAME
    if (default / IDENTITY_FILE).is_file():
        return DeviceCredentials.load(default)
    return None
