"""Two operators, each with its own registry, database and Mosquitto (TLS, its own CA and
credentials): Paul's number was ported from operator A to operator B. An app with access
at both asks A, is redirected (A's portability list), and the SDK follows to B with the
app's credentials there, as its configuration names them; the pairing at B works like a
local one, its events included. A redirect back (B's list says A) is a loop the SDK stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.credentials import DeviceCredentials
from agent.publisher import Publisher
from broker_bridge.model import App, OtherOperator, TrustLevel
from broker_bridge.service import Bridge
from mps_sdk.errors import RedirectError, RedirectLoopError
from mps_sdk.federation import FederatedPairingClient, OperatorAccess, load_operators
from mps_wire.messages import Decision, EventKind
from tests.helpers import PAUL, PAUL_MSISDN
from tests.integration.test_broker_config import DEVICE_A, Deployment, deploy


@dataclass
class Operators:
    a: Deployment
    b: Deployment


def _port(dep: Deployment, msisdn: str, to: str, tmp: Path) -> None:
    path = tmp / f"ports-{to}.csv"
    path.write_text(f"msisdn,operator,valid_from,valid_until\n{msisdn},{to},0,\n")
    dep.registry.import_portability(path)


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Operators]:
    with ExitStack() as stack:
        a = stack.enter_context(_deployed(tmp_path / "a"))
        b = stack.enter_context(_deployed(tmp_path / "b"))
        # A knows B and gives Paul's number to it; B serves the contract.
        a.store.upsert_operator(OtherOperator("b", "Operator B",
                                              b.broker.tls_url(b.ca.cert_file)))
        _port(a, PAUL_MSISDN, "b", tmp_path)
        for dep in (a, b):
            stack.enter_context(Bridge(dep.store, dep.url("bridge"), relay_grace=0.2))
        yield Operators(a, b)


def _deployed(root: Path) -> ExitStackedDeployment:
    root.mkdir()
    return ExitStackedDeployment(deploy(root))


class ExitStackedDeployment:
    """:func:`deploy`'s generator as a context manager."""

    def __init__(self, gen: Iterator[Deployment]) -> None:
        self._gen = gen

    def __enter__(self) -> Deployment:
        return next(self._gen)

    def __exit__(self, *exc: object) -> None:
        for _ in self._gen:
            pass


def app(ops: Operators, name: str, **options: object) -> FederatedPairingClient:
    access = {"b": OperatorAccess(ops.b.url(name), name)}
    return FederatedPairingClient(ops.a.url(name), name, operators=access, timeout=5,
                                  **options)  # type: ignore[arg-type]


def test_a_ported_number_pairs_at_the_other_operator_with_events(ops: Operators) -> None:
    with app(ops, "care") as care:
        answer = care.pair(PAUL_MSISDN, "support")
        assert (answer.state, answer.operator) == ("active", "b")
        assert answer.devices == ()
        cursor = care.operator_client("b").newest_seq()
        # A device joins Paul's contract at B: the app hears of it from B's registry.
        credentials = DeviceCredentials.load(ops.b.bundles["a"])
        with Publisher(credentials.broker_url(ops.b.broker.tls_url(ops.b.ca.cert_file)),
                       DEVICE_A.eid, signer=credentials.signer) as device:
            assert device.register(DEVICE_A, timeout=5).is_ok
        event = next(care.operator_events("b", cursor, timeout=10))
        assert (event.kind, event.pairing) == (EventKind.DEVICE_ADDED, answer.pairing)
        assert event.device is not None and event.device.eid == DEVICE_A.eid
        listed = care.devices(PAUL_MSISDN)
        assert [d.eid for d in listed] == [DEVICE_A.eid]
        assert care.unpair(pairing=answer.pairing) == answer.pairing


def test_consent_at_the_other_operator_reaches_the_app(ops: Operators) -> None:
    # A partner app is redirected (an app that needs consent gets A's decoy instead: no
    # enumeration); at B this one has no standing consent, so Paul is asked there.
    ops.b.store.upsert_app(App("care", "Operator care", TrustLevel.PARTNER, ("support",),
                               standing_consent=False))
    with app(ops, "care") as health:
        pending = health.pair(PAUL_MSISDN, "support")
        assert (pending.state, pending.operator) == ("pending", "b")
        stored = ops.b.store.pairing(pending.pairing)
        assert stored is not None and stored.prompt_id is not None
        # Paul answers his own operator's prompt; the decision comes from B's stream.
        assert ops.b.registry.answer(PAUL, stored.prompt_id, Decision.APPROVE).reply.is_ok
        decision = health.wait_for_decision(pending.pairing, timeout=10)
        assert decision.kind is EventKind.PAIRING_GRANTED


def test_without_access_or_with_a_loop_the_redirect_is_raised(ops: Operators,
                                                              tmp_path: Path) -> None:
    plain = FederatedPairingClient(ops.a.url("care"), "care", timeout=5)
    with plain, pytest.raises(RedirectError) as caught:
        plain.pair(PAUL_MSISDN, "support")
    assert caught.value.operator == "b" and not isinstance(caught.value, RedirectLoopError)
    # B now says the number is A's: A -> B -> A is a loop, stopped before asking A again.
    ops.b.store.upsert_operator(OtherOperator("a", "Operator A",
                                              ops.a.broker.tls_url(ops.a.ca.cert_file)))
    _port(ops.b, PAUL_MSISDN, "a", tmp_path)
    access = {"b": OperatorAccess(ops.b.url("care"), "care"),
              "a": OperatorAccess(ops.a.url("care"), "care")}
    with FederatedPairingClient(ops.a.url("care"), "care", operators=access,
                                timeout=5) as looping, pytest.raises(RedirectLoopError) as loop:
        looping.devices(PAUL_MSISDN)
    assert loop.value.chain == ("(home)", "b", "a")
    with app(ops, "care", max_hops=0) as capped, pytest.raises(RedirectLoopError):
        capped.devices(PAUL_MSISDN)


def test_operators_come_from_the_configuration_file(ops: Operators, tmp_path: Path) -> None:
    config = tmp_path / "app.toml"
    tls = ops.b.broker.tls_url(ops.b.ca.cert_file)
    config.write_text(f'[app]\napp_id = "care"\n\n[operators.b]\nbroker = "{tls}"\n'
                      f'app_id = "care"\ncredentials = "{ops.b.bundles["care"]}"\n')
    loaded = load_operators(str(config))
    assert set(loaded) == {"b"} and loaded["b"].broker.username is not None
    from mps_sdk.app_cli import main as app_main

    home = ops.a.broker.tls_url(ops.a.ca.cert_file)
    assert app_main(["devices", "--broker", home, "--credentials", str(ops.a.bundles["care"]),
                     "--config", str(config), "--msisdn", PAUL_MSISDN, "--json"]) == 0


def test_mps_app_pairs_there_and_watches_there(ops: Operators, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from mps_sdk.app_cli import main as app_main

    ops.b.store.upsert_app(App("care", "Operator care", TrustLevel.PARTNER, ("support",),
                               standing_consent=False))
    config = tmp_path / "app.toml"
    tls = ops.b.broker.tls_url(ops.b.ca.cert_file)
    config.write_text(f'[operators.b]\nbroker = "{tls}"\napp_id = "care"\n'
                      f'credentials = "{ops.b.bundles["care"]}"\n')
    home = ["--broker", ops.a.broker.tls_url(ops.a.ca.cert_file), "--credentials",
            str(ops.a.bundles["care"]), "--app-id", "care", "--config", str(config)]
    assert app_main(["pair", "--msisdn", PAUL_MSISDN, "--purpose", "support", *home]) == 0
    out = capsys.readouterr().out
    assert " at operator b pending: the user is asked (until " in out
    assert out.rstrip().endswith("--operator b)")
    pairing = out.split()[1]
    stored = ops.b.store.pairing(pairing)
    assert stored is not None and stored.prompt_id is not None
    assert ops.b.registry.answer(PAUL, stored.prompt_id, Decision.APPROVE).reply.is_ok
    assert app_main(["watch", "--operator", "b", "--pairing", pairing, "--count", "1",
                     "--idle", "10", *home]) == 0
    assert "pairing-granted" in capsys.readouterr().out
    assert app_main(["watch", "--operator", "c", "--count", "1", *home]) == 2
