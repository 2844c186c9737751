"""Profile state changes from the eIM to the operator's registry (CBOR over MQTT).

Each enable, disable or delete PSMO an eUICC carried out, as its signed
EuiccPackageResult verified against CERT.EUICC says, becomes one report on the operator
topic ``{prefix}/operator/profiles`` (:class:`mps_wire.messages.ProfileChange`), so the
registry unbinds a deleted profile from the eUICC as it binds an installed one on the
SM-DP+'s installation reports. Reports wait in the eIM's database (an outbox) and
:class:`~lpa_emulator.smdp.report.MqttReportPublisher` delivers them after the broker's
PUBACK; ``seq`` and ``transaction`` let the registry drop one that arrives twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lpa_emulator.eim.store import EimStore, Package
from mps_esim.sgp32.result import EuiccPackageResult
from mps_wire import codec
from mps_wire.messages import PROFILES, ProfileChange, ProfileOutcome

REPORT_KIND = PROFILES
"""The operator topic level of the eIM's reports."""

_OUTCOMES = {"enable": ProfileOutcome.ENABLED, "disable": ProfileOutcome.DISABLED,
             "delete": ProfileOutcome.DELETED}


def profile_changes(eim_id: str, eid: str, package: Package, result: EuiccPackageResult,
                    der: bytes) -> list[ProfileChange]:
    """The changes a verified result reports: one per enable, disable or delete PSMO of
    ``package`` whose result is ok (results answer the operations in order; the first
    failure ends the package, SGP.32 5.9.1). ``seq`` is 0 until the outbox numbers it."""
    operations: list[dict[str, Any]] = package.request.get("operations", [])
    txid = (result.transaction_id or package.transaction_id or b"").hex().upper()
    changes = []
    for op, answer in zip(operations, result.results, strict=False):
        outcome = _OUTCOMES.get(str(op.get("kind")))
        if outcome is None or answer.kind != op.get("kind") or answer.code != 0:
            continue
        changes.append(ProfileChange(
            seq=0, eid=eid, iccid=str(op["iccid"]), result=outcome, transaction=txid,
            eim=eim_id, ts=int(time.time() * 1000), epr=der))
    return changes


def queue(store: EimStore, changes: list[ProfileChange],
          notify: Callable[[], None] | None = None) -> list[int]:
    """Keep ``changes`` in the outbox (and wake the publisher); their report numbers."""
    numbers = [store.queue_report(_payload(change)) for change in changes]
    if numbers and notify is not None:
        notify()
    return numbers


def _payload(change: ProfileChange) -> Callable[[int], bytes]:
    def make(seq: int) -> bytes:
        return codec.encode(replace(change, seq=seq).to_wire())
    return make
