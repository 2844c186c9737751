"""The app and user SDK: :class:`~mps_sdk.client.PairingClient` for apps,
:class:`~mps_sdk.consent.ConsentClient` for the user's agent, and their command lines
``mps-app`` and ``mps-user``. It reaches the registry over MQTT only.
"""

from mps_sdk.errors import (
    BadReplyError,
    DeniedError,
    NotFoundError,
    PairingConnectionError,
    PairingError,
    PairingTimeoutError,
    RedirectError,
    RequestError,
)

__all__ = [
    "BadReplyError",
    "DeniedError",
    "NotFoundError",
    "PairingConnectionError",
    "PairingError",
    "PairingTimeoutError",
    "RedirectError",
    "RequestError",
]
