"""The eUICC's exceptions: one root, subclasses that also inherit the matching built-in."""

from __future__ import annotations

from lpa_emulator.errors import EmulatorError


class EuiccError(EmulatorError):
    """Root of every error the software eUICC raises."""


class StateError(EuiccError, ValueError):
    """A card state file is missing fields, corrupt, or holds invalid identities."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message if path is None else f"{path}: {message}")
        self.path = path


class CardStatus(EuiccError):
    """A command ends with an ISO 7816 status word other than 9000.

    Raised inside command handlers and turned into the response by the card; it never
    leaves :meth:`EuiccCard.transmit`.
    """

    def __init__(self, sw: int, message: str = "") -> None:
        super().__init__(message or f"status {sw:04X}")
        self.sw = sw
