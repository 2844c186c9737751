"""The registry's exceptions: one root, subclasses that also inherit the matching built-in."""

from __future__ import annotations

from collections.abc import Sequence

from mps_common.errors import ConfigError, Problem
from mps_wire.errors import ErrorCode


class BridgeError(Exception):
    """Root of every error raised by the registry and its storage."""


# --- storage ---------------------------------------------------------------------------

class StoreError(BridgeError, OSError):
    """The store could not be opened, read or written."""


class StoreCorruptError(StoreError):
    """The database file is damaged or is not a database of this registry."""

    def __init__(self, message: str, *, path: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.path = path
        self.problems = tuple(problems)


class SchemaVersionError(StoreError):
    """The database was written by a newer registry whose schema this one does not know."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class UnknownSubscriptionError(BridgeError, LookupError):
    """A device presented an ICCID the operator has not registered."""

    code = ErrorCode.UNKNOWN_SUBSCRIPTION

    def __init__(self, iccid: str) -> None:
        super().__init__(f"ICCID {iccid} belongs to no known subscription")
        self.iccid = iccid


class ForeignSubscriptionError(BridgeError, PermissionError):
    """A device presented a profile the SM-DP+ installed on another eUICC."""

    code = ErrorCode.DENIED

    def __init__(self, iccid: str, eid: str, installed_on: str) -> None:
        super().__init__(f"ICCID {iccid} was installed on another eUICC, not on {eid}")
        self.iccid = iccid
        self.eid = eid
        self.installed_on = installed_on


class ReplayError(BridgeError, PermissionError):
    """A registration not newer than the last one accepted from the device."""

    code = ErrorCode.REPLAY

    def __init__(self, eid: str, seq: int, last_seq: int) -> None:
        super().__init__(f"registration seq {seq} of {eid} is not newer than the last one "
                         f"accepted ({last_seq})")
        self.eid = eid
        self.seq = seq
        self.last_seq = last_seq


class UnknownContractError(BridgeError, LookupError):
    """An operation named a contract the store does not hold."""

    def __init__(self, contract_id: str) -> None:
        super().__init__(f"no contract {contract_id!r}")
        self.contract_id = contract_id


class UnknownEntityError(BridgeError, LookupError):
    """An operation named something the store does not hold (``kind`` and ``key``)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key!r}")
        self.kind = kind
        self.key = key


# --- operator data ---------------------------------------------------------------------

class OperatorDataError(BridgeError, ConfigError):
    """An operator data file cannot be imported; nothing of it was stored.

    ``problems`` name each thing wrong (:class:`mps_common.errors.Problem`), ``source``
    the file.
    """

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(f"{source}: {p}" for p in problems),
                         problems=problems, source=source)


# --- broker ----------------------------------------------------------------------------

class BrokerError(BridgeError, ConnectionError):
    """The broker could not be reached, refused us, or did not confirm a subscription."""
