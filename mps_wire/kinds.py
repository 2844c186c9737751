"""What the registry answers and announces besides a status: the result of a
registration, the kinds of events and of changes, the reasons of a refusal or an end.
Re-exported by :mod:`mps_wire.messages` and loaded at their first use (a device, which
reads a reply's status, needs none of them).
"""

from __future__ import annotations

import enum


class RegistrationResult(enum.StrEnum):
    """What a successful registration did to the registry."""

    REGISTERED = "registered"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class EventKind(enum.StrEnum):
    """What an event on an app's events topic announces."""

    DEVICE_ADDED = "device-added"
    DEVICE_UPDATED = "device-updated"
    DEVICE_REMOVED = "device-removed"
    PAIRING_GRANTED = "pairing-granted"
    PAIRING_DENIED = "pairing-denied"
    PAIRING_ENDED = "pairing-ended"
    VIEW_CHANGED = "view-changed"  # the user chose other devices or fields for the pairing


class ChangeKind(enum.StrEnum):
    """What changed in a ``device-updated`` event (and in an ``updated`` registration)."""

    IP = "ip"
    CAPABILITIES = "capabilities"
    MODEL = "model"
    PROFILE = "profile"  # the device's firmware profile name
    IMSI = "imsi"
    DEVICE_SWAP = "device-swap"  # a new IMEI for the same EID: the eUICC is in another device
    SIM_SWAP = "sim-swap"  # a new ICCID on the same EID: another eSIM profile is enabled
    PRESENCE = "presence"  # the device went online or offline


class Reason(enum.StrEnum):
    """Why a request was refused, or why a pairing or a device went away (``reason``)."""

    UNKNOWN_APP = "unknown-app"
    UNTRUSTED = "untrusted"
    PURPOSE_NOT_ALLOWED = "purpose-not-allowed"
    NOT_PAIRED = "not-paired"
    CONSENT_PENDING = "consent-pending"
    USER_DENIED = "user-denied"
    EXPIRED = "expired"
    UNKNOWN_PROMPT = "unknown-prompt"
    ANSWERED = "answered"
    UNPAIRED = "unpaired"
    CONSENT_WITHDRAWN = "consent-withdrawn"
    APP_REMOVED = "app-removed"
    TRUST_CHANGED = "trust-changed"
    PURPOSE_REVOKED = "purpose-revoked"
    LEFT_CONTRACT = "left-contract"
    SUBSCRIPTION_REMOVED = "subscription-removed"
    NUMBER_PORTED = "number-ported"


__all__ = ["ChangeKind", "EventKind", "Reason", "RegistrationResult"]
