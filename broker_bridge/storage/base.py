"""The storage interface every backend implements (SQLite now, PostgreSQL later)."""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from types import TracebackType

from broker_bridge.model import (
    App,
    Change,
    Contract,
    Device,
    RegistrationOutcome,
    Subscription,
)
from mps_wire.messages import DeviceInfo


class Store(abc.ABC):
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

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

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
    def upsert_app(self, app: App) -> Change:
        """Add or update an app."""

    # --- look-ups ----------------------------------------------------------------------

    @abc.abstractmethod
    def contract(self, contract_id: str) -> Contract | None:
        """The contract with this id, if any."""

    @abc.abstractmethod
    def contract_by_msisdn(self, msisdn: str) -> Contract | None:
        """The contract the number ``msisdn`` (E.164, canonical) belongs to, if any."""

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
        """The app with this id, if any."""

    @abc.abstractmethod
    def apps(self) -> list[App]:
        """Every known app, by id."""

    # --- devices -----------------------------------------------------------------------

    @abc.abstractmethod
    def register_device(self, info: DeviceInfo, *, now: int | None = None
                        ) -> RegistrationOutcome:
        """Record a device's registration in one transaction.

        The device is filed under the contract of the subscription its ICCID names; an
        unknown ICCID raises :class:`broker_bridge.errors.UnknownSubscriptionError` and
        stores nothing. The result is ``registered`` for a new EID, ``unchanged`` when the
        identity (:meth:`DeviceInfo.identity_key`) and contract are as stored, else
        ``updated``. ``now`` (ms since the epoch) defaults to the wall clock.
        """

    @abc.abstractmethod
    def device(self, eid: str) -> Device | None:
        """The device with this EID, if any."""

    @abc.abstractmethod
    def devices_of_contract(self, contract_id: str) -> list[Device]:
        """Every device filed under a contract, in registration order."""

    @abc.abstractmethod
    def device_count(self) -> int:
        """How many devices are registered in all."""

