"""The wire contract as documents: ``mps.cddl`` (every payload) and ``asyncapi.yaml``
(every topic), and a check of payloads against the CDDL.

Checking needs the CDDL validator ``pycddl`` (``pip install pycddl``), which the
registry itself does not: it is for tests and for app developers checking their own
messages.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Protocol

from mps_wire.errors import ValidationError, WireError

SCHEMA_DIR = Path(__file__).parent
CDDL_FILE = SCHEMA_DIR / "mps.cddl"
ASYNCAPI_FILE = SCHEMA_DIR / "asyncapi.yaml"


class SchemaUnavailableError(WireError, ImportError):
    """The CDDL validator is not installed."""


class _Schema(Protocol):
    def validate_cbor(self, cbor: bytes, /) -> object: ...


def cddl_text() -> str:
    """The contract's CDDL."""
    return CDDL_FILE.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=64)
def _schema(rule: str) -> _Schema:
    try:
        import pycddl  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        raise SchemaUnavailableError(
            "checking messages against the CDDL needs the pycddl package: "
            "pip install pycddl") from exc
    text = cddl_text()
    if f"\n{rule} = " not in f"\n{text}":
        raise ValueError(f"the CDDL defines no rule {rule!r}")
    # pycddl checks against the first rule of a schema: put the wanted one first.
    schema: _Schema = pycddl.Schema(f"mps-check-root = {rule}\n{text}")
    return schema


def validate(rule: str, payload: bytes) -> None:
    """Check an encoded payload against the CDDL rule ``rule`` (e.g. ``app-event``).

    Raises ValidationError when it does not match, SchemaUnavailableError without pycddl.
    """
    schema = _schema(rule)
    try:
        schema.validate_cbor(payload)
    except Exception as exc:  # pycddl.ValidationError, or a CBOR it cannot read
        if isinstance(exc, WireError):
            raise
        raise ValidationError(f"not a valid {rule}: {exc}") from exc


def rules() -> list[str]:
    """The names of the rules the CDDL defines, in order."""
    names = []
    for line in cddl_text().splitlines():
        if line and not line[0].isspace() and not line.startswith(";") and " = " in line:
            names.append(line.split(" = ", 1)[0])
    return names


__all__ = ["ASYNCAPI_FILE", "CDDL_FILE", "SchemaUnavailableError", "cddl_text", "rules",
           "validate"]
