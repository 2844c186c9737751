"""The number portability list an operator provides: which operator serves which number,
from when until when. Read from CSV or JSON and checked whole before anything is stored.

CSV (a header line, then one number a line; ``contract`` optional)::

    msisdn,operator,valid_from,valid_until,contract
    +4915112345678,other,2026-01-01T00:00:00Z,,
    +4917012345678,home,2026-02-01T00:00:00Z,,C-1001

JSON: a list of objects with the same keys (or ``{"numbers": [...]}``). Times are ISO 8601
with a zone (``Z`` or an offset) or milliseconds since the epoch; an empty ``valid_until``
is open ended. ``operator`` is another operator's id, or the id the import names this
registry's own operator by (``--home``, default ``home``): such a number is ported in, and
filed under ``contract`` when one is given.
"""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from broker_bridge.errors import OperatorDataError
from mps_common.errors import Problem
from mps_wire.identifiers import IdentifierError, validate_msisdn

HOME = "home"
"""The default name by which a portability list names this registry's own operator."""

MAX_PROBLEMS = 50
"""Problems reported for one file; past these the count of the rest."""

COLUMNS = ("msisdn", "operator", "valid_from", "valid_until", "contract")


class PortEntry(NamedTuple):
    """One period of one number: ``operator`` None is this registry's operator."""

    msisdn: str
    valid_from: int
    valid_until: int | None
    operator: str | None
    contract: str | None

    def valid_at(self, now: int) -> bool:
        return self.valid_from <= now and (self.valid_until is None or now < self.valid_until)


def parse_time(value: object) -> int | None:
    """Milliseconds since the epoch from ISO 8601 with a zone or an integer; None for
    empty. ValueError for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"time {value} is negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"time {value!r} is neither ISO 8601 text nor milliseconds")
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {value!r} is not ISO 8601 (e.g. 2026-01-01T00:00:00Z)"
                         ) from None
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no zone: add Z for UTC")
    return int(moment.timestamp() * 1000)


class _Problems:
    def __init__(self) -> None:
        self.found: list[Problem] = []
        self.more = 0

    def add(self, where: str, what: str) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(Problem(where, what))
        else:
            self.more += 1

    def all(self) -> list[Problem]:
        extra = [Problem("", f"... and {self.more} more problems")] if self.more else []
        return [*self.found, *extra]


def _rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, row) of a CSV or JSON file; ValueError for a file of neither shape."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("numbers")
        if not isinstance(data, list):
            raise ValueError("a JSON portability list is a list of numbers "
                             "(or an object with one, \"numbers\")")
        for i, row in enumerate(data):
            yield f"numbers[{i}]", row if isinstance(row, dict) else {"": row}
        return
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS[:3] if c not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"the CSV header lacks {', '.join(missing)} (expected "
                         f"{','.join(COLUMNS)})")
    for row in reader:
        yield f"line {reader.line_num}", row


def _entry(row: Mapping[str, Any], home: str, where: str, problems: _Problems
           ) -> PortEntry | None:
    unknown = sorted(str(k) for k in row if k not in COLUMNS)
    if unknown:
        problems.add(where, f"unknown field {unknown[0]!r} (fields: {', '.join(COLUMNS)})")
        return None
    try:
        msisdn = validate_msisdn(row.get("msisdn"))
        start = parse_time(row.get("valid_from"))
        until = parse_time(row.get("valid_until"))
    except (IdentifierError, ValueError) as exc:
        problems.add(where, str(exc))
        return None
    operator, contract = row.get("operator") or None, row.get("contract") or None
    if start is None:
        problems.add(where, "valid_from is missing")
    elif until is not None and until <= start:
        problems.add(where, "valid_until is not after valid_from")
    elif not isinstance(operator, str):
        problems.add(where, f"operator is missing (another operator's id, or {home!r})")
    elif contract is not None and (operator != home or not isinstance(contract, str)):
        problems.add(where, f"a contract goes with numbers ported in (operator {home!r})")
    else:
        return PortEntry(msisdn, start, until, None if operator == home else operator,
                         contract)
    return None


def _overlaps(entries: list[PortEntry], problems: _Problems) -> None:
    entries.sort()
    for before, after in itertools.pairwise(entries):
        if before.msisdn == after.msisdn and (before.valid_until is None
                                              or before.valid_until > after.valid_from):
            problems.add(after.msisdn, "two periods of the number overlap")


def read_portability(path: str | os.PathLike[str], *, home: str = HOME) -> list[PortEntry]:
    """Every entry of a portability file, sorted by number and start, checked whole:
    :class:`OperatorDataError` names each problem (line or index) and nothing is read
    when there is one."""
    source = str(path)
    problems = _Problems()
    entries: list[PortEntry] = []
    try:
        for where, row in _rows(Path(path)):
            entry = _entry(row, home, where, problems)
            if entry is not None:
                entries.append(entry)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise OperatorDataError(source, [Problem("", str(exc))]) from exc
    _overlaps(entries, problems)
    if problems.found:
        raise OperatorDataError(source, problems.all())
    return entries


def check_references(source: str, entries: Iterable[PortEntry], operators: set[str],
                     contracts: set[str]) -> None:
    """Every operator and contract the entries name must be known to the registry."""
    problems = _Problems()
    for entry in entries:
        if entry.operator is not None and entry.operator not in operators:
            problems.add(entry.msisdn, f"unknown operator {entry.operator!r} "
                                       "(mps-bridge operator add-operator)")
        if entry.contract is not None and entry.contract not in contracts:
            problems.add(entry.msisdn, f"unknown contract {entry.contract!r}")
    if problems.found:
        raise OperatorDataError(source, problems.all())
