"""The operator data file's schema and the checks across its entries.

Each entry is checked against its table (:mod:`mps_common.schema`); what no single entry
shows (an ICCID listed twice, a number under two contracts, a ported number that is also
filed) is checked across them. Every problem of a file is reported at once, each naming the
key path (``contracts[0].subscriptions[2].iccid``) and the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from broker_bridge.errors import OperatorDataError
from broker_bridge.model import (
    LEGACY_TRUST,
    App,
    Contract,
    OtherOperator,
    Subscription,
    TrustLevel,
)
from mps_common.errors import Problem
from mps_common.schema import Key, Table, collect
from mps_mqtt.client import BrokerURL
from mps_wire.identifiers import validate_eid, validate_iccid, validate_imsi, validate_msisdn
from mps_wire.topics import DEFAULT_PREFIX, Topics, check_level

_PURPOSE = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")
_NUMBER_PREFIX = re.compile(r"\+[1-9][0-9]{0,14}")
_MAX_TEXT = 200


# --- checks of single values -------------------------------------------------------------

def _text(value: str) -> str:
    if not value.strip() or len(value) > _MAX_TEXT or not value.isprintable():
        raise ValueError(f"must be non-empty printable text of at most {_MAX_TEXT} "
                         "characters")
    return value


def _level(what: str) -> Callable[[str], str]:
    """An id that is also a topic level."""
    def check(value: str) -> str:
        try:
            return check_level(_text(value), what)
        except ValueError as exc:
            raise ValueError(f"{exc} (letters, digits and _.:@=- only)") from exc
    return check


def _identifier(validate: Callable[..., str], label: str) -> Callable[[Any], str]:
    return lambda value: validate(value, field=label)


def _trust(value: str) -> TrustLevel:
    try:
        return TrustLevel(_text(value))
    except ValueError:
        hint = ""
        if value in LEGACY_TRUST:
            level, standing = LEGACY_TRUST[value]
            hint = (f"; {value!r} is now {level.value!r}"
                    + (" with standing_consent = true" if standing else ""))
        raise ValueError(f"unknown trust level {value!r} (expected one of "
                         f"{', '.join(t.value for t in TrustLevel)}){hint}") from None


def _purpose(value: Any) -> str:
    if not isinstance(value, str) or not _PURPOSE.fullmatch(value):
        raise ValueError(f"purpose {value!r} must match {_PURPOSE.pattern}")
    return value


def _number_prefix(value: Any) -> str:
    if not isinstance(value, str) or not _NUMBER_PREFIX.fullmatch(value):
        raise ValueError(f"number prefix {value!r} must be + and 1 to 15 digits")
    return value


def _registry(value: str) -> str:
    BrokerURL.parse(_text(value))
    return value


def _topic_prefix(value: str) -> str:
    Topics(_text(value))
    return value


_MSISDN = _identifier(validate_msisdn, "MSISDN")

SUBSCRIPTION = Table(
    Key("iccid", str, check=_identifier(validate_iccid, "ICCID")),
    Key("imsi", str, check=_identifier(validate_imsi, "IMSI")),
    Key("msisdn", str, None, check=_MSISDN),
    # The eUICC the operator put this profile on itself (no SM-DP+ download to report).
    Key("eid", str, None, check=_identifier(validate_eid, "EID")),
    # Or a plain SIM the operator issued: its ICCID is the proof, the device goes by it.
    Key("plain_sim", bool, False),
)
CONTRACT = Table(
    Key("id", str, check=_level("contract id")),
    Key("holder", str, check=_text),
    Key("msisdns", list, (), item_check=_MSISDN),
    Table.rows("subscriptions", SUBSCRIPTION),
)
APP = Table(
    Key("id", str, check=_level("app id")),
    Key("name", str, check=_text),
    Key("trust", str, check=_trust),
    Key("purposes", list, (), item_check=_purpose),
    # Default: the trust level decides (partners are not asked).
    Key("standing_consent", bool, None),
)
OPERATOR = Table(
    Key("id", str, check=_level("operator id")),
    Key("name", str, check=_text),
    Key("registry", str, check=_registry),
    Key("prefix", str, DEFAULT_PREFIX, check=_topic_prefix),
    Key("number_prefixes", list, (), item_check=_number_prefix),
)
PORTED = Table(
    Key("msisdn", str, check=_MSISDN),
    Key("operator", str, check=_level("operator id")),
)
OPERATOR_DATA = Table(
    Table.rows("contracts", CONTRACT),
    Table.rows("apps", APP),
    Table.rows("operators", OPERATOR),
    Table.rows("ported", PORTED),
)
"""An operator data file (see :mod:`broker_bridge.operator` for an example)."""


# --- checks across entries ---------------------------------------------------------------

class _Entries:
    """Where each id, identifier and number was first listed; problems for repeats."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.seen: dict[str, dict[str, str]] = {}
        self.numbers: dict[str, tuple[str, str]] = {}  # msisdn -> (contract id, where)

    def problem(self, where: str, what: str) -> None:
        self.problems.append(Problem(where, what))

    def first(self, label: str, key: str, path: str, *, at: str | None = None,
              kind: str | None = None) -> bool:
        """True for the first ``key`` of its kind; a problem at ``path`` for a repeat.

        ``at`` is where the entry is named in later problems (default: ``path``).
        """
        seen = self.seen.setdefault(kind or label, {})
        before = seen.get(key)
        if before is None:
            seen[key] = at or path
            return True
        self.problem(path, f"{label} {key} is already listed at {before}")
        return False

    def claim_number(self, msisdn: str, contract_id: str | None, path: str) -> None:
        if contract_id is None:
            return  # the contract's id is already reported
        owner = self.numbers.get(msisdn)
        if owner is None:
            self.numbers[msisdn] = (contract_id, path)
        elif owner[0] != contract_id:
            self.problem(path, f"number {msisdn} is already listed for contract {owner[0]} "
                               f"({owner[1]})")


def _contract(entries: _Entries, entry: dict[str, Any] | None, where: str
              ) -> tuple[Contract, tuple[str, ...], tuple[Subscription, ...],
                         tuple[tuple[str, str | None], ...]] | None:
    if entry is None:
        return None
    cid = entry.get("id")
    if cid is not None:
        entries.first("contract", cid, f"{where}.id", at=where)
    msisdns: list[str] = []
    for j, msisdn in enumerate(entry.get("msisdns") or ()):
        path = f"{where}.msisdns[{j}]"
        if msisdn is None:
            continue
        if msisdn in msisdns:
            entries.problem(path, f"number {msisdn} is listed twice")
            continue
        entries.claim_number(msisdn, cid, path)
        msisdns.append(msisdn)
    subs = [_subscription(entries, sub, f"{where}.subscriptions[{j}]", cid)
            for j, sub in enumerate(entry.get("subscriptions") or ())]
    holder: str | None = entry.get("holder")
    if cid is None or holder is None:
        return None
    return (Contract(cid, holder), tuple(msisdns), *_split([s for s in subs if s is not None]))


def _split(found: list[tuple[Subscription, str | None, bool]]
           ) -> tuple[tuple[Subscription, ...], tuple[tuple[str, str | None], ...]]:
    """Subscriptions, and the (ICCID, EID) bindings some of them carry (EID None: a plain
    SIM)."""
    return (tuple(sub for sub, _, _ in found),
            tuple((sub.iccid, eid) for sub, eid, plain in found if eid is not None or plain))


def _subscription(entries: _Entries, sub: dict[str, Any] | None, where: str,
                  contract_id: str | None) -> tuple[Subscription, str | None, bool] | None:
    if sub is None:
        return None
    iccid, imsi, msisdn = sub.get("iccid"), sub.get("imsi"), sub.get("msisdn")
    if iccid is not None and not entries.first("ICCID", iccid, f"{where}.iccid"):
        iccid = None
    if imsi is not None and not entries.first("IMSI", imsi, f"{where}.imsi"):
        imsi = None
    if msisdn is not None:
        entries.claim_number(msisdn, contract_id, f"{where}.msisdn")
    if iccid is None or imsi is None or contract_id is None:
        return None
    if sub.get("plain_sim") and sub.get("eid") is not None:
        entries.problem(f"{where}.plain_sim", "a plain SIM has no EID: give eid or "
                                              "plain_sim, not both")
        return None
    return (Subscription(iccid=iccid, imsi=imsi, msisdn=msisdn, contract_id=contract_id),
            sub.get("eid"), bool(sub.get("plain_sim")))


def _app(entries: _Entries, entry: dict[str, Any] | None, where: str) -> App | None:
    if entry is None:
        return None
    app_id, trust, standing = entry.get("id"), entry.get("trust"), entry.get("standing_consent")
    if app_id is not None and not entries.first("app", app_id, f"{where}.id", at=where):
        app_id = None
    if standing is None:
        standing = trust is TrustLevel.PARTNER
    elif standing and trust is not None and trust is not TrustLevel.PARTNER:
        entries.problem(f"{where}.standing_consent",
                        "only partner apps may hold standing consent")
    purposes = tuple(dict.fromkeys(p for p in entry.get("purposes") or () if p is not None))
    name: str | None = entry.get("name")
    if app_id is None or name is None or trust is None:
        return None
    return App(app_id, name, trust, purposes, standing)


def _operator(entries: _Entries, entry: dict[str, Any] | None, where: str
              ) -> OtherOperator | None:
    if entry is None:
        return None
    op_id = entry.get("id")
    if op_id is not None and not entries.first("operator", op_id, f"{where}.id", at=where):
        op_id = None
    numbers = [prefix for j, prefix in enumerate(entry.get("number_prefixes") or ())
               if prefix is not None
               and entries.first("number prefix", prefix, f"{where}.number_prefixes[{j}]")]
    name, registry, prefix = entry.get("name"), entry.get("registry"), entry.get("prefix")
    if op_id is None or name is None or registry is None or prefix is None:
        return None
    return OtherOperator(op_id, name, registry, prefix, tuple(numbers))


def _ported(entries: _Entries, entry: dict[str, Any] | None, where: str
            ) -> tuple[str, str] | None:
    if entry is None:
        return None
    msisdn: str | None = entry.get("msisdn")
    operator: str | None = entry.get("operator")
    if msisdn is None or operator is None:
        return None
    path = f"{where}.msisdn"
    owner = entries.numbers.get(msisdn)
    if owner is not None and msisdn not in entries.seen.get("ported", {}):
        entries.problem(path, f"number {msisdn} is ported away but listed for contract "
                              f"{owner[0]}")
        return None
    if not entries.first("number", msisdn, path, at=where, kind="ported"):
        return None
    return msisdn, operator


def _each(rows: Sequence[dict[str, Any] | None] | None, key: str,
          check: Callable[[_Entries, dict[str, Any] | None, str], Any], entries: _Entries
          ) -> list[Any]:
    found = (check(entries, row, f"{key}[{i}]") for i, row in enumerate(rows or ()))
    return [item for item in found if item is not None]


def check_operator_data(document: Any, source: str) -> dict[str, list[Any]]:
    """The entries of a parsed operator document, by key: ``contracts`` as (contract,
    numbers, subscriptions, bindings as (ICCID, EID)), ``apps``, ``operators``, ``ported``
    as (number, operator id).

    Raises OperatorDataError naming every problem.
    """
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else type(document).__name__
        raise OperatorDataError(source, [Problem("", f"must be a table, got {kind}")])
    values, problems = collect(document, OPERATOR_DATA)
    entries = _Entries(problems)
    found = {"contracts": _each(values.get("contracts"), "contracts", _contract, entries),
             "apps": _each(values.get("apps"), "apps", _app, entries),
             "operators": _each(values.get("operators"), "operators", _operator, entries),
             "ported": _each(values.get("ported"), "ported", _ported, entries)}
    if problems:
        raise OperatorDataError(source, problems)
    return found
