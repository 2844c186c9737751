"""Profile orders from the operator's data: the subscriptions the registry knows become the
profiles the SM-DP+ prepares.

The operator's data file is the one ``mps-bridge operator import`` reads (TOML or JSON,
``contracts[].subscriptions[]`` with ``iccid``, ``imsi`` and optionally ``msisdn``); only
the subscriptions are read here, and only the keys the SM-DP+ needs, so the file stays the
operator's single source of truth for both sides. A subscription may also name the ``eid``
its profile is meant for (then the eUICC gets it from its default SM-DP+, without an
activation code). Ordering is idempotent: a subscription whose ICCID has an order already
keeps it, so the same file can be given after every change.

The file is read rather than listening on the operator topics: the SM-DP+ only publishes
to the registry (installation results) and needs no subscription to the operator's data
changes, whose topics the broker's ACLs keep for the registry.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpa_emulator.smdp.errors import OrderError
from lpa_emulator.smdp.orders import Order, OrderStore
from mps_wire.identifiers import (
    IdentifierError,
    validate_eid,
    validate_iccid,
    validate_imsi,
    validate_msisdn,
)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription of the operator's data, as the SM-DP+ orders its profile."""

    iccid: str
    imsi: str
    msisdn: str | None = None
    eid: str | None = None
    contract: str | None = None


@dataclass(frozen=True, slots=True)
class Ordered:
    """What ordering one subscription did: its order, and whether it is new."""

    subscription: Subscription
    order: Order
    created: bool


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OrderError(f"cannot read the operator data {path}: {exc}") from exc
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() != ".toml" and text.lstrip().startswith("{"))
    try:
        return json.loads(text) if as_json else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OrderError(f"{path} is not valid {'JSON' if as_json else 'TOML'}: {exc}") from exc


def read_subscriptions(path: str | os.PathLike[str]) -> list[Subscription]:
    """Every subscription in an operator data file; :class:`OrderError` names the entry
    (``contracts[0].subscriptions[2].iccid``) and the problem."""
    source = Path(path)
    document = _load(source)
    if not isinstance(document, Mapping):
        raise OrderError(f"{source}: the operator data is not a table")
    contracts = document.get("contracts", [])
    if not isinstance(contracts, list):
        raise OrderError(f"{source}: contracts must be a list")
    found: list[Subscription] = []
    for i, contract in enumerate(contracts):
        where = f"contracts[{i}]"
        if not isinstance(contract, Mapping):
            raise OrderError(f"{source}: {where} is not a table")
        subs = contract.get("subscriptions", [])
        if not isinstance(subs, list):
            raise OrderError(f"{source}: {where}.subscriptions must be a list")
        contract_id = contract.get("id")
        for j, sub in enumerate(subs):
            found.append(_subscription(sub, f"{source}: {where}.subscriptions[{j}]",
                                       contract_id if isinstance(contract_id, str) else None))
    iccids = [s.iccid for s in found]
    if len(set(iccids)) != len(iccids):
        raise OrderError(f"{source}: an ICCID appears in two subscriptions")
    return found


def _subscription(raw: object, where: str, contract: str | None) -> Subscription:
    if not isinstance(raw, Mapping):
        raise OrderError(f"{where} is not a table")

    def text(key: str, required: bool) -> str | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise OrderError(f"{where}.{key} must be a string")
        return value

    try:
        iccid = validate_iccid(text("iccid", True) or "")
        imsi = validate_imsi(text("imsi", True) or "")
        msisdn = text("msisdn", False)
        eid = text("eid", False)
        return Subscription(iccid, imsi, None if msisdn is None else validate_msisdn(msisdn),
                            None if eid is None else validate_eid(eid), contract)
    except IdentifierError as exc:
        raise OrderError(f"{where}: {exc}") from exc


def order_subscriptions(store: OrderStore, subscriptions: Iterable[Subscription], *,
                        service_provider: str = "MPS",
                        profile_name: str = "MPS operational") -> list[Ordered]:
    """An order for every subscription that has none yet (by ICCID); existing ones are
    returned as they are."""
    done = []
    for sub in subscriptions:
        existing = store.by_iccid(sub.iccid)
        if existing is not None:
            if existing.imsi != sub.imsi:
                raise OrderError(f"ICCID {sub.iccid} is ordered with IMSI {existing.imsi}, "
                                 f"the operator data says {sub.imsi}")
            done.append(Ordered(sub, existing, False))
            continue
        order = store.add(iccid=sub.iccid, imsi=sub.imsi, msisdn=sub.msisdn, eid=sub.eid,
                          service_provider=service_provider, profile_name=profile_name)
        done.append(Ordered(sub, order, True))
    return done
