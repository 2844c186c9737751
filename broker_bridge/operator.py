"""Operator data: contracts, their numbers and subscriptions, apps, other operators and
ported numbers, from TOML or JSON.

A file is parsed and validated completely before anything is stored; every problem is
reported with the file, the entry (``contracts[0].subscriptions[2].iccid``) and what is
wrong. Importing stores the whole file in one transaction, and importing the same file
again changes nothing. Changes that concern paired apps (a subscription moving to another
contract, an app losing trust) are announced to them like any other change.

The shape (TOML; JSON has the same keys)::

    [[contracts]]
    id = "C-1001"
    holder = "Paul Becker"
    msisdns = ["+4915112345678"]
      [[contracts.subscriptions]]
      iccid = "8949262010000000010"
      imsi = "262010000000001"
      msisdn = "+4915112345678"          # optional

    [[apps]]
    id = "health-app"
    name = "Health"
    trust = "verified"                   # partner, verified or unverified
    purposes = ["health-monitoring"]
    standing_consent = true              # partner apps only, and their default:
                                         # pair without asking the user

    [[operators]]                        # other operators, for number routing
    id = "other-mobile"
    name = "Other Mobile"
    registry = "mqtts://registry.other-mobile.example:8883"
    prefix = "mps/v1"                    # its topic prefix (default mps/v1)
    number_prefixes = ["+49160", "+49170"]

    [[ported]]                           # numbers ported away to another operator
    msisdn = "+4915199990000"
    operator = "other-mobile"
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker_bridge.errors import OperatorDataError, Problem
from broker_bridge.model import (
    LEGACY_TRUST,
    App,
    Change,
    Contract,
    OtherOperator,
    Subscription,
    TrustLevel,
)
from broker_bridge.registry import Effects, Registry
from broker_bridge.storage.base import Store
from mps_mqtt.client import BrokerURL
from mps_wire.identifiers import (
    IdentifierError,
    validate_iccid,
    validate_imsi,
    validate_msisdn,
)
from mps_wire.topics import DEFAULT_PREFIX, Topics, check_level

_PURPOSE = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")
_NUMBER_PREFIX = re.compile(r"\+[1-9][0-9]{0,14}")
_MAX_TEXT = 200

KINDS = ("contracts", "numbers", "subscriptions", "apps", "operators", "ported")


@dataclass(frozen=True, slots=True)
class ContractEntry:
    """One contract of an operator file with the numbers and subscriptions under it."""

    contract: Contract
    msisdns: tuple[str, ...]
    subscriptions: tuple[Subscription, ...]


@dataclass(frozen=True, slots=True)
class OperatorData:
    """A validated operator data file; ``ported`` pairs a number with an operator id."""

    source: str
    contracts: tuple[ContractEntry, ...] = ()
    apps: tuple[App, ...] = ()
    operators: tuple[OtherOperator, ...] = ()
    ported: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class ImportReport:
    """What an import did: for each kind of entity, the keys added, updated and unchanged."""

    source: str
    changes: dict[str, dict[Change, list[str]]] = field(
        default_factory=lambda: {kind: {c: [] for c in Change} for kind in KINDS})

    def note(self, kind: str, key: str, change: Change) -> None:
        self.changes[kind][change].append(key)

    def count(self, change: Change) -> int:
        return sum(len(by_change[change]) for by_change in self.changes.values())

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source,
                **{kind: {c.value: list(keys) for c, keys in by_change.items()}
                   for kind, by_change in self.changes.items()}}


# --- reading -----------------------------------------------------------------------------

def read_operator_file(path: str | os.PathLike[str]) -> OperatorData:
    """Read and validate an operator data file, TOML or JSON.

    The format follows the suffix (``.toml``, ``.json``); any other name is sniffed: a
    document starting with ``{`` is JSON, anything else TOML. Raises OperatorDataError for
    an unparseable or invalid file, OSError when it cannot be read.
    """
    source = os.fspath(path)
    raw = Path(source).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OperatorDataError(source, [Problem("", f"not UTF-8 text: {exc}")]) from exc
    suffix = Path(source).suffix.lower()
    as_json = suffix == ".json" or (suffix != ".toml" and text.lstrip().startswith("{"))
    return parse_operator_data(_load_json(text, source) if as_json else _load_toml(text, source),
                               source)


def _load_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OperatorDataError(source, [Problem("", f"not valid TOML: {exc}")]) from exc


def _load_json(text: str, source: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"key {key!r} appears twice in one object")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise OperatorDataError(source, [Problem("", f"not valid JSON: {exc}")]) from exc


# --- validating --------------------------------------------------------------------------

class _Checker:
    """Walks a parsed document, collecting every problem instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(Problem(where, what))

    def table(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(where, f"must be a table, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.problem(_join(where, key), f"unknown key (expected one of "
                                                f"{', '.join(allowed)})")
        return value

    def array(self, table: Mapping[str, Any], key: str, where: str) -> list[Any]:
        value = table.get(key, [])
        if not isinstance(value, list):
            self.problem(_join(where, key), f"must be an array, got {_kind(value)}")
            return []
        return value

    def text(self, table: Mapping[str, Any], key: str, where: str, *, required: bool = True
             ) -> str | None:
        path = _join(where, key)
        if key not in table:
            if required:
                self.problem(path, "missing")
            return None
        value = table[key]
        if not isinstance(value, str):
            self.problem(path, f"must be text, got {_kind(value)}")
            return None
        if not value.strip() or len(value) > _MAX_TEXT or not value.isprintable():
            self.problem(path, f"must be non-empty printable text of at most {_MAX_TEXT} "
                               "characters")
            return None
        return value

    def identifier(self, value: Any, path: str, check: Callable[..., str], label: str
                   ) -> str | None:
        try:
            return check(value, field=label)
        except IdentifierError as exc:
            self.problem(path, str(exc))
            return None

    def level(self, value: str | None, path: str, what: str) -> str | None:
        if value is None:
            return None
        try:
            return check_level(value, what)
        except ValueError as exc:
            self.problem(path, f"{exc} (letters, digits and _.:@=- only)")
            return None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    names = {dict: "a table", list: "an array", str: "text", bool: "a boolean",
             int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def parse_operator_data(document: Any, source: str) -> OperatorData:
    """Validate a parsed operator document (the TOML/JSON shape); raise OperatorDataError."""
    check = _Checker(source)
    top = check.table(document, "", ("contracts", "apps", "operators", "ported"))
    if top is None:
        raise OperatorDataError(source, check.problems)

    contracts: list[ContractEntry] = []
    contract_at: dict[str, str] = {}
    number_owner: dict[str, tuple[str, str]] = {}  # msisdn -> (contract id, where)
    iccid_at: dict[str, str] = {}
    imsi_at: dict[str, str] = {}

    def claim_number(msisdn: str, contract_id: str | None, path: str) -> None:
        if contract_id is None:
            return  # the contract's id is already reported
        owner = number_owner.get(msisdn)
        if owner is None:
            number_owner[msisdn] = (contract_id, path)
        elif owner[0] != contract_id:
            check.problem(path, f"number {msisdn} is already listed for contract {owner[0]} "
                                f"({owner[1]})")

    for i, raw in enumerate(check.array(top, "contracts", "")):
        where = f"contracts[{i}]"
        entry = check.table(raw, where, ("id", "holder", "msisdns", "subscriptions"))
        if entry is None:
            continue
        cid = check.level(check.text(entry, "id", where), f"{where}.id", "contract id")
        if cid is not None:
            if cid in contract_at:
                check.problem(f"{where}.id", f"contract {cid} is already listed at "
                                             f"{contract_at[cid]}")
            else:
                contract_at[cid] = where
        holder = check.text(entry, "holder", where)

        msisdns: list[str] = []
        for j, value in enumerate(check.array(entry, "msisdns", where)):
            path = f"{where}.msisdns[{j}]"
            msisdn = check.identifier(value, path, validate_msisdn, "MSISDN")
            if msisdn is None:
                continue
            if msisdn in msisdns:
                check.problem(path, f"number {msisdn} is listed twice")
                continue
            claim_number(msisdn, cid, path)
            msisdns.append(msisdn)

        subs: list[Subscription] = []
        for j, value in enumerate(check.array(entry, "subscriptions", where)):
            sub_where = f"{where}.subscriptions[{j}]"
            sub = check.table(value, sub_where, ("iccid", "imsi", "msisdn"))
            if sub is None:
                continue
            iccid = imsi = msisdn = None
            if "iccid" not in sub:
                check.problem(f"{sub_where}.iccid", "missing")
            else:
                iccid = check.identifier(sub["iccid"], f"{sub_where}.iccid", validate_iccid,
                                         "ICCID")
            if iccid is not None:
                if iccid in iccid_at:
                    check.problem(f"{sub_where}.iccid", f"ICCID {iccid} is already listed at "
                                                        f"{iccid_at[iccid]}")
                    iccid = None
                else:
                    iccid_at[iccid] = f"{sub_where}.iccid"
            if "imsi" not in sub:
                check.problem(f"{sub_where}.imsi", "missing")
            else:
                imsi = check.identifier(sub["imsi"], f"{sub_where}.imsi", validate_imsi, "IMSI")
            if imsi is not None:
                if imsi in imsi_at:
                    check.problem(f"{sub_where}.imsi", f"IMSI {imsi} is already listed at "
                                                       f"{imsi_at[imsi]}")
                    imsi = None
                else:
                    imsi_at[imsi] = f"{sub_where}.imsi"
            if "msisdn" in sub:
                msisdn = check.identifier(sub["msisdn"], f"{sub_where}.msisdn",
                                          validate_msisdn, "MSISDN")
                if msisdn is not None:
                    claim_number(msisdn, cid, f"{sub_where}.msisdn")
            if iccid is not None and imsi is not None and cid is not None:
                subs.append(Subscription(iccid=iccid, imsi=imsi, msisdn=msisdn,
                                         contract_id=cid))

        if cid is not None and holder is not None:
            contracts.append(ContractEntry(Contract(cid, holder), tuple(msisdns), tuple(subs)))

    apps: list[App] = []
    app_at: dict[str, str] = {}
    for i, raw in enumerate(check.array(top, "apps", "")):
        where = f"apps[{i}]"
        entry = check.table(raw, where, ("id", "name", "trust", "purposes", "standing_consent"))
        if entry is None:
            continue
        app_id = check.level(check.text(entry, "id", where), f"{where}.id", "app id")
        if app_id is not None:
            if app_id in app_at:
                check.problem(f"{where}.id", f"app {app_id} is already listed at "
                                             f"{app_at[app_id]}")
                app_id = None
            else:
                app_at[app_id] = where
        name = check.text(entry, "name", where)
        trust: TrustLevel | None = None
        raw_trust = check.text(entry, "trust", where)
        if raw_trust is not None:
            try:
                trust = TrustLevel(raw_trust)
            except ValueError:
                hint = ""
                if raw_trust in LEGACY_TRUST:
                    level, standing = LEGACY_TRUST[raw_trust]
                    hint = (f"; {raw_trust!r} is now {level.value!r}"
                            + (" with standing_consent = true" if standing else ""))
                check.problem(f"{where}.trust", f"unknown trust level {raw_trust!r} (expected "
                                                f"one of {', '.join(t.value for t in TrustLevel)})"
                                                + hint)
        # The trust level decides whether the user is asked: partners are not, unless the
        # operator says otherwise.
        standing = entry.get("standing_consent", trust is TrustLevel.PARTNER)
        if not isinstance(standing, bool):
            check.problem(f"{where}.standing_consent",
                          f"must be true or false, got {_kind(standing)}")
            standing = False
        elif standing and trust is not None and trust is not TrustLevel.PARTNER:
            check.problem(f"{where}.standing_consent",
                          "only partner apps may hold standing consent")
        purposes: list[str] = []
        for j, value in enumerate(check.array(entry, "purposes", where)):
            if not isinstance(value, str) or not _PURPOSE.fullmatch(value):
                check.problem(f"{where}.purposes[{j}]",
                              f"purpose {value!r} must match {_PURPOSE.pattern}")
            elif value not in purposes:
                purposes.append(value)
        if app_id is not None and name is not None and trust is not None:
            apps.append(App(app_id, name, trust, tuple(purposes), standing))

    operators = _parse_operators(check, top)
    ported: list[tuple[str, str]] = []
    ported_at: dict[str, str] = {}
    for i, raw in enumerate(check.array(top, "ported", "")):
        where = f"ported[{i}]"
        entry = check.table(raw, where, ("msisdn", "operator"))
        if entry is None:
            continue
        msisdn = None
        if "msisdn" not in entry:
            check.problem(f"{where}.msisdn", "missing")
        else:
            msisdn = check.identifier(entry["msisdn"], f"{where}.msisdn", validate_msisdn,
                                      "MSISDN")
        operator = check.level(check.text(entry, "operator", where), f"{where}.operator",
                               "operator id")
        if msisdn is None or operator is None:
            continue
        if msisdn in ported_at:
            check.problem(f"{where}.msisdn", f"number {msisdn} is already listed at "
                                             f"{ported_at[msisdn]}")
        elif msisdn in number_owner:
            check.problem(f"{where}.msisdn", f"number {msisdn} is ported away but listed for "
                                             f"contract {number_owner[msisdn][0]}")
        else:
            ported_at[msisdn] = where
            ported.append((msisdn, operator))

    if check.problems:
        raise OperatorDataError(source, check.problems)
    return OperatorData(source, tuple(contracts), tuple(apps), operators, tuple(ported))


def _parse_operators(check: _Checker, top: Mapping[str, Any]) -> tuple[OtherOperator, ...]:
    operators: list[OtherOperator] = []
    operator_at: dict[str, str] = {}
    prefix_at: dict[str, str] = {}
    for i, raw in enumerate(check.array(top, "operators", "")):
        where = f"operators[{i}]"
        entry = check.table(raw, where, ("id", "name", "registry", "prefix",
                                         "number_prefixes"))
        if entry is None:
            continue
        op_id = check.level(check.text(entry, "id", where), f"{where}.id", "operator id")
        if op_id is not None:
            if op_id in operator_at:
                check.problem(f"{where}.id", f"operator {op_id} is already listed at "
                                             f"{operator_at[op_id]}")
                op_id = None
            else:
                operator_at[op_id] = where
        name = check.text(entry, "name", where)
        registry = check.text(entry, "registry", where)
        if registry is not None:
            try:
                BrokerURL.parse(registry)
            except ValueError as exc:
                check.problem(f"{where}.registry", str(exc))
                registry = None
        prefix = check.text(entry, "prefix", where, required=False) or DEFAULT_PREFIX
        try:
            Topics(prefix)
        except ValueError as exc:
            check.problem(f"{where}.prefix", str(exc))
        numbers: list[str] = []
        for j, value in enumerate(check.array(entry, "number_prefixes", where)):
            path = f"{where}.number_prefixes[{j}]"
            if not isinstance(value, str) or not _NUMBER_PREFIX.fullmatch(value):
                check.problem(path, f"number prefix {value!r} must be + and 1 to 15 digits")
            elif value in prefix_at:
                check.problem(path, f"number prefix {value} is already listed at "
                                    f"{prefix_at[value]}")
            else:
                prefix_at[value] = path
                numbers.append(value)
        if op_id is not None and name is not None and registry is not None:
            operators.append(OtherOperator(op_id, name, registry, prefix, tuple(numbers)))
    return tuple(operators)


# --- storing -----------------------------------------------------------------------------

def import_operator_data(store: Store, data: OperatorData, *,
                         actor: str = "operator:import") -> ImportReport:
    """Store validated operator data in one transaction; report what changed.

    Entities the store holds but the file does not mention are left as they are. A
    ported number must name an operator of the file or of the store.
    """
    registry = Registry(store)
    effects = Effects()
    report = ImportReport(data.source)
    with store.transaction():
        for entry in data.contracts:
            report.note("contracts", entry.contract.id, store.upsert_contract(entry.contract))
        for op in data.operators:
            report.note("operators", op.id, registry.put_operator(op))
        for entry in data.contracts:
            numbers = list(entry.msisdns)
            numbers += [s.msisdn for s in entry.subscriptions
                        if s.msisdn is not None and s.msisdn not in numbers]
            for msisdn in numbers:
                report.note("numbers", msisdn, registry.file_number(msisdn, entry.contract.id))
        for entry in data.contracts:
            for sub in entry.subscriptions:
                report.note("subscriptions", sub.iccid, registry.put_subscription(sub, effects))
        for i, (msisdn, operator_id) in enumerate(data.ported):
            if store.operator(operator_id) is None:
                raise OperatorDataError(data.source, [Problem(
                    f"ported[{i}].operator", f"no operator {operator_id!r} in the file or "
                                             "the registry")])
            store.remove_number(msisdn)
            report.note("ported", msisdn, store.set_ported(msisdn, operator_id))
        for app in data.apps:
            change, app_effects = registry.put_app(app, actor=actor)
            effects.add(app_effects)
            report.note("apps", app.id, change)
        if report.count(Change.ADDED) or report.count(Change.UPDATED):
            store.append_audit(actor, "operator:import", "ok", subject=data.source,
                               detail={"added": report.count(Change.ADDED),
                                       "updated": report.count(Change.UPDATED),
                                       "events": len(effects.events)})
    return report


def import_operator_file(store: Store, path: str | os.PathLike[str]) -> ImportReport:
    """Read, validate and store an operator data file: all of it, or nothing."""
    return import_operator_data(store, read_operator_file(path))
