"""The bridge's MQTT client (:mod:`mps_mqtt.lean`): paho's protocol handling with reads
and writes joined. Every packet still arrives whole, in order (MQTT v5 section 4.6,
message ordering), over a real Mosquitto and over a socket pair counted call by call."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from mps_mqtt import lean
from mps_mqtt.client import BrokerURL, connect, disconnect, new_client, new_properties, subscribe
from mps_testbed.stack import Mosquitto

pytestmark = pytest.mark.skipif(not lean.AVAILABLE, reason="paho's internals differ")


class Counted(lean.LeanClient):
    """Counts the socket calls the lean client makes."""

    sends = 0

    def _sock_send(self, buf: bytes) -> int:
        self.sends += 1
        return super()._sock_send(buf)  # type: ignore[no-any-return]


def _client() -> Counted:
    return Counted(mqtt.CallbackAPIVersion.VERSION2, client_id="lean-test",
                   protocol=mqtt.MQTTv5)


@pytest.fixture
def pair() -> Iterator[tuple[Counted, socket.socket]]:
    client = _client()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # type: ignore[assignment]
    try:
        yield client, peer
    finally:
        ours.close()
        peer.close()


def _queue(client: Counted, command: int, body: bytes, qos: int = 1) -> bytes:
    packet = bytes([command, len(body)]) + body
    info = mqtt.MQTTMessageInfo(0) if qos == 0 else None
    client._out_packet.append({"command": command, "mid": 0, "qos": qos, "pos": 0,
                               "to_process": len(packet), "packet": packet, "info": info})
    return packet


def _read_all(peer: socket.socket, size: int) -> bytes:
    got = b""
    peer.settimeout(2)
    while len(got) < size:
        got += peer.recv(size - len(got))
    return got


def test_queued_acknowledgements_and_publications_go_out_in_one_write(
        pair: tuple[Counted, socket.socket]) -> None:
    client, peer = pair
    sent = [_queue(client, 0x40, bytes([0, n, 0])) for n in range(1, 40)]  # PUBACKs
    sent.append(_queue(client, 0x32, b"\x00\x01t\x00\x07\x00hi"))  # a QoS 1 PUBLISH
    assert client._packet_write() == mqtt.MQTT_ERR_SUCCESS
    assert client.sends == 1
    assert _read_all(peer, sum(map(len, sent))) == b"".join(sent)  # in their order
    assert not client._out_packet


def test_a_qos0_publication_is_written_on_its_own_and_its_callback_fires(
        pair: tuple[Counted, socket.socket]) -> None:
    client, peer = pair
    published: list[int] = []
    client.on_publish = lambda _c, _u, mid, _r, _p: published.append(mid)
    sent = [_queue(client, 0x40, b"\x00\x01\x00"), _queue(client, 0x40, b"\x00\x02\x00"),
            _queue(client, 0x30, b"\x00\x01t\x00q0", qos=0),  # its callback fires once
            _queue(client, 0x40, b"\x00\x03\x00")]            # written
    client._packet_write()
    assert client.sends == 3  # the two acks joined, the QoS 0 publication, the last ack
    assert _read_all(peer, sum(map(len, sent))) == b"".join(sent)
    assert published == [0]


def test_a_large_packet_is_not_copied_into_a_joined_write(
        pair: tuple[Counted, socket.socket]) -> None:
    client, peer = pair
    big = b"\x00\x01t\x00" + os.urandom(lean.JOIN_BYTES)
    packet = bytes([0x32]) + _remaining_length(len(big)) + big
    client._out_packet.append({"command": 0x32, "mid": 1, "qos": 1, "pos": 0,
                               "to_process": len(packet), "packet": packet, "info": None})
    ack = _queue(client, 0x40, b"\x00\x01\x00")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(_read_all(peer, len(packet + ack))))
    reader.start()
    while client._out_packet:
        client._packet_write()
    reader.join(5)
    assert got == [packet + ack]


def _remaining_length(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n % 128, n // 128
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _collect(client: mqtt.Client) -> tuple[list[tuple[str, bytes]], threading.Event, list[int]]:
    got: list[tuple[str, bytes]] = []
    want: list[int] = [0]
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, bytes(msg.payload)))
        if len(got) >= want[0]:
            done.set()

    client.on_message = on_message
    return got, done, want


def test_a_burst_of_messages_of_every_size_arrives_whole_and_in_order(
        mosquitto: Mosquitto) -> None:
    url = BrokerURL.parse(mosquitto.url)
    topic = f"test/lean/{uuid.uuid4().hex[:8]}"
    receiver = new_client(lean=True)
    assert isinstance(receiver, lean.LeanClient)
    got, done, want = _collect(receiver)
    connect(receiver, url, receive_maximum=1000)
    sender = new_client()
    connect(sender, url)
    try:
        subscribe(receiver, topic, timeout=5)
        # Sizes around the fixed header's length bytes and the read size, in one burst.
        sizes = [0, 1, 126, 127, 128, 16383, 16384, 70_000, 200_000, *range(1, 400)]
        payloads = [os.urandom(n) for n in sizes]
        want[0] = len(payloads)
        for body in payloads:
            sender.publish(topic, body, qos=1)
        assert done.wait(20), f"{len(got)} of {len(payloads)}"
        assert got == [(topic, body) for body in payloads]
    finally:
        disconnect(sender)
        disconnect(receiver)


def test_request_properties_arrive_through_the_broker_as_paho_reads_them(
        mosquitto: Mosquitto) -> None:
    """MQTT v5 section 3.3.2.3: the properties of a request (Response Topic, Correlation
    Data, User Properties, ...) reach the lean client's callback as they reach paho's."""
    url = BrokerURL.parse(mosquitto.url)
    topic = f"test/lean/{uuid.uuid4().hex[:8]}"
    got: dict[str, list[Any]] = {"lean": [], "paho": []}
    done = threading.Event()
    receivers = {"lean": new_client(lean=True, manual_ack=True), "paho": new_client()}
    assert isinstance(receivers["lean"], lean.LeanClient)
    for name, receiver in receivers.items():
        def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage,
                       into: list[Any] = got[name]) -> None:
            into.append((msg.topic, msg.payload, msg.qos, msg.properties.json()))
            c.ack(msg.mid, msg.qos)
            if all(len(v) == 20 for v in got.values()):
                done.set()

        receiver.on_message = on_message
        connect(receiver, url)
        subscribe(receiver, topic, timeout=5)
    sender = new_client()
    connect(sender, url)
    try:
        for n in range(20):
            props = new_properties()
            props.ResponseTopic = f"{topic}/reply/{n}"
            props.CorrelationData = os.urandom(n)
            props.UserProperty = [("n", str(n)), ("n", "again")]
            props.ContentType = "application/cbor"
            props.PayloadFormatIndicator = n % 2
            sender.publish(topic, os.urandom(n * 10), qos=n % 2, properties=props)
        assert done.wait(10), {k: len(v) for k, v in got.items()}
        assert got["lean"] == got["paho"]
        assert got["lean"][3][3]["UserProperty"] == [("n", "3"), ("n", "again")]
    finally:
        disconnect(sender)
        for receiver in receivers.values():
            disconnect(receiver)


def test_replies_published_on_the_network_thread_go_out_without_waking_it(
        mosquitto: Mosquitto) -> None:
    """The bridge answers on paho's network thread: what it queues there is written
    before the loop waits, so no reply waits for the next message or keepalive."""
    url = BrokerURL.parse(mosquitto.url)
    base = f"test/lean/{uuid.uuid4().hex[:8]}"
    echo = new_client(lean=True, manual_ack=True)

    def answer(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        c.publish(f"{base}/out", msg.payload, qos=1)
        c.ack(msg.mid, msg.qos)

    echo.on_message = answer
    connect(echo, url)
    asker = new_client()
    got, done, want = _collect(asker)
    connect(asker, url)
    try:
        subscribe(echo, f"{base}/in", timeout=5)
        subscribe(asker, f"{base}/out", timeout=5)
        for n in range(50):  # one at a time: each must come back alone
            want[0] = n + 1
            done.clear()
            started = time.monotonic()
            asker.publish(f"{base}/in", str(n).encode(), qos=1)
            assert done.wait(5), f"reply {n} did not come"
            assert time.monotonic() - started < 0.5
        assert [body for _t, body in got] == [str(n).encode() for n in range(50)]
    finally:
        disconnect(asker)
        disconnect(echo)


def test_what_was_read_of_a_closed_connection_is_dropped(
        pair: tuple[Counted, socket.socket]) -> None:
    client, peer = pair
    peer.sendall(b"\x40\x03\x00\x01\x00" + b"\x32\x7f\x00")  # an ack, half a publish
    assert client._sock_recv(1) == b"\x40"  # all of it read, one byte handed out
    assert client._lean_in
    client._sock_close()
    assert (client._lean_in, client._lean_at) == (b"", 0)


def test_one_read_parses_what_it_read_and_no_more(
        pair: tuple[Counted, socket.socket]) -> None:
    client, peer = pair
    client._protocol = mqtt.MQTTv5
    handled: list[int] = []
    handle = client._packet_handle

    def counted() -> Any:
        handled.append(client._in_packet["command"])
        return handle()

    client._packet_handle = counted  # type: ignore[method-assign]
    # 100,000 bytes of PUBACKs: more than one read takes, and not ending on a packet's end.
    acks = 20_000
    peer.sendall(b"\x40\x03\x00\x01\x00" * acks)
    time.sleep(0.1)
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    # Each packet read was parsed before returning; the rest stayed in the socket (a
    # flood does not keep the network thread from writing).
    assert len(handled) == lean.READ_SIZE // 5
    for _ in range(10):
        client.loop_read()
    assert len(handled) == acks


def test_what_handling_a_packet_queued_goes_out_before_the_next_is_parsed(
        pair: tuple[Counted, socket.socket]) -> None:
    """Three QoS 1 publications read at once: each one's PUBACK is written before the
    next is parsed, as paho's own loop does, not all after the last."""
    client, peer = pair
    client._thread = threading.current_thread()  # as on its network thread
    events: list[str] = []
    handle, send = client._packet_handle, client._sock_send

    def handled() -> Any:
        events.append("handle")
        return handle()

    def sent(buf: bytes) -> int:
        events.append("send")
        return send(buf)

    client._packet_handle = handled  # type: ignore[method-assign]
    client._sock_send = sent  # type: ignore[method-assign]
    peer.sendall(b"".join(b"\x32\x07\x00\x01t\x00" + bytes([n]) + b"\x00x"
                          for n in (1, 2, 3)))
    time.sleep(0.1)
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert events == ["handle", "send"] * 3
    assert _read_all(peer, 3 * 4) == b"".join(b"\x40\x02\x00" + bytes([n])
                                              for n in (1, 2, 3))


def test_messages_flow_again_after_the_broker_returns(tmp_path: Any) -> None:
    with Mosquitto(workdir=tmp_path / "broker") as broker:
        url = BrokerURL.parse(broker.url)
        topic = f"test/lean/{uuid.uuid4().hex[:8]}"
        receiver = new_client(lean=True)
        receiver.reconnect_delay_set(min_delay=1, max_delay=1)
        got, done, want = _collect(receiver)
        subscribed = threading.Event()
        receiver.on_subscribe = lambda _c, _u, _m, _r, _p: subscribed.set()
        connect(receiver, url)
        # After connect(): it waits for the first CONNACK with a handler of its own.
        receiver.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(topic, qos=1)
        try:
            receiver.subscribe(topic, qos=1)
            assert subscribed.wait(5)
            subscribed.clear()
            broker.restart()
            assert subscribed.wait(15), "not subscribed again"
            sender = new_client()
            connect(sender, url)
            want[0] = 20
            for n in range(20):
                sender.publish(topic, b"after %d" % n, qos=1)
            assert done.wait(5)
            assert got == [(topic, b"after %d" % n) for n in range(20)]
            disconnect(sender)
        finally:
            disconnect(receiver)


def _wakes(client: mqtt.Client) -> int:
    """Bytes waiting on the client's socket pair: one per wake of its network thread."""
    reader = client._sockpairR
    assert reader is not None
    reader.setblocking(False)
    try:
        return len(reader.recv(4096))
    except BlockingIOError:
        return 0


def test_packets_queued_by_a_thread_holding_its_wakes_wake_the_loop_once() -> None:
    client = lean.LeanClient(mqtt.CallbackAPIVersion.VERSION2, client_id="lean-wakes",
                             protocol=mqtt.MQTTv5, manual_ack=True)
    client._sockpairR, client._sockpairW = socket.socketpair()
    # Any thread but this one is the network thread: this one queues as the bridge's
    # worker does.
    client._thread = threading.Thread(target=lambda: None)
    try:
        for mid in range(1, 6):
            client.ack(mid, 1)
        assert _wakes(client) == 5  # paho's own way: one wake per packet
        with client.held_wakes():
            for mid in range(6, 16):
                client.ack(mid, 1)
            assert _wakes(client) == 0
            with lean.held_wakes(client):  # nested: still held by the outer one
                client.ack(16, 1)
            assert _wakes(client) == 0
        assert _wakes(client) == 1
        with client.held_wakes():  # nothing queued: no wake
            pass
        assert _wakes(client) == 0
        assert [p["mid"] for p in client._out_packet] == list(range(1, 17))
        assert not client._lean_holders
    finally:
        client._sockpairR.close()
        client._sockpairW.close()


def test_replies_queued_in_batches_with_wakes_held_all_arrive_in_order(
        mosquitto: Mosquitto) -> None:
    """As the bridge's worker answers a committed group: replies and acknowledgements
    queued from another thread than the network thread, the loop woken once a batch."""
    url = BrokerURL.parse(mosquitto.url)
    base = f"test/lean/{uuid.uuid4().hex[:8]}"
    echo = new_client(lean=True, manual_ack=True)
    inbox: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
    echo.on_message = lambda _c, _u, msg: inbox.put(msg)

    def worker() -> None:
        while (first := inbox.get()) is not None:
            batch = [first]
            while not inbox.empty() and len(batch) < 50:
                batch.append(inbox.get_nowait())  # type: ignore[arg-type]
            with lean.held_wakes(echo):
                for msg in batch:
                    if msg is not None:
                        echo.publish(f"{base}/out", msg.payload, qos=1)
                for msg in batch:
                    if msg is not None:
                        echo.ack(msg.mid, msg.qos)
            if batch[-1] is None:
                return

    connect(echo, url, receive_maximum=1000)
    asker = new_client()
    got, done, want = _collect(asker)
    connect(asker, url)
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        subscribe(echo, f"{base}/in", timeout=5)
        subscribe(asker, f"{base}/out", timeout=5)
        want[0] = 500
        for n in range(500):
            asker.publish(f"{base}/in", str(n).encode(), qos=1)
        assert done.wait(20), f"{len(got)} of 500 replies"
        assert [body for _t, body in got] == [str(n).encode() for n in range(500)]
    finally:
        inbox.put(None)
        thread.join(5)
        disconnect(asker)
        disconnect(echo)
