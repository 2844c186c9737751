"""Following redirects to other operators' registries, so that an app pairs with a user
whose number is served elsewhere as with one of its own operator.

A registry answers a number it does not serve with ``redirect``, naming the operator that
does, its registry's broker and topic prefix. :class:`FederatedPairingClient` then asks
that registry with the app's own access there (its app id and credentials at that
operator, from the app's configuration: :func:`load_operators`), and remembers where each
pairing lives, so that waiting for the user's decision, events and unpairing go to the
right registry. Credentials only ever go to the broker the configuration names for that
operator: a redirect to an operator the app has no access to, or to a broker other than
the configured one, is raised as :class:`~mps_sdk.errors.RedirectError`. At most
``max_hops`` redirects are followed per request, never back to a registry already asked
(:class:`~mps_sdk.errors.RedirectLoopError`).

The configuration file's ``[operators.ID]`` tables::

    [operators.other]
    broker = "mqtts://registry.other.example:8883"
    app_id = "health"                     # the app's id at that operator
    credentials = "/etc/health/other"     # its credential bundle there (optional)
    prefix = "mps/v1"                     # optional: else the redirect's
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from mps_common.config import load_section
from mps_common.errors import ConfigError
from mps_mqtt.bundle import BundleError, CredentialBundle
from mps_mqtt.client import BrokerURL
from mps_sdk.client import ContractDevices, PairingAnswer, PairingClient
from mps_sdk.errors import RedirectError, RedirectLoopError
from mps_wire.records import Event
from mps_wire.topics import Topics, check_level

T = TypeVar("T")

DEFAULT_MAX_HOPS = 3
_KEYS = frozenset({"broker", "app_id", "credentials", "prefix"})


@dataclass(frozen=True, slots=True)
class OperatorAccess:
    """How this app reaches another operator's registry."""

    broker: BrokerURL
    app_id: str
    prefix: str | None = None


def _access(name: str, table: Any, source: str) -> OperatorAccess:
    where = f"{source} [operators.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_KEYS))})")
    for key in ("broker", "app_id"):
        if not isinstance(table.get(key), str):
            raise ConfigError(f"{where}: {key} is required (text)")
    try:
        broker = BrokerURL.parse(table["broker"])
        app_id = check_level(table["app_id"], "app id")
        if table.get("credentials"):
            broker = CredentialBundle.load(table["credentials"]).broker_url(broker)
    except (ValueError, BundleError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    prefix = table.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise ConfigError(f"{where}: prefix is text")
    return OperatorAccess(broker, app_id, prefix)


def load_operators(config_file: str | None) -> dict[str, OperatorAccess]:
    """The app's access to other operators from its configuration file's
    ``[operators.ID]`` tables (none without a file); ConfigError names what is wrong."""
    if not config_file:
        return {}
    section = load_section(config_file, "operators")
    return {name: _access(name, table, config_file) for name, table in section.items()}


def _same_broker(a: BrokerURL, b: BrokerURL) -> bool:
    return (a.host, a.port, a.tls) == (b.host, b.port, b.tls)


_Place = tuple[str, int, bool, str]


def _place(broker: BrokerURL, prefix: str) -> _Place:
    """A registry: its broker and topic prefix (credentials aside)."""
    return (broker.host, broker.port, broker.tls, prefix)


class _Asks(Protocol):
    """The requests a redirect may answer."""

    def pair(self, msisdn: str | None, purpose: str, *, user: str | None = None
             ) -> PairingAnswer: ...

    def contract_devices(self, msisdn: str | None = None, *, user: str | None = None
                         ) -> ContractDevices: ...

    def unpair(self, msisdn: str | None = None, *, pairing: str | None = None) -> str: ...


class FederatedPairingClient(PairingClient):
    """A :class:`PairingClient` that follows redirects to the operators in ``operators``
    (see the module documentation); with none it behaves as a plain client."""

    def __init__(self, broker: str | BrokerURL, app_id: str, *,
                 operators: Mapping[str, OperatorAccess] | None = None,
                 max_hops: int = DEFAULT_MAX_HOPS, **options: Any) -> None:
        super().__init__(broker, app_id, **options)
        if isinstance(max_hops, bool) or not isinstance(max_hops, int) or max_hops < 0:
            raise ValueError(f"max_hops must be 0 or more, not {max_hops!r}")
        self.operators = dict(operators or {})
        self.max_hops = max_hops
        # The remote clients share the options but the topics: theirs are the operator's.
        self._options = {k: v for k, v in options.items() if k != "topics"}
        self._remote: dict[str, PairingClient] = {}
        self._where: dict[str, str] = {}  # pairing id -> operator id
        self._guard = threading.Lock()

    def close(self) -> None:
        with self._guard:
            remote, self._remote = list(self._remote.values()), {}
        for client in remote:
            client.close()
        super().close()

    def operator_client(self, operator: str, *, prefix: str | None = None) -> PairingClient:
        """The (connected) client of this app at ``operator``'s registry; its topic prefix
        is the configured one, else ``prefix`` (a redirect's), else the default."""
        access = self.operators.get(operator)
        if access is None:
            raise KeyError(f"no access to operator {operator!r} is configured")
        with self._guard:
            client = self._remote.get(operator)
            if client is None:
                chosen = access.prefix or prefix
                client = PairingClient(access.broker, access.app_id,
                                       topics=Topics(chosen) if chosen else None,
                                       **self._options)
                self._remote[operator] = client
        client.connect()
        return client

    def _next(self, exc: RedirectError, chain: list[str], asked: set[_Place]
              ) -> PairingClient:
        """The client to ask after redirect ``exc``, or ``exc`` raised as it stands."""
        access = self.operators.get(exc.operator)
        if access is None:
            raise exc  # no access there: the app is told where to go, as without a config
        target = BrokerURL.parse(exc.registry) if exc.registry else access.broker
        if not _same_broker(target, access.broker):
            raise RedirectError(f"{exc.message} (the redirect names {exc.registry}, but this "
                                f"app's configuration names {access.broker.host}:"
                                f"{access.broker.port} for {exc.operator}: not followed)",
                                operator=exc.operator, name=exc.name, registry=exc.registry,
                                prefix=exc.prefix) from exc
        if exc.operator in chain or _place(target, access.prefix or exc.prefix) in asked:
            raise self._loop(exc, chain, "went round to a registry already asked")
        if len(chain) - 1 >= self.max_hops:
            raise self._loop(exc, chain, f"passed the limit of {self.max_hops} redirects")
        return self.operator_client(exc.operator, prefix=exc.prefix or None)

    @staticmethod
    def _loop(exc: RedirectError, chain: list[str], what: str) -> RedirectLoopError:
        return RedirectLoopError(f"following redirects {what}: {' -> '.join(chain)} -> "
                                 f"{exc.operator}", chain=(*chain, exc.operator),
                                 operator=exc.operator, name=exc.name, registry=exc.registry,
                                 prefix=exc.prefix)

    def _follow(self, call: Callable[[_Asks], T]) -> tuple[T, str | None]:
        """``call`` on this app's registry, then on each registry a redirect names; the
        result and the operator that answered (None: the app's own)."""
        client: _Asks = _Home(self)
        operator: str | None = None
        chain = ["(home)"]
        asked = {_place(self.broker, self.topics.prefix)}
        while True:
            try:
                return call(client), operator
            except RedirectError as exc:
                remote = self._next(exc, chain, asked)
                client, operator = remote, exc.operator
                chain.append(exc.operator)
                asked.add(_place(remote.broker, remote.topics.prefix))

    def pair(self, msisdn: str | None, purpose: str, *, user: str | None = None
             ) -> PairingAnswer:
        """Like :meth:`PairingClient.pair`, following redirects; the answer's
        ``operator`` names the registry that holds the pairing when it is not the
        app's own."""
        answer, operator = self._follow(lambda c: c.pair(msisdn, purpose, user=user))
        if operator is not None:
            with self._guard:
                self._where[answer.pairing] = operator
            answer = replace(answer, operator=operator)
        return answer

    def contract_devices(self, msisdn: str | None = None, *, user: str | None = None
                         ) -> ContractDevices:
        """Like :meth:`PairingClient.contract_devices`, following redirects."""
        return self._follow(lambda c: c.contract_devices(msisdn, user=user))[0]

    def unpair(self, msisdn: str | None = None, *, pairing: str | None = None) -> str:
        """Like :meth:`PairingClient.unpair`: a pairing made elsewhere ends there."""
        if pairing is not None and pairing in self._where:
            return self.operator_client(self._where[pairing]).unpair(pairing=pairing)
        return self._follow(lambda c: c.unpair(msisdn, pairing=pairing))[0]

    def client_of(self, pairing: str) -> PairingClient:
        """The client of the registry that holds ``pairing`` (this one if not known)."""
        operator = self._where.get(pairing)
        return self if operator is None else self.operator_client(operator)

    def wait_for_decision(self, pairing: str, *, since: int = 0,
                          timeout: float | None = None) -> Event:
        """Like :meth:`PairingClient.wait_for_decision`, at the pairing's registry."""
        client = self.client_of(pairing)
        if client is self:
            return super().wait_for_decision(pairing, since=since, timeout=timeout)
        return client.wait_for_decision(pairing, since=since, timeout=timeout)

    def operator_events(self, operator: str, since: int = 0, *,
                        timeout: float | None = None) -> Iterator[Event]:
        """This app's events at ``operator``'s registry (its own stream and cursor)."""
        return self.operator_client(operator).events(since, timeout=timeout)


class _Home:
    """This app's own registry seen as a plain client, so that :meth:`_follow` calls the
    base class's requests and not the federated ones again."""

    def __init__(self, client: FederatedPairingClient) -> None:
        self._client = client

    def pair(self, msisdn: str | None, purpose: str, *, user: str | None = None
             ) -> PairingAnswer:
        return PairingClient.pair(self._client, msisdn, purpose, user=user)

    def contract_devices(self, msisdn: str | None = None, *, user: str | None = None
                         ) -> ContractDevices:
        return PairingClient.contract_devices(self._client, msisdn, user=user)

    def unpair(self, msisdn: str | None = None, *, pairing: str | None = None) -> str:
        return PairingClient.unpair(self._client, msisdn, pairing=pairing)
