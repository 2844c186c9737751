"""MQTT topic names of the wire contract, under a configurable prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "mps/v1"
DEFAULT_SHARE_GROUP = "mps-bridge"

# Identifiers used as topic levels must not contain MQTT wildcards (a topic name with
# "+" or "#" cannot be published to) or separators.
_LEVEL = re.compile(r"[A-Za-z0-9_.:@=\-]{1,128}")


def check_level(value: str, what: str) -> str:
    """Return ``value`` if it is usable as one topic level, else raise ValueError."""
    if not _LEVEL.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid topic level")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses the topics of one deployment (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"topic prefix {self.prefix!r} must be non-empty without edge slashes")
        if any(c in self.prefix for c in "#+\0"):
            raise ValueError(f"topic prefix {self.prefix!r} must not contain wildcards")

    # device side
    def device_register(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{check_level(device_id, 'device id')}/register"

    def device_reply(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{check_level(device_id, 'device id')}/reply"

    def device_state(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{check_level(device_id, 'device id')}/state"

    def device_orders(self, device_id: str) -> str:
        """Signed eSIM orders the user approved, registry to device."""
        return f"{self.prefix}/devices/{check_level(device_id, 'device id')}/orders"

    def device_order_results(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{check_level(device_id, 'device id')}/order-results"

    def device_esim_requests(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{check_level(device_id, 'device id')}/esim-requests"

    def device_namespace(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{check_level(device_id, 'device id')}/"

    # app side
    def app_requests(self, app_id: str) -> str:
        return f"{self.prefix}/apps/{check_level(app_id, 'app id')}/requests"

    def app_replies(self, app_id: str) -> str:
        return f"{self.prefix}/apps/{check_level(app_id, 'app id')}/replies"

    def app_events(self, app_id: str) -> str:
        return f"{self.prefix}/apps/{check_level(app_id, 'app id')}/events"

    def app_namespace(self, app_id: str) -> str:
        return f"{self.prefix}/apps/{check_level(app_id, 'app id')}/"

    # user side: prompts on the consent topic (retained), answers by request/response
    def user_consent(self, contract_id: str) -> str:
        return f"{self.prefix}/users/{check_level(contract_id, 'contract id')}/consent"

    def user_requests(self, contract_id: str) -> str:
        return f"{self.prefix}/users/{check_level(contract_id, 'contract id')}/requests"

    def user_replies(self, contract_id: str) -> str:
        return f"{self.prefix}/users/{check_level(contract_id, 'contract id')}/replies"

    def user_sign_in(self, contract_id: str) -> str:
        """The consent page's one-time codes for the user (retained until they expire):
        the operator's SMS to the user's number, emulated."""
        return f"{self.prefix}/users/{check_level(contract_id, 'contract id')}/sign-in"

    def user_namespace(self, contract_id: str) -> str:
        return f"{self.prefix}/users/{check_level(contract_id, 'contract id')}/"

    # operator side: each operator system (CRM, SM-DP+, number portability) is a source
    def operator(self, kind: str) -> str:
        return f"{self.prefix}/operator/{check_level(kind, 'operator message kind')}"

    def operator_requests(self, source: str) -> str:
        return f"{self.prefix}/operator/{check_level(source, 'operator source')}/requests"

    def operator_replies(self, source: str) -> str:
        return f"{self.prefix}/operator/{check_level(source, 'operator source')}/replies"

    def operator_namespace(self, source: str) -> str:
        return f"{self.prefix}/operator/{check_level(source, 'operator source')}/"

    # subscriptions of the registry
    def all_registrations(self) -> str:
        return f"{self.prefix}/devices/+/register"

    def all_device_states(self) -> str:
        return f"{self.prefix}/devices/+/state"

    def all_order_results(self) -> str:
        return f"{self.prefix}/devices/+/order-results"

    def all_esim_requests(self) -> str:
        return f"{self.prefix}/devices/+/esim-requests"

    def all_app_requests(self) -> str:
        return f"{self.prefix}/apps/+/requests"

    def all_user_requests(self) -> str:
        return f"{self.prefix}/users/+/requests"

    def all_operator(self) -> str:
        return f"{self.prefix}/operator/#"

    def all_operator_requests(self) -> str:
        return f"{self.prefix}/operator/+/requests"

    @staticmethod
    def shared(group: str, topic_filter: str) -> str:
        """The shared-subscription form of ``topic_filter`` for ``group``."""
        return f"$share/{check_level(group, 'share group')}/{topic_filter}"

    def parse(self, topic: str) -> tuple[str, str, str]:
        """Split ``{prefix}/{kind}/{id}/{leaf}`` into (kind, id, leaf); ValueError otherwise.

        ``kind`` is ``devices``, ``apps``, ``users`` or ``operator``.
        """
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise ValueError(f"topic {topic!r} is outside prefix {self.prefix!r}")
        parts = topic[len(head):].split("/")
        if len(parts) != 3 or parts[0] not in _ID_NAMES:
            raise ValueError(f"topic {topic!r} is not a device, app, user or operator topic")
        check_level(parts[1], _ID_NAMES[parts[0]])
        return parts[0], parts[1], parts[2]


_ID_NAMES = {"devices": "device id", "apps": "app id", "users": "contract id",
             "operator": "operator source"}
