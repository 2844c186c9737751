"""Exceptions and the stable error codes carried in replies."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """Stable error codes of the wire contract; apps and devices may switch on them."""

    MALFORMED = "malformed"  # not decodable CBOR, or not a map
    TOO_LARGE = "too-large"  # payload over the size limit, or nested too deeply
    BAD_REQUEST = "bad-request"  # missing or mistyped field, unknown operation
    INVALID_IDENTIFIER = "invalid-identifier"  # IMEI/ICCID/EID/MSISDN check failed
    UNKNOWN_SUBSCRIPTION = "unknown-subscription"  # ICCID the operator does not know
    NOT_FOUND = "not-found"  # unknown number / contract / device
    DENIED = "denied"  # not allowed for this requester
    FORBIDDEN_TOPIC = "forbidden-topic"  # response topic outside the requester's namespace
    BAD_SIGNATURE = "bad-signature"  # a signed registration whose signature does not verify
    SIGNATURE_REQUIRED = "signature-required"  # unsigned, or no device key enrolled
    REPLAY = "replay"  # a registration not newer than the last one accepted from the device
    BUSY = "busy"  # more requests than the requester's share; retry after a second
    INTERNAL = "internal"  # the service failed; the request may be retried


class WireError(Exception):
    """Root of every error raised by the wire contract."""

    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class DecodeError(WireError, ValueError):
    """A payload could not be decoded (malformed, too large, too deep)."""

    code = ErrorCode.MALFORMED


class ValidationError(WireError, ValueError):
    """A decoded message has a missing, mistyped or invalid field."""

    code = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, field: str | None = None,
                 code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field
