"""Declarative checks for configuration documents (TOML tables, JSON objects).

A schema is data: a :class:`Table` of :class:`Key` rows, each naming its type, its default
and an optional ``check`` that converts or refuses the value. :func:`validate` walks a
document against it and reports every problem at once, each naming the key path and the
source file, as one :class:`~mps_common.errors.ConfigError`::

    PROFILE = Table(
        Key("name", str, check=matches(r"[a-z0-9-]+")),
        Table.key("modem", Table(Key("port", str), Key("command_timeout", float, 5.0,
                                                       check=positive))),
    )
    values = validate(document, PROFILE, source="board.toml")
    values["modem"]["command_timeout"]  # 5.0 when absent

Firmware profiles, operator data and settings files are all checked this way, so their
errors read alike: ``board.toml: modem.port: is required``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mps_common.errors import ConfigError, Problem


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key that must be present.
REQUIRED: Any = _Required()

Check = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a table: its type, its default (or :data:`REQUIRED`) and a check.

    ``kind`` ``float`` accepts integers too; booleans are never taken for numbers.
    ``items`` is the type of a list's elements and ``item_check`` checks each of them, a
    problem naming its index (``device.capabilities[1]``). ``check`` gets the typed value
    and returns what the caller receives, or raises ``ValueError``/``TypeError`` with the
    reason.
    """

    name: str
    kind: type | tuple[type, ...]
    default: Any = REQUIRED
    check: Check | None = None
    items: type | None = None
    table: Table | None = None
    item_check: Check | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """A table's keys; ``open`` tables keep keys the schema does not name."""

    keys: tuple[Key, ...]
    open: bool = False
    by_name: dict[str, Key] = field(init=False, repr=False, compare=False)

    def __init__(self, *keys: Key, open: bool = False) -> None:
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "open", open)
        object.__setattr__(self, "by_name", {k.name: k for k in keys})

    @staticmethod
    def key(name: str, table: Table, *, required: bool = True) -> Key:
        """A key whose value is a nested table checked against ``table``."""
        return Key(name, dict, REQUIRED if required else None, table=table)


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "text", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _one(key: Key, value: Any, where: str, problems: list[Problem]) -> Any:
    if not _is(value, key.kind):
        problems.append(Problem(where, f"must be {_type_name(key.kind)}, "
                                       f"got {type(value).__name__}"))
        return None
    if key.items is not None:
        for i, item in enumerate(value):
            if not _is(item, key.items):
                problems.append(Problem(f"{where}[{i}]", f"must be {_type_name(key.items)}"))
                return None
    if key.item_check is not None:
        value = _items(key.item_check, value, where, problems)
        if value is None:
            return None
    if key.table is not None:
        return _walk(value, key.table, where, problems)
    if float in (key.kind if isinstance(key.kind, tuple) else (key.kind,)) \
            and isinstance(value, int):
        value = float(value)
    if key.check is None:
        return value
    try:
        return key.check(value)
    except (ValueError, TypeError) as exc:
        problems.append(Problem(where, str(exc)))
        return None


def _items(check: Check, values: list[Any], where: str,
           problems: list[Problem]) -> list[Any] | None:
    out, ok = [], True
    for i, item in enumerate(values):
        try:
            out.append(check(item))
        except (ValueError, TypeError) as exc:
            problems.append(Problem(f"{where}[{i}]", str(exc)))
            ok = False
    return out if ok else None


def _walk(document: Mapping[str, Any], table: Table, where: str,
          problems: list[Problem]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in table.keys:
        at = _join(where, key.name)
        if key.name not in document:
            if key.default is REQUIRED:
                problems.append(Problem(at, "is required"))
            elif key.table is not None and key.default is None:
                values[key.name] = None
            else:
                values[key.name] = key.default
            continue
        values[key.name] = _one(key, document[key.name], at, problems)
    for name in document:
        if name not in table.by_name:
            if table.open:
                values[name] = document[name]
            else:
                problems.append(Problem(_join(where, str(name)), "is not a known setting"))
    return values


def validate(document: Mapping[str, Any], schema: Table, *, source: str) -> dict[str, Any]:
    """The document's values, typed, checked and defaulted; every problem at once.

    Raises :class:`ConfigError` whose ``problems`` name each key path.
    """
    values, problems = collect(document, schema)
    if problems:
        raise config_error(source, problems)
    return values


def collect(document: Mapping[str, Any], schema: Table
            ) -> tuple[dict[str, Any], list[Problem]]:
    """The document's values and the problems found, for a caller that checks more
    (keys that depend on each other) before reporting everything at once.

    A value with a problem is ``None``.
    """
    problems: list[Problem] = []
    return _walk(document, schema, "", problems), problems


def config_error(source: str, problems: Sequence[Problem]) -> ConfigError:
    """One :class:`ConfigError` listing ``problems`` found in ``source``."""
    lines = tuple(f"{source}: {p}" for p in problems)
    return ConfigError("\n".join(lines), problems=tuple(problems), source=source)


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's document, or a :class:`ConfigError` saying why it cannot be read."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}", source=str(p)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}", source=str(p)) from exc


# --- checks ----------------------------------------------------------------------------

def positive(value: float) -> float:
    """A number greater than 0."""
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def matches(pattern: str) -> Check:
    """Text matching ``pattern`` in full."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must match {pattern}")
        return value
    return check


def one_of(*choices: str) -> Check:
    """Text that is one of ``choices``."""
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return check


def each(check: Check) -> Check:
    """Apply ``check`` to every element of a list, naming the first bad index."""
    def check_all(values: list[Any]) -> tuple[Any, ...]:
        out = []
        for i, value in enumerate(values):
            try:
                out.append(check(value))
            except ValueError as exc:
                raise ValueError(f"[{i}] {exc}") from exc
        return tuple(out)
    return check_all
