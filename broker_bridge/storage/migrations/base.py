"""One step of the schema."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema; applied once, in order, inside a transaction."""

    version: int
    name: str
    statements: tuple[str, ...]

