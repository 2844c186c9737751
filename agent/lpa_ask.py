"""``mps-lpa profile ask ACTION ID --broker URL``: the device asks its operator's registry
for a profile operation (disable, enable, delete) on its own eUICC instead of running it.

The request goes to the registry over MQTT (``{prefix}/devices/{eid}/esim-requests``, QoS 1,
see :mod:`mps_wire.orders`); the user of the device's contract approves or refuses it, and
the agent's daemon runs the registry's signed order once approved. The broker login comes
from the device's credential bundle (``--credentials DIR`` or ``$MPS_CREDENTIALS``).
"""

from __future__ import annotations

import argparse
import os

from agent.credentials import DeviceCredentials
from agent.errors import AgentConfigError, AgentError
from agent.lpa_commands import Output
from mps_esim.lpa import Es10Client
from mps_mqtt.client import BrokerURL, MqttError, connect, disconnect, new_client
from mps_wire import codec
from mps_wire.identifiers import validate_iccid
from mps_wire.orders import EsimDeviceAsk, OrderAction
from mps_wire.topics import Topics


def cmd_profile_ask(client: Es10Client, args: argparse.Namespace) -> Output:
    """Publish the request for the card's EID; return once the broker took it."""
    broker_text = getattr(args, "broker", None) or os.environ.get("MPS_BROKER")
    if not broker_text:
        raise AgentConfigError("profile ask needs --broker (or $MPS_BROKER)")
    iccid = validate_iccid(args.id)
    eid = client.get_eid()
    broker = BrokerURL.parse(broker_text)
    bundle = getattr(args, "credentials", None) or os.environ.get("MPS_CREDENTIALS")
    if bundle:
        creds = DeviceCredentials.load(bundle)
        creds.check_device(eid)
        broker = creds.broker_url(broker)
    ask = EsimDeviceAsk(OrderAction(args.action), iccid)
    topic = Topics(args.prefix).device_esim_requests(eid)
    mqtt_client = new_client()
    try:
        connect(mqtt_client, broker)
        info = mqtt_client.publish(topic, codec.encode(ask.to_wire()), qos=1)
        info.wait_for_publish(10)
        if not info.is_published():
            raise AgentError(f"the broker did not take the request on {topic}")
    except MqttError as exc:
        raise AgentError(f"broker {broker}: {exc}") from exc
    finally:
        disconnect(mqtt_client)
    return Output({"ok": True, "eid": eid, "action": args.action, "profile": iccid,
                   "state": "awaiting-user"},
                  [f"asked the registry to {args.action} {iccid} on {eid}; the user of the "
                   "contract decides, then the agent's daemon carries it out"])
