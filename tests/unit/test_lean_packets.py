"""The lean client's own reading and decoding (:mod:`mps_mqtt.lean`,
:mod:`mps_mqtt.leanpackets`) against paho's: the same bytes, fed over a socket pair to a
:class:`~mps_mqtt.lean.LeanClient` and to a stock ``mqtt.Client``, give the same messages,
properties, acknowledgements, callbacks, result codes and disconnections."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet as paho_packets
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mps_mqtt import lean

pytestmark = pytest.mark.skipif(not lean.FAST_DECODE, reason="paho's internals differ")


# --- packets, encoded here by hand (MQTT v5 sections 1.5, 2.1, 2.2, 3.3, 3.4) ----------

def _vbi(n: int) -> bytes:
    """A Variable Byte Integer (section 1.5.5)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def prop(ident: int, value: bytes) -> bytes:
    return bytes([ident]) + value


def publish(topic: str | bytes = "t/1", payload: bytes = b"hi", *, qos: int = 1,
            mid: int = 7, props: bytes = b"", flags: int = 0,
            props_len: int | None = None) -> bytes:
    """A PUBLISH (section 3.3): fixed header, topic, packet id, properties, payload."""
    body = _s(topic) + (struct.pack("!H", mid) if qos else b"")
    body += _vbi(len(props) if props_len is None else props_len) + props + payload
    return bytes([0x30 | flags | qos << 1]) + _vbi(len(body)) + body


def puback(mid: int, rest: bytes = b"") -> bytes:
    body = struct.pack("!H", mid) + rest
    return bytes([0x40]) + _vbi(len(body)) + body


#: One of every property a PUBLISH may carry (section 3.3.2.3), several of the
#: repeatable ones (User Property, Subscription Identifier).
EVERY_PROPERTY = b"".join([
    prop(0x01, b"\x01"),                                  # Payload Format Indicator
    prop(0x02, struct.pack("!L", 3600)),                  # Message Expiry Interval
    prop(0x23, struct.pack("!H", 5)),                     # Topic Alias
    prop(0x08, _s("mps/v1/apps/care/replies/ü")),         # Response Topic
    prop(0x09, _s(bytes(range(256)) * 2)),                # Correlation Data
    prop(0x26, _s("trace") + _s("abc")),                  # User Property
    prop(0x26, _s("trace") + _s("")),                     # ... repeated, same name
    prop(0x0B, _vbi(1)),                                  # Subscription Identifier
    prop(0x0B, _vbi(268_435_455)),                        # ... largest, four bytes
    prop(0x0B, b"\x81\x00"),                              # ... 1, not in fewest bytes
    prop(0x03, _s("application/cbor")),                   # Content Type
])


# --- two clients, one stream ---------------------------------------------------------

@dataclass
class Run:
    """What a client made of a byte stream."""

    client: mqtt.Client
    peer: socket.socket
    events: list[Any] = field(default_factory=list)
    sent: bytearray = field(default_factory=bytearray)
    part_at: float = 0.0

    def result(self) -> list[Any]:
        c = self.client
        queued = b"".join(bytes(p["packet"][p["pos"]:]) for p in c._out_packet)
        return [self.events, bytes(self.sent) + queued, dict(c._in_packet),
                sorted(c._out_messages), c._inflight_messages, sorted(c._in_messages),
                c._state]


def _snapshot(props: Any) -> Any:
    return None if props is None else (type(props), vars(props))


def _reading(run: Run) -> tuple[Any, ...]:
    """How the client holds the packet it is handling, and whether it noted the time."""
    c = run.client
    held = dict(c._in_packet)
    held["packet"] = (type(held["packet"]), bytes(held["packet"]))
    return tuple(held.items()), c._last_bytes_received >= run.part_at


def _client(kind: type[mqtt.Client], logs: bool, protocol: int, manual_ack: bool) -> Run:
    client = kind(mqtt.CallbackAPIVersion.VERSION2, client_id="same",
                  protocol=protocol, manual_ack=manual_ack)
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # type: ignore[assignment]
    run = Run(client, peer)
    events = run.events
    send = client._sock_send

    def sending(buf: bytes) -> int:
        n = send(buf)
        run.sent += buf[:n]
        return n

    client._sock_send = sending  # type: ignore[method-assign]

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        events.append(("message", msg._topic, msg.payload, type(msg.payload), msg.mid,
                       msg.qos, repr((msg.dup, msg.retain)), msg.state, msg.info.mid,
                       msg.timestamp >= run.part_at, _reading(run),
                       _snapshot(msg.properties)))
        props = msg.properties  # as the application reads them
        if props is not None and hasattr(props, "CorrelationData"):
            events.append(("correlation", type(props.CorrelationData), str(props),
                           props.pack()))

    client.on_message = on_message
    client.on_publish = lambda _c, _u, mid, reason, props: events.append(
        ("published", mid, type(reason), vars(reason), str(reason), _snapshot(props),
         _reading(run)))
    client.on_disconnect = lambda _c, _u, flags, reason, _p: events.append(
        ("disconnect", flags.is_disconnect_packet_from_server, reason.value))
    if logs:
        client.on_log = lambda _c, _u, level, buf: events.append(("log", level, buf))
    return run


def _drain(run: Run) -> None:
    """Read until the client has taken all the bytes sent (or dropped the connection)."""
    client = run.client
    for _ in range(10_000):
        sock = client._sock
        if sock is None:
            return
        try:
            waiting = bool(sock.recv(1, socket.MSG_PEEK))
        except BlockingIOError:
            waiting = False
        if not waiting and not getattr(client, "_lean_in", b""):
            return
        try:
            rc = client.loop_read()
        except Exception as exc:  # compared between the two clients
            run.events.append(("raised", type(exc).__name__, str(exc)))
            return
        if rc:
            run.events.append(("rc", rc))
            return
    raise AssertionError("the client does not take its bytes")


def feed(kind: type[mqtt.Client], parts: list[bytes], *, logs: bool = False,
         protocol: int = mqtt.MQTTv5, before: Callable[[mqtt.Client], Any] | None = None,
         manual_ack: bool = True) -> list[Any]:
    """What a ``kind`` client makes of ``parts``, each sent and read before the next."""
    run = _client(kind, logs, protocol, manual_ack)
    try:
        if before is not None:
            before(run.client)
        for part in parts:
            if run.client._sock is None:
                break
            run.part_at = time.monotonic()
            run.peer.sendall(part)
            _drain(run)
        return run.result()
    finally:
        if run.client._sock is not None:
            run.client._sock.close()
        run.peer.close()


def same(parts: list[bytes], **kwargs: Any) -> list[Any]:
    """The lean client's result, having checked it is stock paho's."""
    got = feed(lean.LeanClient, parts, **kwargs)
    assert got == feed(mqtt.Client, parts, **kwargs)
    return got


def _messages(result: list[Any]) -> list[Any]:
    return [e for e in result[0] if e[0] == "message"]


# --- PUBLISH -------------------------------------------------------------------------

def test_every_publish_property_is_handed_over_as_paho_decodes_it() -> None:
    """Section 3.3.2.3: each property a PUBLISH may carry, the repeatable ones (User
    Property, Subscription Identifier) as lists, in a real paho Properties."""
    got = same([publish(props=EVERY_PROPERTY, payload=b"\x00body")], logs=True)
    (message,) = _messages(got)
    props = message[-1][1]
    assert message[-1][0] is Properties
    assert props["ResponseTopic"] == "mps/v1/apps/care/replies/ü"
    assert props["CorrelationData"] == bytes(range(256)) * 2
    assert props["UserProperty"] == [("trace", "abc"), ("trace", "")]
    assert props["SubscriptionIdentifier"] == [1, 268_435_455, 1]
    assert (props["PayloadFormatIndicator"], props["MessageExpiryInterval"],
            props["TopicAlias"], props["ContentType"]) == (1, 3600, 5, "application/cbor")
    assert message[1:4] == (b"t/1", b"\x00body", bytes)


@pytest.mark.parametrize("packet", [
    publish(qos=0, props=prop(0x08, _s("r")) + prop(0x09, _s(b"c"))),
    publish(qos=1, flags=0x09, props=prop(0x09, _s(b""))),     # DUP, RETAIN, empty data
    publish(qos=1, mid=65535, props=b"", payload=b""),
    publish(topic="", props=prop(0x23, b"\x00\x01")),            # Topic Alias, no topic
    publish(topic=b"\xff\xfe", props=b""),                       # a topic not UTF-8
    publish(props=prop(0x26, _s("é") + _s("\u2603"))),
    publish(payload=bytes(200_000), props=prop(0x08, _s("r"))),  # more than one read
], ids=["qos0", "dup-retain", "empty", "alias", "bad-topic", "unicode", "large"])
def test_publications_of_each_form_arrive_as_with_paho(packet: bytes) -> None:
    """Sections 3.3.1 (DUP, QoS, RETAIN), 3.3.2 (topic, packet id, properties): paho 2.2
    does not resolve a Topic Alias, nor does the lean client (the topic stays empty)."""
    assert len(_messages(same([packet], logs=True))) == 1


def _counting(called: list[str], name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any) -> Any:
        called.append(name)
        return real(*args)
    return counted


def test_the_fast_path_leaves_paho_s_parser_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regular PUBLISH and PUBACK packets read at once are taken whole, not through
    paho's read of the fixed header, and decoded without paho's decoders or its generic
    Properties.unpack (what the fast path is for)."""
    called: list[str] = []
    for name in ("decode_publish", "decode_puback"):
        monkeypatch.setattr(paho_packets, name,
                            _counting(called, name, getattr(paho_packets, name)))
    monkeypatch.setattr(Properties, "unpack", _counting(called, "unpack", Properties.unpack))
    monkeypatch.setattr(mqtt.Client, "_packet_read",
                        _counting(called, "read", mqtt.Client._packet_read))
    stream = publish(props=EVERY_PROPERTY) + puback(1, b"\x10") + publish(qos=0)
    got = feed(lean.LeanClient, [stream], before=lambda c: c.publish("x", b"", qos=1))
    assert called == []
    assert [e[0] for e in got[0]] == ["message", "correlation", "published", "message"]
    feed(mqtt.Client, [stream], before=lambda c: c.publish("x", b"", qos=1))
    assert [c for c in called if c != "read"] == [
        "decode_publish", "unpack", "decode_puback", "decode_publish", "unpack"]


STREAM = (publish(props=EVERY_PROPERTY, mid=1) + puback(1) + publish(qos=0, payload=b"")
          + publish(mid=2, props=prop(0x08, _s("reply")) + prop(0x09, _s(b"\x01\x02")),
                    payload=bytes(300)))  # a two-byte Remaining Length (section 2.1.4)


@pytest.mark.parametrize("manual_ack", [True, False])
def test_several_packets_in_one_read_arrive_in_order(manual_ack: bool) -> None:
    """Section 3.3.4: a QoS 1 PUBLISH is acknowledged by the client's own PUBACK unless
    the application acknowledges it (paho's manual_ack)."""
    got = same([STREAM], manual_ack=manual_ack, before=lambda c: c.publish("x", qos=1))
    assert [m[4] for m in _messages(got)] == [1, 0, 2]
    acks = b"\x40\x02\x00\x01\x40\x02\x00\x02"
    assert got[1].endswith(acks) != manual_ack
    assert all(e[-2][1] for e in got[0] if e[0] in ("message", "published"))


def test_packets_split_at_every_byte_arrive_whole() -> None:
    """Section 2.1.4: a packet (its fixed header too) read in parts is still one packet."""
    want = same([STREAM], before=lambda c: c.publish("x", b"", qos=1))
    for cut in range(1, len(STREAM)):
        parts = [STREAM[:cut], STREAM[cut:]]
        assert same(parts, before=lambda c: c.publish("x", b"", qos=1)) == want, cut


def test_packets_read_a_byte_at_a_time_arrive_whole() -> None:
    parts = [STREAM[i:i + 1] for i in range(len(STREAM))]
    want = same([STREAM], logs=True, before=lambda c: c.publish("x", b"", qos=1))
    assert same(parts, logs=True, before=lambda c: c.publish("x", b"", qos=1)) == want


MALFORMED = {
    # Section 2.1.4: a Remaining Length of five bytes; four, not in fewest bytes (taken).
    "length-5-bytes": b"\x32\xff\xff\xff\xff\x01" + bytes(10),
    "length-5-bytes-of-0": b"\x30\x80\x80\x80\x80\x00",
    "length-4-bytes-of-4": b"\x30\x84\x80\x80\x00\x00\x01t\x00",
    # Section 2.2.2.1: a Property Length beyond the packet.
    "props-beyond": publish(props=prop(0x08, _s("r")), props_len=40),
    "props-beyond-short": publish(props=prop(0x02, b"\x00\x00"), payload=b""),
    "value-beyond": publish(props=prop(0x09, b"\x00\x09abc")),
    "value-one-beyond": publish(props=prop(0x09, b"\x00\x04abc"), payload=b"defg"),
    "pair-one-beyond": publish(props=prop(0x26, _s("k") + b"\x00\x02v"), payload=b"w"),
    # Section 3.3.2.3: properties a PUBLISH may carry once, or not at all.
    "response-topic-twice": publish(props=prop(0x08, _s("a")) + prop(0x08, _s("b"))),
    "correlation-twice": publish(props=prop(0x09, _s(b"a")) * 2),
    "unknown-id": publish(props=prop(0x7F, b"\x00")),
    "not-for-publish": publish(props=prop(0x11, b"\x00\x00\x00\x01")),  # Session Expiry
    "id-in-two-bytes": publish(props=b"\x88\x00" + _s("r")),  # Response Topic, padded
    "indicator-2": publish(props=prop(0x01, b"\x02")),
    "alias-0": publish(props=prop(0x23, b"\x00\x00")),
    "subscription-id-0": publish(props=prop(0x0B, b"\x00")),
    "subscription-id-5-bytes": publish(props=prop(0x0B, b"\x80\x80\x80\x80\x01")),
    "response-topic-not-utf8": publish(props=prop(0x08, _s(b"\xc3"))),
    "response-topic-nul": publish(props=prop(0x08, _s(b"a\x00"))),
    "content-type-bom": publish(props=prop(0x03, _s("\ufeffx"))),
    "topic-beyond": b"\x32\x04\x00\x09ab",
    "no-packet-id": b"\x32\x03\x00\x01t",
    "qos-3": publish(flags=0x06),
    "qos-2": publish(qos=2, props=prop(0x08, _s("r"))),
    "empty-body": b"\x30\x00",
}


@pytest.mark.parametrize("packet", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_publications_are_refused_as_paho_refuses_them(packet: bytes) -> None:
    """What paho calls a malformed packet gives the same result code and disconnection;
    what it lets through, the same message; the packet before it arrives either way."""
    got = same([publish(mid=1) + packet + publish(mid=3)], logs=True)
    assert _messages(got)[0][4] == 1


def test_a_malformed_publication_is_a_protocol_error() -> None:
    got = same([publish(props=prop(0x08, _s("a")) + prop(0x08, _s("b")))])
    assert got[0][-2:] == [("disconnect", False, 130), ("rc", mqtt.MQTT_ERR_PROTOCOL)]


def test_mqtt_311_is_left_to_paho() -> None:
    packet = b"\x32\x08\x00\x03a/b\x00\x05x"
    got = same([packet + b"\x40\x02\x00\x05"], protocol=mqtt.MQTTv311)
    assert _messages(got)[0][-1] is None


# --- PUBACK (section 3.4) ------------------------------------------------------------

@pytest.mark.parametrize("rest", [
    b"", b"\x00", b"\x10", b"\x80", b"\x87", b"\x10\x00",    # the short forms
    b"\x00\x05\x1f\x00\x02ok",                                # a Reason String: paho's
    b"\x01", b"\x00\x01", b"\x10\x00\x00", b"\x00\x05",       # refused by paho
], ids=["2", "3-ok", "3-no-subscribers", "3-error", "3-not-authorized", "4", "reason",
        "bad-code", "props-cut", "trailing", "props-beyond"])
def test_a_puback_completes_its_publication_as_with_paho(rest: bytes) -> None:
    """Section 3.4.2: a PUBACK completes the QoS 1 publication with its packet id (its
    MQTTMessageInfo published, on_publish given the reason code); another id changes
    nothing."""
    infos: list[mqtt.MQTTMessageInfo] = []

    def publish_two(client: mqtt.Client) -> None:
        infos.extend(client.publish("x", b"p", qos=1) for _ in range(2))

    got = same([puback(9, rest) + puback(2, rest) + puback(1, rest)], logs=True,
               before=publish_two)
    events = [e for e in got[0] if e[0] != "log"]
    if events[0][0] == "published":
        assert [(e[1], e[4]) for e in events] == [(2, events[0][4]), (1, events[0][4])]
        assert all(info.is_published() for info in infos[-2:])
        assert got[3:5] == [[], 0]
    else:
        assert events[-1] == ("rc", mqtt.MQTT_ERR_PROTOCOL)


def test_a_puback_reason_code_reaches_on_publish() -> None:
    got = same([puback(1, b"\x10")], before=lambda c: c.publish("x", b"", qos=1))
    (published,) = got[0]
    assert published[1:3] == (1, ReasonCode)
    assert published[4] == "No matching subscribers"


# --- fuzz ----------------------------------------------------------------------------

def _mutate(rng: random.Random, packet: bytes) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randint(1, 3)):
        how = rng.randrange(4)
        at = rng.randrange(len(data)) if data else 0
        if how == 0 and data:
            data[at] = rng.randrange(256)
        elif how == 1:
            data.insert(at, rng.randrange(256))
        elif how == 2 and len(data) > 1:
            del data[at]
        else:
            data[1:2] = bytes([rng.randrange(256)])  # another Remaining Length
    return bytes(data)


def _case(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # random bytes behind a PUBLISH or PUBACK header
        body = rng.randbytes(rng.randrange(40))
        return bytes([rng.choice([0x30, 0x31, 0x32, 0x33, 0x3A, 0x34, 0x40])]) \
            + _vbi(len(body)) + body
    if kind == 1:
        return rng.randbytes(rng.randrange(1, 30))
    props = b"".join(prop(*rng.choice([
        (0x08, _s("r")), (0x09, _s(rng.randbytes(3))), (0x26, _s("k") + _s("v")),
        (0x0B, _vbi(rng.randrange(1, 300))), (0x01, b"\x00"), (0x02, b"\x00\x00\x00\x09"),
        (0x03, _s("c")), (0x23, b"\x00\x02")])) for _ in range(rng.randrange(5)))
    valid = publish(props=props, qos=rng.randrange(2), payload=rng.randbytes(5))
    valid += puback(rng.randrange(1, 3), rng.choice([b"", b"\x00", b"\x10\x00"]))
    return valid if kind == 2 else _mutate(rng, valid)


def test_fuzzed_streams_give_the_same_result_as_paho() -> None:
    """Random and mutated packets (seeded, 600 cases): the lean client raises only where
    paho raises, and gives the same messages, callbacks and result codes."""
    rng = random.Random(20240611)
    for n in range(600):
        stream = _case(rng) + publish(mid=77)
        cut = rng.randrange(1, len(stream) + 1)

        def two(client: mqtt.Client) -> None:
            client.publish("x", b"a", qos=1)
            client.publish("x", b"b", qos=1)

        parts = [stream[:cut], stream[cut:]] if n % 2 else [stream]
        assert feed(lean.LeanClient, parts, logs=n % 3 == 0, before=two) \
            == feed(mqtt.Client, parts, logs=n % 3 == 0, before=two), (n, stream.hex())
