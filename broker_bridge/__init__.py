"""The operator's pairing registry: MQTT service, domain rules, storage and admin tools.

The service is :class:`broker_bridge.service.Bridge`; the rules it applies (trust levels,
consent, pairings, per-app event streams, operator data, the audit log) are
:class:`broker_bridge.registry.Registry`, over storage in :mod:`broker_bridge.storage`.
Apps and user agents reach it over MQTT only, through :mod:`mps_sdk`. Every error raised
here derives from :class:`BridgeError`, except :class:`~mps_common.errors.ConfigError`,
which every package shares.
"""

from broker_bridge.errors import (
    BridgeError,
    BrokerError,
    ForeignSubscriptionError,
    OperatorDataError,
    StoreCorruptError,
    StoreError,
    UnknownSubscriptionError,
)

__all__ = [
    "BridgeError",
    "BrokerError",
    "ForeignSubscriptionError",
    "OperatorDataError",
    "StoreCorruptError",
    "StoreError",
    "UnknownSubscriptionError",
]
