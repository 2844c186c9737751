"""The consent page's errors."""

from __future__ import annotations


class ConsentWebError(Exception):
    """Root of the consent page's errors."""


class RateLimitedError(ConsentWebError):
    """Too many requests from one number or one client address; ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SignInRefusedError(ConsentWebError, PermissionError):
    """The code was wrong, expired or used; deliberately one message for all three."""
