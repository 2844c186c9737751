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


class StoreMissingError(StoreError):
    """There is no registry database where one was expected (a missing or empty file, an
    empty schema); only an explicit ``mps-bridge db init`` makes one."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{where} holds no registry database; create it with "
                         f"'mps-bridge db init --db {where}'")
        self.where = where


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


class UnprovenSubscriptionError(BridgeError, PermissionError):
    """A device presented a profile nothing binds to its eUICC: no installation result of
    the SM-DP+ (or eIM) and no operator binding names its EID for that ICCID."""

    code = ErrorCode.DENIED

    def __init__(self, iccid: str, eid: str) -> None:
        if eid == iccid:  # a plain SIM goes by its ICCID
            message = (f"nothing shows that the operator issued ICCID {iccid} on a plain SIM: "
                       "no operator binding (mps-bridge operator bind --plain-sim)")
        else:
            message = (f"nothing shows that ICCID {iccid} is on eUICC {eid}: no installation "
                       "record and no operator binding")
        super().__init__(message)
        self.iccid = iccid
        self.eid = eid


class SubscriptionMismatchError(BridgeError, PermissionError):
    """A device's registration names a ``field`` (IMSI) the operator's data contradicts."""

    code = ErrorCode.DENIED

    def __init__(self, iccid: str, field: str, sent: str, known: str | None) -> None:
        super().__init__(f"the {field} sent for ICCID {iccid} is not the operator's")
        self.iccid = iccid
        self.field = field
        self.sent = sent
        self.known = known


class SubscriptionInUseError(BridgeError, PermissionError):
    """A profile is registered by another device; moving it is an explicit swap."""

    code = ErrorCode.DENIED

    def __init__(self, iccid: str, eid: str, holder: str) -> None:
        super().__init__(f"ICCID {iccid} is in use by device {holder}; moving it to {eid} "
                         "takes an explicit swap")
        self.iccid = iccid
        self.eid = eid
        self.holder = holder


class ReplayError(BridgeError, PermissionError):
    """A registration not newer than the last one accepted from the device."""

    code = ErrorCode.REPLAY

    def __init__(self, eid: str, seq: int, last_seq: int) -> None:
        super().__init__(f"registration seq {seq} of {eid} is not newer than the last one "
                         f"accepted ({last_seq})")
        self.eid = eid
        self.seq = seq
        self.last_seq = last_seq


class SequenceJumpError(ReplayError):
    """A registration whose sequence number jumps more than the window ahead of the last
    one accepted (or of 0): taken, it would lock the device out of every later number."""

    def __init__(self, eid: str, seq: int, last_seq: int, window: int) -> None:
        BridgeError.__init__(self, f"registration seq {seq} of {eid} jumps more than {window} "
                             f"ahead of the last one accepted ({last_seq})")
        self.eid = eid
        self.seq = seq
        self.last_seq = last_seq
        self.window = window


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
