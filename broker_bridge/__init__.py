"""The operator's pairing registry: MQTT service, domain model, storage and app SDK.

The service is :class:`broker_bridge.service.Bridge`; the rules it applies (trust levels,
consent, pairings, per-app event streams, operator data, the audit log) are
:class:`broker_bridge.registry.Registry`, over storage in :mod:`broker_bridge.storage`.
Apps use :class:`broker_bridge.client.PairingClient`, user agents
:class:`broker_bridge.user_client.ConsentClient`. Every error raised here derives from
:class:`BridgeError`.
"""

from broker_bridge.errors import (
    BridgeError,
    BrokerError,
    ConfigError,
    DeniedError,
    ForeignSubscriptionError,
    NotFoundError,
    OperatorDataError,
    PairingError,
    RedirectError,
    RequestError,
    StoreCorruptError,
    StoreError,
    UnknownSubscriptionError,
)

__all__ = [
    "BridgeError",
    "BrokerError",
    "ConfigError",
    "DeniedError",
    "ForeignSubscriptionError",
    "NotFoundError",
    "OperatorDataError",
    "PairingError",
    "RedirectError",
    "RequestError",
    "StoreCorruptError",
    "StoreError",
    "UnknownSubscriptionError",
]
