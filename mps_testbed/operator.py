"""The operator's data for an emulated deployment: its contract, the devices'
subscriptions and the story's apps, as TOML for ``mps-bridge operator import`` or sent to
the registry over its operator topic."""

from __future__ import annotations

import json
import os
from typing import Any

from mps_mqtt.client import (
    DEFAULT_RETRY,
    BrokerURL,
    MqttError,
    Requester,
    connect,
    disconnect,
    new_client,
)
from mps_testbed.deployment import DeviceSetup, Story
from mps_testbed.errors import RigError
from mps_wire import codec
from mps_wire.errors import WireError
from mps_wire.messages import OperatorOp, OperatorRequest, Reply
from mps_wire.topics import Topics

OPERATOR_SOURCE = "rig"
"""The source name the rig's operator requests go under."""


def operator_data(story: Story, devices: list[DeviceSetup]) -> str:
    """The operator's data for the story as TOML (one contract, one trusted app), as
    ``mps-bridge operator import`` reads it."""
    lines = ["[[contracts]]", f'id = "{story.contract_id}"', f'holder = "{story.holder}"',
             f'msisdns = ["{story.msisdn}"]', ""]
    for d in devices:
        lines += ["  [[contracts.subscriptions]]", f'  iccid = "{d.iccid}"',
                  f'  imsi = "{d.imsi}"', f'  msisdn = "{d.msisdn}"', ""]
    for app in story.apps:
        lines += ["[[apps]]", f"id = {toml_value(app.id)}", f"name = {toml_value(app.name)}",
                  f"trust = {toml_value(app.trust)}",
                  f"purposes = {toml_value(list(app.purposes))}", ""]
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_document(tables: dict[str, Any]) -> str:
    """A TOML document from top-level keys and one level of tables."""
    top = [f"{k} = {toml_value(v)}" for k, v in tables.items() if not isinstance(v, dict)]
    out = [*top, ""]
    for name, table in tables.items():
        if isinstance(table, dict):
            out.append(f"[{name}]")
            out += [f"{k} = {toml_value(v)}" for k, v in table.items()]
            out.append("")
    return "\n".join(out)


def send_operator_data(broker_url: str, story: Story, devices: list[DeviceSetup], *,
                       prefix: str = "mps/v1", timeout: float = 10.0) -> None:
    """The contract and the devices' subscriptions, sent to the registry on its operator
    topic as an operator system does. Raises RigError for a refusal."""
    topics = Topics(prefix)
    client = new_client(f"mps-rig-operator-{os.getpid()}")
    try:
        connect(client, BrokerURL.parse(broker_url))
    except MqttError as exc:
        raise RigError(str(exc)) from exc
    try:
        requester = Requester(client, topics.operator_replies(OPERATOR_SOURCE))
        requester.start()
        requests = [OperatorRequest(OperatorOp.ADD_CONTRACT, contract=story.contract_id,
                                    holder=story.holder, msisdns=(story.msisdn,))]
        requests += [OperatorRequest(OperatorOp.ADD_SUBSCRIPTION, contract=story.contract_id,
                                     iccid=d.iccid, imsi=d.imsi, msisdn=d.msisdn)
                     for d in devices]
        for request in requests:
            try:
                raw = requester.request(topics.operator_requests(OPERATOR_SOURCE),
                                        codec.encode(request.to_wire()), timeout=timeout,
                                        retry=DEFAULT_RETRY)  # upserts: a repeat is harmless
                reply = Reply.from_wire(codec.decode(raw))
            except (MqttError, WireError) as exc:
                raise RigError(f"operator data: {request.op.value} got no usable answer "
                               f"from the registry: {exc}") from exc
            if not reply.is_ok:
                raise RigError(f"operator data: the registry refused {request.op.value}: "
                               f"{reply.code} - {reply.message}")
    finally:
        disconnect(client)


def bind_profiles(db: str, devices: list[DeviceSetup]) -> None:
    """Bind each device's profile to its eUICC in the registry ``db``, as ``mps-bridge
    operator bind --swap`` does: preloaded cards reach no SM-DP+ whose installation result
    would prove the subscription, and the registry refuses a device without that proof."""
    from broker_bridge.registry import Registry
    from broker_bridge.storage import store_for

    store = store_for(db)
    store.open()
    try:
        registry = Registry(store)
        for d in devices:
            registry.bind_subscription(d.iccid, d.eid, swap=True, actor="operator:rig")
    finally:
        store.close()
