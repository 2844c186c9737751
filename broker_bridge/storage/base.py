"""The storage interface every backend implements (SQLite now, PostgreSQL later)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from broker_bridge.model import (
    App,
    AuditEntry,
    BrokerIdentity,
    Change,
    Contract,
    Device,
    DeviceKey,
    Installation,
    OtherOperator,
    Pairing,
    PairingState,
    RegistrationFacts,
    RegistrationOutcome,
    StoredEvent,
    Subscription,
)
from broker_bridge.storage.choices_base import ChoiceStore
from broker_bridge.storage.signin_base import SignInStore
from mps_wire.messages import DeviceInfo, EventKind

if TYPE_CHECKING:
    from broker_bridge.portability import PortEntry


class Store(ChoiceStore, SignInStore, abc.ABC):
    """The registry's durable state.

    Constructing a store does no I/O; :meth:`open` connects, checks and migrates, and the
    store is also a context manager that opens and closes it. Every method is safe to call
    from several threads (the MQTT network thread and the main thread at once). Each method
    is one transaction of its own unless called inside :meth:`transaction`, which makes a
    group of calls all-or-nothing.

    Errors of the underlying database surface as :class:`broker_bridge.errors.StoreError`,
    never as a driver's own exception types.
    """

    # --- life cycle --------------------------------------------------------------------

    @abc.abstractmethod
    def open(self) -> None:
        """Connect, verify the database and apply pending migrations; idempotent."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; idempotent."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The newest migration applied to the database."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A context in which every call of this thread commits together or not at all."""

    @abc.abstractmethod
    def batch(self) -> AbstractContextManager[None]:
        """One transaction for many operations that each stay all-or-nothing on their own.

        Inside it, an operation's own :meth:`transaction` that ends with an exception
        undoes just its own changes (a savepoint), not those of the operations before it;
        everything else commits together when the batch ends, once. StoreError when the
        batch could not be committed: then none of it is stored.
        """

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def sibling(self) -> Store:
        """A new, unopened store on the same database with a connection of its own (for
        another thread); ``self`` where the database cannot be shared (an in-memory one)."""
        return self

    @property
    def rollbacks(self) -> int:
        """How many transactions or operations of this store were rolled back: what was
        read inside one of them may never have been stored."""
        return 0

    # --- operator data -----------------------------------------------------------------

    @abc.abstractmethod
    def upsert_contract(self, contract: Contract) -> Change:
        """Add or update a contract."""

    @abc.abstractmethod
    def upsert_number(self, msisdn: str, contract_id: str) -> Change:
        """File the number ``msisdn`` under a contract (moving it if another held it)."""

    @abc.abstractmethod
    def upsert_subscription(self, subscription: Subscription) -> Change:
        """Add or update a subscription; its number, if any, is filed under its contract.

        A subscription moved to another contract takes the devices using it along.
        """

    @abc.abstractmethod
    def remove_number(self, msisdn: str) -> str | None:
        """Take a number off its contract (and off any subscription holding it).

        Returns the contract it belonged to, None if no contract had it.
        """

    @abc.abstractmethod
    def remove_subscription(self, iccid: str) -> Subscription | None:
        """Delete a subscription that no device uses any more; None if there was none."""

    @abc.abstractmethod
    def upsert_app(self, app: App) -> Change:
        """Add or update an app; a removed app of the same id is registered again."""

    @abc.abstractmethod
    def remove_app(self, app_id: str) -> bool:
        """Mark an app removed (its history stays); False if there was no such app."""

    @abc.abstractmethod
    def upsert_operator(self, operator: OtherOperator) -> Change:
        """Add or update another operator and replace its number prefixes."""

    @abc.abstractmethod
    def set_ported(self, msisdn: str, operator_id: str) -> Change:
        """Record that ``msisdn`` was ported to another operator."""

    @abc.abstractmethod
    def clear_ported(self, msisdn: str) -> bool:
        """Forget that ``msisdn`` was ported away (it came back); False if it was not."""

    # --- look-ups ----------------------------------------------------------------------

    @abc.abstractmethod
    def contract(self, contract_id: str) -> Contract | None:
        """The contract with this id, if any."""

    @abc.abstractmethod
    def contract_by_msisdn(self, msisdn: str) -> Contract | None:
        """The contract the number ``msisdn`` (E.164, canonical) belongs to, if any."""

    @abc.abstractmethod
    def read_versions(self, msisdn: str) -> tuple[str, int, int] | None:
        """The contract of the number ``msisdn``, its version and the apps' version, read
        in one statement (None for a number no contract has): any committed change to
        the contract's devices, subscriptions or pairings raises the first, to any app
        the second."""

    @abc.abstractmethod
    def number_versions(self) -> dict[str, tuple[str, int, int]]:
        """:meth:`read_versions` of every number, read in one statement."""

    def data_version(self) -> int | None:
        """A number that changes whenever another connection commits to the database,
        read without waiting; None when the connection is busy on another thread or the
        backend has no such number. While it stays the same, what any connection read
        after it was taken is still current, whatever this connection itself wrote."""
        return None

    def commit_marker(self) -> Callable[[], bytes | None] | None:
        """A reader of something that changes with every commit of any connection (this one's
        too), far cheaper than :meth:`data_version`, giving None when it cannot tell; None
        where the backend has no such thing."""
        return None

    @abc.abstractmethod
    def contract_versions(self) -> tuple[dict[str, int], int]:
        """Every contract's version, and the apps' version (see :meth:`read_versions`)."""

    @abc.abstractmethod
    def numbers_of_contract(self, contract_id: str) -> list[str]:
        """The numbers filed under a contract, sorted."""

    @abc.abstractmethod
    def subscription_by_iccid(self, iccid: str) -> Subscription | None:
        """The subscription with this ICCID, if any."""

    @abc.abstractmethod
    def subscriptions_of_contract(self, contract_id: str) -> list[Subscription]:
        """The subscriptions of a contract, by ICCID."""

    @abc.abstractmethod
    def app(self, app_id: str) -> App | None:
        """The app with this id, if any and not removed."""

    @abc.abstractmethod
    def apps(self) -> list[App]:
        """Every registered (not removed) app, by id."""

    @abc.abstractmethod
    def operators(self) -> list[OtherOperator]:
        """Every other operator, by id."""

    @abc.abstractmethod
    def operator(self, operator_id: str) -> OtherOperator | None:
        """The other operator with this id, if any."""

    @abc.abstractmethod
    def ported_to(self, msisdn: str) -> OtherOperator | None:
        """The operator ``msisdn`` was ported to, if it was."""

    @abc.abstractmethod
    def operator_by_prefix(self, msisdn: str) -> OtherOperator | None:
        """The other operator whose longest number prefix matches ``msisdn``, if any."""

    @abc.abstractmethod
    def ported_numbers(self) -> list[tuple[str, str]]:
        """Every ported-away number with the id of its operator, by number."""

    # --- devices -----------------------------------------------------------------------

    @abc.abstractmethod
    def register_device(self, info: DeviceInfo, *, now: int | None = None,
                        subscription: Subscription | None = None) -> RegistrationOutcome:
        """Record a device's registration in one transaction.

        The device is filed under the contract of the subscription its ICCID names; an
        unknown ICCID raises :class:`broker_bridge.errors.UnknownSubscriptionError` and
        stores nothing. The result is ``registered`` for a new EID, ``unchanged`` when the
        identity (:meth:`DeviceInfo.identity_key`) and contract are as stored, else
        ``updated`` (with the kinds of change and the device as it was before).
        ``now`` (ms since the epoch) defaults to the wall clock. ``subscription`` is
        that subscription as the caller read it in the same transaction (saving the
        statement); it must be the one of ``info.iccid``.
        """

    @abc.abstractmethod
    def devices_by_iccid(self, iccid: str) -> list[Device]:
        """The devices using the subscription ``iccid`` (at most one, in practice)."""

    @abc.abstractmethod
    def remove_device(self, eid: str) -> bool:
        """Delete a device's record; False if there was none."""

    @abc.abstractmethod
    def record_installation(self, installation: Installation, *, rebind: bool = False
                            ) -> Change:
        """Bind a profile to the eUICC it was installed on; a newer report replaces an
        older one, an older one changes nothing; ``rebind`` (an operator binding)
        replaces whatever is there."""

    @abc.abstractmethod
    def installation(self, iccid: str) -> Installation | None:
        """The newest installation of the profile ``iccid``, if the SM-DP+ reported one."""

    @abc.abstractmethod
    def installations_on(self, eid: str) -> list[Installation]:
        """The profiles bound to the eUICC ``eid``, by ICCID."""

    @abc.abstractmethod
    def remove_installation(self, iccid: str, eid: str, *, ts: int) -> bool:
        """Unbind the profile ``iccid`` from the eUICC ``eid`` (it was deleted there at
        ``ts``); False if it is not bound there, or was bound again after ``ts``."""

    @abc.abstractmethod
    def device(self, eid: str) -> Device | None:
        """The device with this EID, if any."""

    @abc.abstractmethod
    def devices_of_contract(self, contract_id: str) -> list[Device]:
        """Every device filed under a contract, in registration order."""

    @abc.abstractmethod
    def devices_by_contract(self, contracts: Sequence[str] | None = None
                            ) -> dict[str, list[Device]]:
        """Every device (of ``contracts`` only, if given), by contract, in registration order."""

    @abc.abstractmethod
    def device_count(self) -> int:
        """How many devices are registered in all."""


    # --- pairings and consent ----------------------------------------------------------

    @abc.abstractmethod
    def add_pairing(self, pairing: Pairing) -> None:
        """Store a new pairing; StoreError if the app already has a live one there."""

    @abc.abstractmethod
    def update_pairing(self, pairing: Pairing, *, expect: PairingState) -> bool:
        """Write ``pairing``'s state fields if its stored state is still ``expect``.

        False (and nothing written) when another writer got there first.
        """

    @abc.abstractmethod
    def pairing(self, pairing_id: str) -> Pairing | None:
        """The pairing with this id, if any."""

    @abc.abstractmethod
    def pairing_by_prompt(self, prompt_id: str) -> Pairing | None:
        """The pairing whose consent prompt has this id, if any."""

    @abc.abstractmethod
    def live_pairing(self, app_id: str, contract_id: str) -> Pairing | None:
        """The app's pending or active pairing with the contract, if any."""

    @abc.abstractmethod
    def pairings(self, *, app_id: str | None = None, contract_id: str | None = None,
                 states: Sequence[PairingState] | None = None) -> list[Pairing]:
        """Pairings matching every given filter, oldest first."""

    @abc.abstractmethod
    def add_decoy(self, decoy: Pairing) -> None:
        """Keep a pending decoy pairing (a number not served here, see schema 7)."""

    @abc.abstractmethod
    def live_decoy(self, app_id: str, msisdn: str) -> Pairing | None:
        """The app's open decoy for the number, if any."""

    @abc.abstractmethod
    def decoy(self, decoy_id: str) -> Pairing | None:
        """The decoy with this id, open (``pending``) or closed (``ended`` when closed
        before its time was up, else ``expired``), if any."""

    @abc.abstractmethod
    def expired_decoys(self, now: int, *, limit: int = 100) -> list[Pairing]:
        """Open decoys whose time was up at or before ``now``, oldest first."""

    @abc.abstractmethod
    def close_decoy(self, decoy_id: str, now: int) -> bool:
        """Close an open decoy; False if it was closed already (by another process)."""

    @abc.abstractmethod
    def expired_prompts(self, now: int, *, limit: int = 100) -> list[Pairing]:
        """Pending pairings whose prompt expired at or before ``now``, oldest first."""

    @abc.abstractmethod
    def bump_consent_revision(self, contract_id: str) -> int:
        """Count a change of the contract's open prompts; return the new revision."""

    @abc.abstractmethod
    def consent_revision(self, contract_id: str) -> int:
        """The revision of the contract's open prompts (0 before any prompt)."""

    @abc.abstractmethod
    def unpublished_consent(self, *, limit: int = 100) -> list[tuple[str, int]]:
        """Contracts whose newest prompt revision was not published, with that revision."""

    @abc.abstractmethod
    def mark_consent_published(self, contract_id: str, revision: int) -> None:
        """Note that the prompts of revision ``revision`` (or newer) were published."""

    # --- the per-app event streams -----------------------------------------------------

    @abc.abstractmethod
    def append_event(self, app_id: str, kind: EventKind, payload: dict[str, Any], *,
                     contract_id: str | None = None, pairing_id: str | None = None,
                     now: int | None = None) -> StoredEvent:
        """Append an event to the app's stream with the next sequence number.

        The number is allocated inside the current transaction, so events of one app are
        numbered 1, 2, 3... without gaps in commit order, whichever process wrote them.
        The stored payload is ``payload`` with ``seq`` added.
        """

    @abc.abstractmethod
    def events_since(self, app_id: str, seq: int, *, limit: int = 100) -> list[StoredEvent]:
        """The app's events with a sequence number above ``seq``, in order."""

    @abc.abstractmethod
    def last_event_seq(self, app_id: str) -> int:
        """The app's newest sequence number (0 before its first event)."""

    @abc.abstractmethod
    def unpublished_events(self, created_before: int, *, limit: int = 100
                           ) -> list[StoredEvent]:
        """Events never confirmed published and older than ``created_before``."""

    @abc.abstractmethod
    def mark_published(self, keys: Iterable[tuple[str, int]], *, now: int | None = None
                       ) -> None:
        """Note that the events ``(app_id, seq)`` reached the broker."""

    # --- audit ---------------------------------------------------------------------------

    @abc.abstractmethod
    def append_audit(self, actor: str, action: str, outcome: str, *,
                     contract_id: str | None = None, app_id: str | None = None,
                     subject: str | None = None, detail: dict[str, Any] | None = None,
                     now: int | None = None) -> AuditEntry:
        """Append one entry to the audit log (which is never changed or shortened).

        Inside :meth:`batch` it is written when the batch commits, with the batch's
        other entries in one statement, and numbered then (the entry returned has id 0).
        """

    @abc.abstractmethod
    def check_writable(self) -> None:
        """Commit a write that needs new space (and leaves nothing behind); StoreError
        while the database cannot take one (disk full, I/O error)."""

    @abc.abstractmethod
    def append_audits(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        """Append ``entries`` to the audit log in one transaction, numbered in their order
        (their own ``id`` is ignored); the entries as stored (inside :meth:`batch`: as
        given, numbered when it commits)."""

    @abc.abstractmethod
    def audit(self, *, contract_id: str | None = None, app_id: str | None = None,
              after: int = 0, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries after id ``after`` matching the filters, oldest first."""

    # --- device keys, replay state and broker identities -------------------------------

    @abc.abstractmethod
    def put_device_key(self, key: DeviceKey) -> Change:
        """Enroll (or replace) the signing key of device ``key.eid``."""

    @abc.abstractmethod
    def registration_facts(self, eid: str, iccid: str) -> RegistrationFacts:
        """What a registration of ``eid`` naming ``iccid`` is checked against, at once."""

    @abc.abstractmethod
    def device_key(self, eid: str) -> DeviceKey | None:
        """The enrolled signing key of a device, if any."""

    @abc.abstractmethod
    def remove_device_key(self, eid: str) -> bool:
        """Withdraw a device's signing key; False if none was enrolled."""

    @abc.abstractmethod
    def device_keys(self) -> list[DeviceKey]:
        """Every enrolled device key, by EID."""

    @abc.abstractmethod
    def last_registration(self, eid: str) -> tuple[int, str] | None:
        """The sequence number and digest of the newest registration accepted from
        ``eid`` (kept even when the device record is removed), if any."""

    @abc.abstractmethod
    def note_registration(self, eid: str, seq: int, digest: str, *, now: int | None = None
                          ) -> None:
        """Remember ``seq``/``digest`` as the newest accepted registration of ``eid``."""

    @abc.abstractmethod
    def put_identity(self, identity: BrokerIdentity) -> Change:
        """Add or replace a broker identity (a re-issue un-revokes it)."""

    @abc.abstractmethod
    def identity(self, username: str) -> BrokerIdentity | None:
        """The broker identity with this username, if any."""

    @abc.abstractmethod
    def identities(self, *, include_revoked: bool = False) -> list[BrokerIdentity]:
        """Broker identities by username; revoked ones only when asked."""

    @abc.abstractmethod
    def revoke_identity(self, username: str, *, now: int | None = None) -> bool:
        """Revoke a broker identity; False if there is no active one of that name."""

    # --- secrets -------------------------------------------------------------------------

    @abc.abstractmethod
    def secret(self, name: str) -> bytes:
        """A random 32-byte secret of the registry, made on first use and kept."""

    # --- number portability ----------------------------------------------------------------

    @abc.abstractmethod
    def replace_portability(self, entries: Sequence[PortEntry]) -> int:
        """Put ``entries`` in place of the whole portability list; the count before."""

    @abc.abstractmethod
    def port_entry(self, msisdn: str, now: int) -> PortEntry | None:
        """The portability list's entry for ``msisdn`` valid at ``now``, if any."""

    @abc.abstractmethod
    def portability_count(self) -> int:
        """How many entries the portability list holds."""

    @abc.abstractmethod
    def filed_ported_away(self, now: int, since: int = -1) -> list[tuple[str, str]]:
        """(number, operator) of numbers filed here that the list gives away now, in a
        period that began after ``since``."""

    @abc.abstractmethod
    def unfiled_ported_in(self, now: int, since: int = -1) -> list[tuple[str, str]]:
        """(number, contract) of numbers the list brings in now, not yet filed there, in
        a period that began after ``since``."""

    @abc.abstractmethod
    def put_user_ref(self, app_id: str, ref: str, contract_id: str) -> None:
        """Remember the pseudonymous id ``ref`` ``app_id`` was given for a contract."""

    @abc.abstractmethod
    def user_ref_contract(self, app_id: str, ref: str) -> str | None:
        """The contract ``app_id`` was given the pseudonymous id ``ref`` for, if any."""
