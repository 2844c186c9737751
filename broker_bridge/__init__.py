"""The operator's pairing registry: MQTT service, domain model, storage and app SDK.

The service is :class:`broker_bridge.service.Bridge`, storage lives in
:mod:`broker_bridge.storage`, the app SDK is :class:`broker_bridge.client.PairingClient`.
Every error raised here derives from :class:`BridgeError`.
"""

from broker_bridge.errors import (
    BridgeError,
    BrokerError,
    ConfigError,
    DeniedError,
    NotFoundError,
    OperatorDataError,
    PairingError,
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
    "NotFoundError",
    "OperatorDataError",
    "PairingError",
    "RequestError",
    "StoreCorruptError",
    "StoreError",
    "UnknownSubscriptionError",
]
