"""The SDK's exceptions: one root, subclasses that also inherit the matching built-in."""

from __future__ import annotations

from mps_common.errors import ConfigError
from mps_wire.errors import ErrorCode
from mps_wire.messages import Reply, Status

__all__ = ["BadReplyError", "ConfigError", "DeniedError", "NotFoundError", "PairingConnectionError",
           "PairingError", "PairingTimeoutError", "RedirectError", "RedirectLoopError",
           "RequestError"]


class PairingError(Exception):
    """Root of the errors raised by the app SDK (:class:`mps_sdk.client.PairingClient`)."""


class PairingConnectionError(PairingError, ConnectionError):
    """The SDK could not reach the broker or lost it."""


class PairingTimeoutError(PairingError, TimeoutError):
    """The registry did not answer in time."""


class BadReplyError(PairingError, ValueError):
    """The registry's reply could not be understood."""


class RequestError(PairingError):
    """The registry refused a request; ``code`` is the stable error code of the reply."""

    def __init__(self, code: ErrorCode, message: str, *, status: Status = Status.ERROR) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class NotFoundError(RequestError, LookupError):
    """The registry knows no contract (or device) for what was asked."""


class DeniedError(RequestError, PermissionError):
    """The registry does not allow this app to ask this; ``reason`` says why."""

    def __init__(self, code: ErrorCode, message: str, *, status: Status = Status.DENIED,
                 reason: str | None = None) -> None:
        super().__init__(code, message, status=status)
        self.reason = reason


class RedirectError(RequestError):
    """The number belongs to another operator; ask its registry instead.

    ``registry`` is that registry's broker URL and ``prefix`` its topic prefix.
    """

    def __init__(self, message: str, *, operator: str, name: str, registry: str,
                 prefix: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, message, status=Status.REDIRECT)
        self.operator = operator
        self.name = name
        self.registry = registry
        self.prefix = prefix

    def __str__(self) -> str:
        where = f" at {self.registry}" if self.registry else ""
        about = ", ".join(p for p in (f"operator {self.operator}" if self.operator else "",
                                      f"topic prefix {self.prefix}" if self.prefix else "")
                          if p)
        return f"redirect: {self.message}{where}" + (f" ({about})" if about else "")


class RedirectLoopError(RedirectError):
    """Following redirects went round in a circle or past the hop limit; ``chain`` names
    the operators visited, in order."""

    def __init__(self, message: str, *, chain: tuple[str, ...], operator: str, name: str,
                 registry: str, prefix: str) -> None:
        super().__init__(message, operator=operator, name=name, registry=registry,
                         prefix=prefix)
        self.chain = chain


def refusal_error(reply: Reply) -> RequestError:
    """The exception for a refusal the registry answered."""
    code = reply.code or ErrorCode.INTERNAL
    message = reply.message or f"request refused ({reply.status})"
    reason = reply.body.get("reason")
    if reply.status is Status.REDIRECT:
        body = reply.body

        def text(key: str) -> str:
            value = body.get(key)
            return value if isinstance(value, str) else ""

        return RedirectError(message, operator=text("operator"), name=text("name"),
                             registry=text("registry"), prefix=text("prefix"))
    if code is ErrorCode.NOT_FOUND:
        return NotFoundError(code, message, status=reply.status)
    if code is ErrorCode.DENIED or reply.status is Status.DENIED:
        return DeniedError(code, message, status=reply.status,
                           reason=reason if isinstance(reason, str) else None)
    return RequestError(code, message, status=reply.status)
