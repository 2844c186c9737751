"""eSIM operations with the user's word: requests wait for the user, approved ones become
orders signed by the registry (COSE_Sign1, RFC 9052, ES256), and the agent runs an order
on the card (SGP.22 ES10c.DisableProfile 5.7.17 / DeleteProfile 5.7.18) only when its
signature verifies, it names this EID, it has not expired and its counter is new; anything
else is refused with a log line and nothing done on the card."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.card import CardLink, open_card
from agent.orders import OrderRefused, OrderRepeat, OrderRunner
from broker_bridge.choices import EsimState
from broker_bridge.registry import Registry
from broker_bridge.registry.portal import AlreadyDecided
from broker_bridge.storage import SqliteStore
from lpa_emulator.euicc.state import CardState, ProfileRecord
from mps_wire.orders import EsimOrder, EsimOrderResult, OrderAction, OrderOutcome, sign_order
from tests.helpers import PAUL, make_device, paul_and_apps

EID = make_device(1).eid


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with SqliteStore(tmp_path / "registry.db") as store:
        paul_and_apps(store)
        yield Registry(store)


@dataclass
class Holder:
    card: CardLink | None


@pytest.fixture
def card(tmp_path: Path) -> Iterator[tuple[CardLink, Path, str]]:
    """An emulated eUICC with EID ``EID``: an enabled profile and a disabled one (whose
    ICCID is returned)."""
    spare = ProfileRecord.generate(slot=1, enabled=False)
    path = tmp_path / "card.json"
    CardState.new(eid=EID, profiles=[ProfileRecord.generate(), spare]).save(path)
    link = open_card(f"emu://{path}")
    link.connect()
    yield link, path, spare.iccid
    link.close()


def approved_order(registry: Registry, iccid: str, action: str = "delete") -> bytes:
    request = registry.request_esim(EID, action, iccid, actor="operator:test")
    registry.portal(PAUL).approve_esim(request.id)
    ((sent, signed),) = registry.orders_to_send()
    assert sent.id == request.id and sent.counter is not None
    return signed


def runner(registry: Registry, tmp_path: Path, holder: Holder | None = None) -> OrderRunner:
    run = OrderRunner(registry.order_key().public_key(), EID, tmp_path / "agent")
    (tmp_path / "agent").mkdir(exist_ok=True)
    if holder is not None:
        run._device = holder  # the daemon attaches its hardware and publisher
    return run


def test_an_approved_delete_is_carried_out_on_the_card(
        registry: Registry, tmp_path: Path, card: tuple[CardLink, Path, str]) -> None:
    link, path, spare = card
    signed = approved_order(registry, spare)
    run = runner(registry, tmp_path, Holder(link))
    run.received(signed)
    assert run.run_pending() == 1
    assert [p.iccid for p in CardState.load(path).profiles if p.iccid == spare] == []
    # The registry records the report; a second report changes nothing.
    (request,) = registry.store.esim_requests(states=(EsimState.APPROVED,))
    assert registry.order_sent(request)
    assert registry.order_result(EID, EsimOrderResult(request.id, EID, OrderOutcome.DONE))
    assert not registry.order_result(EID, EsimOrderResult(request.id, EID, OrderOutcome.DONE))
    assert registry.store.esim_request(request.id).state is EsimState.DONE  # type: ignore[union-attr]
    actions = [(e.action, e.outcome) for e in registry.store.audit(contract_id=PAUL)
               if e.action.startswith("esim")]
    assert actions == [("esim-request", "awaiting-user"), ("esim-consent", "approved"),
                       ("esim-order", "sent"), ("esim-result", "done")]


def test_a_refused_or_expired_request_sends_nothing(registry: Registry) -> None:
    portal = registry.portal(PAUL)
    refused = registry.request_esim(EID, "delete", make_device(1).iccid, actor="app:care")
    portal.refuse_esim(refused.id)
    late = registry.request_esim(EID, "disable", make_device(1).iccid, actor="app:care",
                                 ttl=0.001)
    import time

    time.sleep(0.01)
    with pytest.raises(AlreadyDecided, match="expired"):
        portal.approve_esim(late.id)
    with pytest.raises(AlreadyDecided):
        portal.approve_esim(refused.id)
    assert registry.orders_to_send() == []
    states = {r.id: r.state for r in registry.store.esim_requests()}
    assert states == {refused.id: EsimState.REFUSED, late.id: EsimState.EXPIRED}


def test_orders_of_one_device_are_numbered(registry: Registry) -> None:
    for _ in range(3):
        request = registry.request_esim(EID, "disable", make_device(1).iccid,
                                        actor="operator:test")
        registry.portal(PAUL).approve_esim(request.id)
    counters = [r.counter for r, _signed in registry.orders_to_send()]
    assert counters == [1, 2, 3]


def test_a_tampered_order_is_refused(registry: Registry, tmp_path: Path) -> None:
    signed = approved_order(registry, make_device(1).iccid, "disable")
    tag = cbor2.loads(signed)
    protected, unprotected, payload, signature = tag.value
    order = cbor2.loads(payload)
    order["action"] = "delete"  # the disable asked for becomes a delete
    forged = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, cbor2.dumps(order),
                                            signature]))
    with pytest.raises(OrderRefused, match="bad signature"):
        runner(registry, tmp_path).check(forged)
    with pytest.raises(OrderRefused, match="bad signature"):
        runner(registry, tmp_path).check(signed[:-1] + bytes([signed[-1] ^ 1]))


def test_an_order_signed_by_another_key_is_refused(registry: Registry, tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    order = EsimOrder("esim-1", EID, OrderAction.DELETE, make_device(1).iccid, 1,
                      registry.now() + 60_000)
    with pytest.raises(OrderRefused, match="bad signature"):
        runner(registry, tmp_path).check(sign_order(order, other))


def test_wrong_eid_expired_and_replayed_orders_are_refused(
        registry: Registry, tmp_path: Path, card: tuple[CardLink, Path, str],
        caplog: pytest.LogCaptureFixture) -> None:
    link, path, spare = card
    key = registry.order_key()
    later = registry.now() + 60_000
    run = runner(registry, tmp_path, Holder(link))
    other = EsimOrder("esim-2", make_device(2).eid, OrderAction.DELETE, spare, 1, later)
    with pytest.raises(OrderRefused, match="not this device"):
        run.check(sign_order(other, key))
    stale = EsimOrder("esim-3", EID, OrderAction.DELETE, spare, 1, registry.now() - 1)
    with pytest.raises(OrderRefused, match="expired"):
        run.check(sign_order(stale, key))
    disable = EsimOrder("esim-4", EID, OrderAction.DISABLE, spare, 5, later)
    run.received(sign_order(disable, key))
    assert run.run_pending() == 0  # the spare is disabled already: the card says so
    assert (tmp_path / "agent" / "orders.json").is_file()
    with pytest.raises(OrderRepeat):
        run.check(sign_order(disable, key))
    replayed = replace(disable, op="esim-5", action=OrderAction.DELETE, counter=4)
    caplog.set_level(logging.WARNING, logger="agent.orders")
    run.received(sign_order(replayed, key))
    assert run.run_pending() == 0
    assert any("replayed" in r.getMessage() and "nothing done" in r.getMessage()
               for r in caplog.records)
    assert spare in [p.iccid for p in CardState.load(path).profiles]  # not deleted
    assert run.refused == 1


def test_partner_apps_may_ask_and_the_request_waits_for_the_user(registry: Registry) -> None:
    from mps_wire.messages import PairRequest, Status
    from mps_wire.requests import EsimAppRequest, OrderAction
    from tests.helpers import LENA_MSISDN, PAUL_MSISDN

    ask = EsimAppRequest(PAUL_MSISDN, EID, OrderAction.DISABLE, make_device(1).iccid)
    assert registry.app_request("care", PairRequest(PAUL_MSISDN, "support")).reply.is_ok
    reply = registry.app_request("care", ask).reply
    assert reply.is_ok and reply.body["state"] == "awaiting-user"
    (open_request,) = registry.portal(PAUL).esim_requests()
    assert (open_request.request, open_request.requested_by) == (reply.body["request"],
                                                                 "app:care")
    assert registry.orders_to_send() == []  # nothing without the user's word
    # A verified app may not ask; a partner not paired may not; no device of another
    # contract may be named.
    assert registry.app_request("health", ask).reply.status is Status.DENIED
    assert registry.app_request("coach", ask).reply.status is Status.DENIED
    other = EsimAppRequest(LENA_MSISDN, EID, OrderAction.DISABLE, make_device(1).iccid)
    assert registry.app_request("care", other).reply.status is not Status.OK
    assert len(registry.store.esim_requests()) == 1


def test_only_each_devices_newest_finished_order_is_cleared(registry: Registry) -> None:
    import broker_bridge.registry.esim as esim

    for _ in range(2):
        request = registry.request_esim(EID, "disable", make_device(1).iccid,
                                        actor="operator:test")
        registry.portal(PAUL).approve_esim(request.id)
    first, second = (r for r, _signed in registry.orders_to_send())
    assert registry.order_sent(first) and registry.order_sent(second)
    assert registry.orders_to_clear() == []  # sent, not finished: stays retained
    registry.order_result(EID, EsimOrderResult(first.id, EID, OrderOutcome.DONE))
    assert registry.orders_to_clear() == []  # the retained one is the second order
    registry.order_result(EID, EsimOrderResult(second.id, EID, OrderOutcome.FAILED, "busy"))
    (clear,) = registry.orders_to_clear()
    assert clear.id == second.id and clear.result == "failed: busy"
    assert registry.order_cleared(clear)
    assert registry.orders_to_clear() == []
    assert registry.store.esim_request(second.id).result == "failed: busy"  # type: ignore[union-attr]
    # An order sent and never reported is closed as failed after its expiry and a grace.
    third = registry.request_esim(EID, "disable", make_device(1).iccid, actor="operator:test")
    registry.portal(PAUL).approve_esim(third.id)
    ((sent, _signed),) = registry.orders_to_send()
    assert registry.order_sent(sent)
    registry._clock = lambda: (sent.order_expires or 0) + int(esim.REPORT_GRACE * 1000)
    (late,) = registry.orders_to_clear()
    assert (late.id, late.state, late.result) == (third.id, EsimState.FAILED,
                                                  "no report from the device")
