"""Layered configuration: command-line arguments > environment > TOML file > defaults.

A configuration file (``--config FILE`` or ``MPS_CONFIG``) holds one table per command,
``[bridge]`` for ``mps-bridge`` and ``[app]`` for ``mps-app``, with the options' long names
(``broker = "mqtt://..."``, ``db = "/var/lib/mps/registry.db"``, ``app_id = "..."``). Each
option also has an environment variable: ``MPS_`` and its name in capitals
(``MPS_BROKER``, ``MPS_DB``, ``MPS_APP_ID``, ...).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mps_common.errors import ConfigError
from mps_common.schema import Key, Table, validate

T = TypeVar("T")

CONFIG_ENV = "MPS_CONFIG"


def env_name(option: str) -> str:
    """The environment variable of an option: ``app_id`` -> ``MPS_APP_ID``."""
    return "MPS_" + option.upper()


class Settings:
    """Looks options up in the layers, highest first."""

    def __init__(self, arguments: Mapping[str, Any], *, section: str,
                 config_file: str | None = None,
                 environ: Mapping[str, str] | None = None,
                 file_options: Iterable[str] | None = None) -> None:
        self.arguments = arguments
        # The keys the file's table may hold; None takes any (a command without a schema).
        self.file_options = None if file_options is None else tuple(file_options)
        self.environ = os.environ if environ is None else environ
        self.section = section
        self.config_file = config_file or self.environ.get(CONFIG_ENV) or None
        self._file: dict[str, Any] | None = None

    def _table(self) -> dict[str, Any]:
        if self._file is None:
            table = load_section(self.config_file, self.section) if self.config_file else {}
            if self.file_options is not None and self.config_file:
                # Checked as a whole, so a file with several mistakes names them all.
                validate(table, option_table(self.file_options),
                         source=f"{self.config_file} [{self.section}]")
            self._file = table
        return self._file

    def get(self, option: str, default: T, convert: Callable[[Any], T]) -> T:
        """The option's value from the highest layer that sets it, converted."""
        value = self.arguments.get(option)
        where = f"--{option.replace('_', '-')}"
        if value is None:
            value, where = self.environ.get(env_name(option)), env_name(option)
        if value in (None, ""):
            value, where = self._table().get(option), f"{self.config_file} [{self.section}]"
        if value is None:
            return default
        try:
            return convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{option} from {where}: {exc}") from exc

    def text(self, option: str, default: str | None = None) -> str | None:
        return self.get(option, default, _text)

    def require(self, option: str) -> str:
        value = self.text(option)
        if value is None:
            raise ConfigError(f"no {option.replace('_', ' ')}: give --{option.replace('_', '-')}"
                              f" or set {env_name(option)}")
        return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def positive_float(value: Any) -> float:
    """A positive number of seconds, from text or a TOML number."""
    number = float(value) if isinstance(value, str | int | float) else None
    if number is None or isinstance(value, bool) or not number > 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def non_negative_int(value: Any) -> int:
    """A whole number, 0 or more, from text or a TOML integer."""
    try:
        number = int(value) if isinstance(value, str | int) and not isinstance(value, bool) \
            else None
    except ValueError:
        number = None
    if number is None or number < 0:
        raise ValueError(f"expected a whole number, 0 or more, got {value!r}")
    return number


def load_section(path: str, section: str) -> dict[str, Any]:
    """The ``[section]`` table of a TOML configuration file (empty if absent)."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration {path} is not valid TOML: {exc}") from exc
    table = document.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"configuration {path}: [{section}] must be a table")
    return table


def option_table(options: Iterable[str]) -> Table:
    """The schema of a settings table: these options, each text, a number or a boolean."""
    return Table(*(Key(name, (str, int, float, bool), None) for name in options))
