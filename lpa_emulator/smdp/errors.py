"""Errors of the SM-DP+ and the SGP.22 status codes its ES9+ answers carry."""

from __future__ import annotations

from dataclasses import dataclass

from lpa_emulator.errors import EmulatorError
from mps_common.errors import ConfigError


@dataclass(frozen=True, slots=True)
class StatusCode:
    """An SGP.22 ``statusCodeData``: subject code, reason code and a default message."""

    subject: str
    reason: str
    text: str


# SGP.22 section 5.6 (ES9+) status codes.
INVALID_ADDRESS = StatusCode("8.8.1", "3.8", "Invalid SM-DP+ Address")
UNSUPPORTED_SECURITY = StatusCode("8.8.2", "3.1", "Security configuration not supported")
UNSUPPORTED_VERSION = StatusCode("8.8.3", "3.1", "Specification version not supported")
NO_DPAUTH_FOR_CI = StatusCode("8.8.4", "3.7",
                              "No CERT.DPauth chaining to a CI the eUICC supports")
ORDER_EXPIRED = StatusCode("8.8.5", "4.10", "The download order has expired")
ORDER_RETRIES = StatusCode("8.8.5", "6.4", "Maximum number of download attempts exceeded")
UNKNOWN_TRANSACTION = StatusCode("8.10.1", "3.9", "TransactionId unknown")
UNKNOWN_CI = StatusCode("8.11.1", "3.9", "Unknown CI public key")
EUICC_SIGNATURE = StatusCode("8.1", "6.1", "eUICC signature or challenge verification failed")
EID_REFUSED = StatusCode("8.1.1", "3.8", "EID does not match the download order")
EUM_INVALID = StatusCode("8.1.2", "6.1", "EUM certificate verification failed")
EUM_EXPIRED = StatusCode("8.1.2", "6.3", "EUM certificate expired")
EUICC_INVALID = StatusCode("8.1.3", "6.1", "eUICC certificate verification failed")
EUICC_EXPIRED = StatusCode("8.1.3", "6.3", "eUICC certificate expired")
MATCHING_ID_REFUSED = StatusCode("8.2.6", "3.8", "Matching ID refused")
PROFILE_NOT_RELEASED = StatusCode("8.2", "1.2", "Profile not released")
CC_MISSING = StatusCode("8.2.7", "2.2", "Confirmation code missing")
CC_REFUSED = StatusCode("8.2.7", "3.8", "Confirmation code refused")
CC_RETRIES = StatusCode("8.2.7", "6.4", "Confirmation code retries exceeded")
BPP_REBINDING = StatusCode("8.2", "3.8", "Rebinding of the profile package refused")
INVALID_OID = StatusCode("8.8", "3.10", "Invalid SM-DP+ OID")
# Request-level problems that precede any function's own checks: the request itself
# (subject 1.2, the function requester's message) is invalid, lacks an element, or the
# server cannot take it now.
MALFORMED = StatusCode("1.2", "2.1", "Invalid request format")
MISSING_ELEMENT = StatusCode("1.2", "2.2", "Mandatory element missing")
UNSUPPORTED_PROTOCOL = StatusCode("1.2", "3.1", "Unsupported X-Admin-Protocol")
BUSY = StatusCode("1.2", "4.2", "Server busy, retry later")


class SmdpError(EmulatorError):
    """Root of the SM-DP+'s errors."""


class Es9StatusError(SmdpError):
    """An ES9+ function failed with an SGP.22 status; ``message`` says what exactly."""

    def __init__(self, status: StatusCode, message: str | None = None) -> None:
        super().__init__(f"{status.subject}/{status.reason}: {message or status.text}")
        self.status = status
        self.message = message or status.text


class OrderError(SmdpError, ValueError):
    """A profile order is invalid, unknown or conflicts with another one."""


class ServerStartError(SmdpError, OSError):
    """The ES9+ server could not listen on its address or did not come up in time."""


__all__ = ["ConfigError", "Es9StatusError", "OrderError", "ServerStartError", "SmdpError",
           "StatusCode"]
