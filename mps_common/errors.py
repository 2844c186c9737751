"""Errors every package shares."""

from __future__ import annotations

from collections.abc import Sequence

from mps_common.record import record


@record
class Problem:
    """One thing wrong in a configuration or data file: where (``contracts[0].id``) and what."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


class ConfigError(ValueError):
    """An option, environment variable or configuration file is invalid.

    The one configuration error of the project: every command line and every loader of
    firmware profiles, operator data and settings raises it (or a subclass), so a ``main()``
    catches one class. ``problems`` lists each thing wrong when a loader found several;
    ``source`` names the file or option they came from.
    """

    def __init__(self, message: str, *, problems: Sequence[Problem] = (),
                 source: str | None = None) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
        self.source = source
