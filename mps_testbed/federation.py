"""The demo's act across operators: Lena moved her number to Other Mobile, which runs its
own registry (its own Mosquitto, its own database, its own bridge). The home operator's
portability list says so; the partner app asks the home registry, is redirected, and the
SDK follows to Other Mobile's registry with the app's access there, and pairs with Lena's
contract as it would at home, her device included.

:func:`run_federation_act` needs the home registry's database (to add the other operator
and import the list) and its broker; it starts and stops the other operator's side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broker_bridge.model import App, Contract, OtherOperator, Subscription, TrustLevel
from broker_bridge.registry import Registry
from broker_bridge.service import Bridge
from broker_bridge.storage import SqliteStore, Store, store_for
from mps_mqtt.client import BrokerURL
from mps_sdk.client import PairingAnswer
from mps_sdk.federation import FederatedPairingClient, OperatorAccess
from mps_testbed.stack import Mosquitto
from mps_wire.identifiers import make_eid, make_iccid, make_imei
from mps_wire.messages import DeviceInfo, ModelInfo

OTHER = "other-mobile"
LENA_MSISDN = "+4916099900001"
LENA_CONTRACT = "C-LENA-OTHER"


@dataclass(slots=True)
class FederationResult:
    """What the act showed: the lines told and the pairing made at the other operator."""

    lines: list[str] = field(default_factory=list)
    answer: PairingAnswer | None = None


def _lenas_device() -> DeviceInfo:
    iccid = make_iccid("894926299900000001")
    return DeviceInfo(eid=make_eid("89049032" + "9" * 20 + "01"),
                      imei=make_imei("35209900", "999001"), iccid=iccid,
                      imsi="262029990000001", ip=("10.9.0.1",),
                      capabilities=("lte", "gps"), model=ModelInfo("Quectel", "BG96", "R1"),
                      profile="emulated-quectel", seq=1, ts=1)


def _other_operator(store: Store, app: str) -> None:
    """Other Mobile's data: Lena's contract, her number and one registered device."""
    device = _lenas_device()
    store.upsert_contract(Contract(LENA_CONTRACT, "Lena"))
    store.upsert_number(LENA_MSISDN, LENA_CONTRACT)
    store.upsert_subscription(Subscription(device.iccid, device.imsi, LENA_MSISDN,
                                           LENA_CONTRACT))
    store.upsert_app(App(app, "Operator customer care", TrustLevel.PARTNER, ("support",),
                         standing_consent=True))
    registry = Registry(store)
    registry.bind_subscription(device.iccid, device.eid, actor="operator:demo")
    registry.register(device)


def run_federation_act(home_broker: str, home_db: str, workdir: Path, *, app: str,
                       say: Callable[[str], None] = print,
                       timeout: float = 10.0) -> FederationResult:
    """Play the act; see the module documentation."""
    result = FederationResult()

    def tell(line: str) -> None:
        result.lines.append(line)
        say(line)

    workdir.mkdir(parents=True, exist_ok=True)
    with Mosquitto(workdir=workdir / "mosquitto") as broker, \
            SqliteStore(workdir / "registry.sqlite") as store:
        _other_operator(store, app)
        tell(f"operator    {OTHER} runs its own registry and broker at {broker.url}")
        home = store_for(home_db)
        home.open()
        try:
            home.upsert_operator(OtherOperator(OTHER, "Other Mobile", broker.url))
            ports = workdir / "portability.csv"
            ports.write_text(f"msisdn,operator,valid_from,valid_until\n"
                             f"{LENA_MSISDN},{OTHER},0,\n")
            Registry(home).import_portability(ports)
        finally:
            home.close()
        tell(f"operator    the portability list says {LENA_MSISDN} moved to {OTHER}")
        access = {OTHER: OperatorAccess(BrokerURL.parse(broker.url), app)}
        with Bridge(store, BrokerURL.parse(broker.url)), \
                FederatedPairingClient(home_broker, app, operators=access,
                                       timeout=timeout) as client:
            answer = client.pair(LENA_MSISDN, "support")
        result.answer = answer
        tell(f"app         {app} asks its home registry for {LENA_MSISDN}: redirected to "
             f"{answer.operator}, followed; {answer.state} there, sees "
             f"{len(answer.devices)} device{'s' if len(answer.devices) != 1 else ''}")
    return result
