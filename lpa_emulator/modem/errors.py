"""The modem emulator's exceptions: one root, subclasses that also inherit the matching built-in."""

from __future__ import annotations

from lpa_emulator.errors import EmulatorError


class ModemEmulatorError(EmulatorError):
    """Root of every error the modem emulator raises."""


class StateFileError(ModemEmulatorError, ValueError):
    """A modem state file is unreadable, corrupt or holds invalid values."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message if path is None else f"{path}: {message}")
        self.path = path


class PtyError(ModemEmulatorError, OSError):
    """The pseudo-terminal or its published link could not be set up."""


__all__ = ["EmulatorError", "ModemEmulatorError", "PtyError", "StateFileError"]
