"""What the eUICC keeps for SGP.32: its associated eIMs, the eUICC package results the
eIMs have not received yet, the Immediate Enable configuration and a granted rollback.

Part of :class:`~lpa_emulator.euicc.state.CardState` (key ``iot`` of the state file), so an
eUICC package's changes (profiles, counter, result) are committed in one atomic write:
after a failure or a reset the card has all of them or none. The eIM configurations are
kept as the DER of their EimConfigurationData (hex at this edge), the results as the DER
the IPA receives.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mps_esim import tlv
from mps_esim.sgp32.eim import EimConfig
from mps_esim.sgp32.immediate import ImmediateEnable

MAX_EIMS = 8
"""eIM configurations one card holds; AddInitialEim/addEim beyond: insufficientMemory."""
MAX_RESULTS = 16
"""Undelivered package results kept; beyond that the oldest is dropped."""


@dataclass(frozen=True)
class RollbackGrant:
    """An enable PSMO run with its rollbackFlag (SGP.32 3.4.1): the profile enabled then,
    the one enabled before, and the package (eIM, counter, transaction) that granted it."""

    enabled: str
    previous: str
    eim_id: str = ""
    counter: int = 0
    transaction_id: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "previous": self.previous, "eim": self.eim_id,
                "counter": self.counter, "transaction": None if self.transaction_id is None
                else self.transaction_id.hex().upper()}

    @classmethod
    def from_dict(cls, data: object) -> RollbackGrant:
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in (
                "enabled", "previous", "eim")) or not isinstance(data.get("counter"), int):
            raise TypeError("iot.rollback must be {enabled, previous, eim, counter, "
                            "transaction}")
        txid = data.get("transaction")
        if txid is not None and not isinstance(txid, str):
            raise TypeError("iot.rollback.transaction must be hex or null")
        return cls(data["enabled"], data["previous"], data["eim"], data["counter"],
                   None if txid is None else bytes.fromhex(txid))


@dataclass(frozen=True)
class IotState:
    """The associated eIMs, the pending package results as ``(seqNumber, DER)``, the
    Immediate Enable configuration and the rollback an enable PSMO granted."""

    eims: tuple[EimConfig, ...] = ()
    results: tuple[tuple[int, bytes], ...] = ()
    immediate: ImmediateEnable | None = None
    rollback: RollbackGrant | None = None

    def find(self, eim_id: str) -> EimConfig | None:
        return next((e for e in self.eims if e.eim_id == eim_id), None)

    def with_eim(self, eim: EimConfig) -> IotState:
        """This state with ``eim`` added, or replacing the one with its id."""
        kept = tuple(e for e in self.eims if e.eim_id != eim.eim_id)
        index = next((i for i, e in enumerate(self.eims) if e.eim_id == eim.eim_id),
                     len(kept))
        return replace(self, eims=(*kept[:index], eim, *kept[index:]))

    def without_eim(self, eim_id: str) -> IotState:
        return replace(self, eims=tuple(e for e in self.eims if e.eim_id != eim_id))

    def with_result(self, seq: int, result: bytes) -> IotState:
        return replace(self, results=(*self.results, (seq, result))[-MAX_RESULTS:])

    def without_result(self, seq: int) -> IotState | None:
        """This state without result ``seq``; None when there is no such result."""
        kept = tuple(r for r in self.results if r[0] != seq)
        return None if len(kept) == len(self.results) else replace(self, results=kept)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "eims": [e.encode().hex().upper() for e in self.eims],
            "results": [{"seq": s, "der": d.hex().upper()} for s, d in self.results]}
        if self.immediate is not None:
            data["immediate_enable"] = self.immediate.to_dict()
        if self.rollback is not None:
            data["rollback"] = self.rollback.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: object) -> IotState:
        """Inverse of :meth:`to_dict` (None: a card without SGP.32 state);
        ``ValueError``/``TypeError`` name what is wrong."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise TypeError("iot must be an object")
        eims, results = data.get("eims", []), data.get("results", [])
        if not isinstance(eims, list) or not all(isinstance(e, str) for e in eims):
            raise TypeError("iot.eims must be a list of hex strings")
        if not isinstance(results, list) or not all(
                isinstance(r, dict) and isinstance(r.get("seq"), int)
                and isinstance(r.get("der"), str) for r in results):
            raise TypeError("iot.results must be a list of {seq, der}")
        configs = tuple(EimConfig.decode(tlv.decode_one(bytes.fromhex(e))) for e in eims)
        if len({c.eim_id for c in configs}) != len(configs):
            raise ValueError("two eIM configurations share an eimId")
        return cls(configs, tuple((r["seq"], bytes.fromhex(r["der"])) for r in results),
                   *_extras(data))


def _extras(data: dict[str, Any]) -> tuple[ImmediateEnable | None, RollbackGrant | None]:
    immediate, rollback = data.get("immediate_enable"), data.get("rollback")
    return (None if immediate is None else ImmediateEnable.from_dict(immediate),
            None if rollback is None else RollbackGrant.from_dict(rollback))
