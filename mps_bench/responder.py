"""The baselines the bridge is measured against, each in a process of its own as the bridge
is: a bare MQTT v5 echo of app requests, and decode-only ingestion of registrations.

Both answer exactly as the bridge does on the wire (QoS 1, the request's Correlation Data
echoed on its Response Topic, the request acknowledged only after the answer is sent, one
member of a shared-subscription group), so that what the bridge costs on top is its own
work: ``echo`` sends the request back, ``decode`` decodes the registration (COSE_Sign1 or
bare map, validated) and answers with a registration result, storing nothing.

Run as ``python -m mps_bench.responder --mode echo|decode --broker URL --prefix P``; it
prints ``ready`` once subscribed and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt

from mps_common.cli import new_parser
from mps_mqtt.client import BrokerURL, MqttError, connect, disconnect, new_client, subscribe
from mps_mqtt.props import echo_correlation, response_topic, set_nodelay
from mps_wire import codec
from mps_wire.errors import WireError
from mps_wire.messages import Reply
from mps_wire.registration import decode_registration
from mps_wire.topics import Topics

log = logging.getLogger(__name__)

QOS = 1
MODES = ("echo", "decode")


def echo(payload: bytes) -> bytes:
    """The request itself, unchanged."""
    return payload


def decode_only(payload: bytes) -> bytes:
    """Decode and validate a registration; answer as the bridge answers a new device."""
    try:
        info = decode_registration(payload).info
    except WireError as exc:
        return codec.encode(Reply.error(exc.code, exc.message).to_wire())
    return codec.encode(Reply.ok(result="registered", device_id=info.device_id,
                                 contract="-").to_wire())


def topic_filter(mode: str, topics: Topics) -> str:
    """What the responder of ``mode`` serves: app requests, or registrations."""
    return topics.all_app_requests() if mode == "echo" else topics.all_registrations()


class Responder:
    """Answers requests on ``topic_filter`` with ``answer(payload)``."""

    def __init__(self, broker: BrokerURL, topic_filter: str, answer: Callable[[bytes], bytes],
                 *, group: str = "mps-bench") -> None:
        self.broker = broker
        self.filter = Topics.shared(group, topic_filter)
        self.answer = answer
        self.handled = 0
        self._client: mqtt.Client | None = None

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            reply_to = response_topic(msg.properties)
            if reply_to is not None:
                client.publish(reply_to, self.answer(bytes(msg.payload)), qos=QOS,
                               properties=echo_correlation(msg.properties))
            self.handled += 1
        finally:
            client.ack(msg.mid, msg.qos)

    def start(self, timeout: float = 10.0) -> None:
        client = new_client(manual_ack=True)
        client.on_message = self._on_message
        connect(client, self.broker, timeout=timeout)
        set_nodelay(client)
        try:
            subscribe(client, self.filter, timeout=timeout, qos=QOS)
        except MqttError:
            disconnect(client)
            raise
        self._client = client

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            disconnect(client)


def main(argv: Sequence[str] | None = None) -> int:
    parser = new_parser("python -m mps_bench.responder", (__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--broker", required=True, type=BrokerURL.parse)
    parser.add_argument("--prefix", default="mps/v1")
    parser.add_argument("--group", default="mps-bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    answer = echo if args.mode == "echo" else decode_only
    responder = Responder(args.broker, topic_filter(args.mode, Topics(args.prefix)), answer,
                          group=args.group)
    responder.start()
    print(f"ready {args.mode} pid", flush=True)
    try:
        # Short waits keep the main thread returning to the interpreter for signals.
        while not stop.wait(0.5):
            pass
    finally:
        responder.stop()
    print(f"stopped after {responder.handled} requests", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
