"""Loggers that load :mod:`logging` only when they have something to say.

Importing :mod:`logging` loads :mod:`traceback` and with it the tokenizer, text wrapping
and threading: about ten milliseconds of a short command line's start-up, spent even when
the command logs nothing, as ``mps-lpa`` at its default level does. A module on such a
path takes ``log = logs.get(__name__)`` instead of ``logging.getLogger(__name__)``: the
same calls (``debug``, ``info``, ``warning``, ``error``, ``exception``, ``isEnabledFor``),
passed to the real logger of that name as soon as :mod:`logging` is loaded (by anyone) or
a record reaches the level :func:`configure` set.
"""

from __future__ import annotations

import sys
from typing import Any

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"



class _Config:
    """The level asked for, and whether it still waits for :mod:`logging` to be loaded."""

    threshold = WARNING
    pending: str | None = None


_config = _Config()


def _apply(level: str) -> None:
    import logging

    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=FORMAT)


def configure(level: str) -> None:
    """Log to stderr from ``level`` on: at once if :mod:`logging` is loaded, else when the
    first record at that level or above is logged through a logger of this module."""
    _config.threshold = LEVELS[level]
    if "logging" in sys.modules:
        _config.pending = None
        _apply(level)
    else:
        _config.pending = level


def _logging() -> Any:
    import logging

    if _config.pending is not None:
        level, _config.pending = _config.pending, None
        _apply(level)
    return logging


class Logger:
    """A stand-in for ``logging.getLogger(name)`` (see the module documentation)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def isEnabledFor(self, level: int) -> bool:
        if "logging" in sys.modules:
            enabled: bool = _logging().getLogger(self.name).isEnabledFor(level)
            return enabled
        return level >= _config.threshold

    def _log(self, level: int, msg: object, args: tuple[object, ...], **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            # stacklevel: the record names the caller of debug()/info()/..., not this.
            _logging().getLogger(self.name).log(level, msg, *args, stacklevel=3, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(DEBUG, msg, args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(INFO, msg, args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(WARNING, msg, args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(ERROR, msg, args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(ERROR, msg, args, exc_info=True, **kwargs)


def get(name: str) -> Logger:
    """The lazily loading logger called ``name`` (a module's ``__name__``)."""
    return Logger(name)
