"""The agent's exceptions: one root, subclasses that also inherit the matching built-in."""

from __future__ import annotations

from mps_common.errors import ConfigError


class AgentError(Exception):
    """Root of every error the agent raises."""


class AgentConfigError(AgentError, ConfigError):
    """A modem or card URL, or a credential file, is invalid.

    Also an :class:`AgentError`, so a first-boot step that opens hardware from a bad URL
    fails as that step, like any other hardware error.
    """


# --- modem ---------------------------------------------------------------------------

class ModemError(AgentError, OSError):
    """The modem failed, answered ERROR, or could not be reached."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


class ModemTimeoutError(ModemError, TimeoutError):
    """The modem gave no final result code in time."""


class CmeError(ModemError):
    """The modem answered ``+CME ERROR`` (or ``+CMS ERROR``) with a code or text."""

    def __init__(self, message: str, *, command: str | None = None, code: int | None = None,
                 text: str | None = None) -> None:
        super().__init__(message, command=command)
        self.code = code
        self.text = text


# --- card ----------------------------------------------------------------------------

class CardError(AgentError, OSError):
    """The card or the path to it failed."""


class NoCardError(CardError):
    """No card is present (empty reader, modem without SIM)."""


class CardRemovedError(CardError):
    """The card went away during a session; reconnect when it is back."""


class StatusWordError(CardError):
    """The card answered with a status word other than the expected ones."""

    def __init__(self, message: str, *, sw: int, apdu: bytes | None = None) -> None:
        super().__init__(message)
        self.sw = sw
        self.apdu = apdu

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF


class StepError(AgentError):
    """A named step of reading the identity or of first boot failed."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = str(step)
