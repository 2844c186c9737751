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
      eid = "89049032000000000000000000000163"  # optional: the eUICC the operator put
                                         # the profile on (else the SM-DP+ reports it)
      # plain_sim = true                 # or: issued on a plain SIM (no EID); a device
                                         # with it registers under this ICCID

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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker_bridge.errors import OperatorDataError, SubscriptionInUseError
from broker_bridge.model import (
    App,
    Change,
    Contract,
    OtherOperator,
    Subscription,
)
from broker_bridge.operator_schema import check_operator_data
from broker_bridge.registry import Effects, Registry
from broker_bridge.storage.base import Store
from mps_common.errors import Problem

KINDS = ("contracts", "numbers", "subscriptions", "apps", "operators", "ported")


@dataclass(frozen=True, slots=True)
class ContractEntry:
    """One contract of an operator file with the numbers and subscriptions under it."""

    contract: Contract
    msisdns: tuple[str, ...]
    subscriptions: tuple[Subscription, ...]
    bindings: tuple[tuple[str, str | None], ...] = ()  # (ICCID, EID) the operator bound;
    # EID None: a plain SIM


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


def parse_operator_data(document: Any, source: str) -> OperatorData:
    """Validate a parsed operator document (the TOML/JSON shape); raise OperatorDataError
    naming every problem (see :mod:`broker_bridge.operator_schema`)."""
    found = check_operator_data(document, source)
    return OperatorData(source, tuple(ContractEntry(*entry) for entry in found["contracts"]),
                        tuple(found["apps"]), tuple(found["operators"]),
                        tuple(found["ported"]))


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
        _bind(registry, data, actor)
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


def _bind(registry: Registry, data: OperatorData, actor: str) -> None:
    """The file's bindings; moving a bound profile takes ``mps-bridge operator bind
    --swap``, never an import."""
    for i, entry in enumerate(data.contracts):
        for iccid, eid in entry.bindings:
            try:
                registry.bind_subscription(iccid, eid, actor=actor)
            except SubscriptionInUseError as exc:
                j = next(j for j, s in enumerate(entry.subscriptions) if s.iccid == iccid)
                raise OperatorDataError(data.source, [Problem(
                    f"contracts[{i}].subscriptions[{j}].eid",
                    f"{exc}: mps-bridge operator bind --swap")]) from exc


def import_operator_file(store: Store, path: str | os.PathLike[str]) -> ImportReport:
    """Read, validate and store an operator data file: all of it, or nothing."""
    return import_operator_data(store, read_operator_file(path))
