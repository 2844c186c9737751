"""paho's client with fewer system calls and less work per message, for a process that
moves many.

Stock paho makes, per QoS 1 request answered on its network thread: three reads for the
request (the fixed header's first byte, its length, the rest), one write of a byte to
its own socket pair to wake the loop it is already running in, one read to empty that
pair, one write for the reply and one for each acknowledgement. :class:`LeanClient`
keeps paho's protocol handling and changes how bytes meet the socket:

- reads take what the socket holds (up to :data:`READ_SIZE`) and serve paho's small
  reads from it; the whole packets read are parsed before the loop waits again, and
  what handling each of them queued is written before the next is parsed;
- a packet queued on the network thread itself does not wake that thread through its
  socket pair (it is written right after the packet being handled, or before the loop
  next waits);
- consecutive queued packets that paho does nothing with once written (QoS 1 and 2
  publications, acknowledgements, subscriptions; not QoS 0 publications, whose callback
  fires when written, nor DISCONNECT) go out in one write, up to :data:`JOIN_BYTES`
  and :data:`JOIN_COUNT`.

It also takes less work per packet, keeping paho's bookkeeping, callbacks and logging:

- a packet whose bytes are all read is taken whole from what was read, where paho reads
  its fixed header a byte at a time (a packet read in parts is still paho's to read);
- an MQTT v5 PUBLISH at QoS 0 or 1 and an MQTT v5 PUBACK in its short forms are decoded
  by :mod:`mps_mqtt.leanpackets` into the same message, properties and reason code paho
  makes, without paho's generic property parser; a packet holding anything else (another
  property, a repeated one, a value or length paho refuses) is decoded, or refused, by
  paho itself, as are QoS 2 and MQTT 3.1.1.

Where paho's internals are not the ones this was written against, the client behaves
exactly as paho's own (see :data:`AVAILABLE` and :data:`FAST_DECODE`).
:func:`spare_matching` spares such a process paho's garbage per message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher

from mps_mqtt import leanpackets
from mps_mqtt.client import ProxyAwareClient

#: Bytes asked of the socket at once.
READ_SIZE = 65536
#: Packets are joined into one write up to this many bytes; a larger one goes alone.
JOIN_BYTES = 16384
#: ... and up to this many packets.
JOIN_COUNT = 64

_PUBLISH = 0x30
_DISCONNECT = 0xE0

#: Whether paho has the internals this class builds on (paho-mqtt 2.1 and 2.2 do; the
#: project asks for 2.2, whose decoders :data:`FAST_DECODE` needs too).
AVAILABLE = all(hasattr(mqtt.Client, name) for name in (
    "_sock_recv", "_packet_read", "_packet_write", "_packet_queue", "_loop_rc_handle",
    "_call_socket_register_write"))


class _Never(Exception):
    """Stands for paho's MalformedPacket where paho has none (nothing raises it)."""


_MALFORMED: type[Exception] = getattr(mqtt, "MalformedPacket", _Never)

#: Whether paho reads and decodes packets as the fast paths reproduce (paho-mqtt 2.2:
#: decoders in ``paho.mqtt._packet`` raising MalformedPacket, a protocol error).
FAST_DECODE = AVAILABLE and _MALFORMED is not _Never and all(
    hasattr(getattr(mqtt, "_packet", None), name)
    for name in ("decode_publish", "decode_puback")) and all(
    hasattr(mqtt.Client, name) for name in (
        "_packet_handle", "_handle_publish", "_handle_pubackcomp", "_handle_on_message",
        "_do_on_publish", "_send_puback", "_easy_log"))


class LeanClient(ProxyAwareClient):
    """A paho MQTT client that reads and writes in fewer system calls, and decodes the
    packets it gets most of itself (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean_in = b""
        self._lean_at = 0
        self._lean_draining = False
        #: Threads inside held_wakes, and whether each has queued a packet since.
        self._lean_holders: dict[int, bool] = {}

    # --- reading ----------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        held, at = self._lean_in, self._lean_at
        if at >= len(held):
            if self._lean_draining:  # the rest waits in the socket, which wakes select()
                raise BlockingIOError
            data = super()._sock_recv(READ_SIZE)  # BlockingIOError when nothing waits
            if len(data) <= bufsize:
                return data  # b"" too: the connection closed
            held, at = data, 0
            self._lean_in = data
        end = at + bufsize
        self._lean_at = end
        if end >= len(held):
            self._lean_in, self._lean_at = b"", 0
        return held[at:end]

    def _lean_fill(self) -> MQTTErrorCode | None:
        """Read what the socket holds into the buffer; the error paho's read of a
        packet's first byte gives, if any."""
        if self._lean_draining:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        try:
            data = super()._sock_recv(READ_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except TimeoutError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "timeout on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        except OSError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        self._lean_in, self._lean_at = data, 0
        return None

    def _packet_read(self) -> MQTTErrorCode:
        if not FAST_DECODE or self._in_packet["command"]:
            return super()._packet_read()
        if self._lean_at >= len(self._lean_in):
            rc = self._lean_fill()
            if rc is not None:
                return rc
        held, at = self._lean_in, self._lean_at
        whole = leanpackets.frame(held, at)
        if whole is None:  # a part, or a Remaining Length paho refuses
            return super()._packet_read()
        start, length = whole
        end = start + length
        if end >= len(held):
            self._lean_in, self._lean_at = b"", 0
        else:
            self._lean_at = end
        count = list(held[at + 1:start])
        self._in_packet = {
            "command": held[at], "have_remaining": 1, "remaining_count": count,
            "remaining_mult": 128 ** len(count), "remaining_length": length,
            "packet": bytearray(held[start:end]), "to_process": 0, "pos": 0}
        return self._lean_handle(length)

    def _lean_handle(self, length: int) -> MQTTErrorCode:
        """Handle the packet in ``_in_packet`` and reset it, as paho's read does."""
        if length:  # paho notes the time as it reads a body
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
        try:
            rc = self._packet_handle()
        except _MALFORMED as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # Bytes already read wake no select(): parse them before the loop waits, and no
        # more than them (a flood would otherwise keep this thread reading, not writing).
        # What handling a packet queued goes out before the next is parsed, as paho's
        # loop writes after each read: the peer works on it meanwhile (a batch written
        # only after all were parsed would leave the two processes taking turns).
        self._lean_draining = True
        try:
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None:
                if self._out_packet:
                    rc = self.loop_write()
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not self._lean_in:
                        return rc
                elif not self._lean_in:
                    return rc
                rc = self._packet_read()
                if rc > 0:
                    return self._loop_rc_handle(rc)
                if rc == MQTTErrorCode.MQTT_ERR_AGAIN:  # the rest is in the socket
                    rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        finally:
            self._lean_draining = False
        return rc

    # --- decoding ---------------------------------------------------------------------

    def _lean_logs(self) -> bool:
        return self._on_log is not None or self._logger is not None

    def _handle_publish(self) -> MQTTErrorCode:
        command = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        if FAST_DECODE and qos < 2 and self._protocol == mqtt.MQTTv5:
            parts = leanpackets.publish(self._in_packet["packet"], qos)
            if parts is not None:
                topic, mid, properties, payload = parts
                message = mqtt.MQTTMessage(mid=mid, topic=topic)
                message.dup = (command & 0x08) != 0
                message.qos = qos
                message.retain = (command & 0x01) != 0
                message.properties = properties
                message.payload = payload
                if self._lean_logs():
                    self._lean_log_publish(message, topic)
                message.timestamp = mqtt.time_func()
                self._handle_on_message(message)
                if qos == 0 or self._manual_ack:
                    return MQTTErrorCode.MQTT_ERR_SUCCESS
                return self._send_puback(mid)
        return super()._handle_publish()

    def _lean_log_publish(self, message: mqtt.MQTTMessage, topic: bytes) -> None:
        try:
            print_topic = topic.decode("utf-8")
        except UnicodeDecodeError:
            print_topic = f"TOPIC WITH INVALID UTF-8: {topic!r}"
        self._easy_log(
            mqtt.MQTT_LOG_DEBUG,
            "Received PUBLISH (d%d, q%d, r%d, m%d), '%s', properties=%s, ...  (%d bytes)",
            message.dup, message.qos, message.retain, message.mid,
            print_topic, message.properties, len(message.payload))

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        if FAST_DECODE and cmd == "PUBACK" and self._protocol == mqtt.MQTTv5:
            parts = leanpackets.puback(self._in_packet["packet"])
            if parts is not None:
                mid, reason, properties = parts
                if self._lean_logs():
                    self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received %s (Mid: %d)", cmd, mid)
                with self._out_message_mutex:
                    if mid in self._out_messages:
                        return self._do_on_publish(mid, reason, properties)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._handle_pubackcomp(cmd)

    def _sock_close(self) -> None:
        # What was read of the old connection is nothing to the next one.
        self._lean_in, self._lean_at = b"", 0
        super()._sock_close()

    # --- writing ----------------------------------------------------------------------

    @contextmanager
    def held_wakes(self) -> Iterator[None]:
        """Queue what this thread sends meanwhile without waking the network thread for
        each packet: it is woken once, at the end, and writes them together.

        For a thread that sends a batch at once (the replies and acknowledgements of a
        committed group): each wake costs the network thread a turn of its loop, and
        both threads a hand-over of the interpreter lock, per packet otherwise.
        """
        me = threading.get_ident()
        thread = self._thread
        if thread is None or thread.ident == me or me in self._lean_holders:
            yield  # no loop to wake, or it is this thread's own, or already held
            return
        self._lean_holders[me] = False
        try:
            yield
        finally:
            if self._lean_holders.pop(me):
                self._lean_wake()

    def _lean_wake(self) -> None:
        # What paho's _packet_queue does after queueing a packet from another thread.
        sock = getattr(self, "_sockpairW", None)
        if sock is not None:
            with suppress(BlockingIOError):  # full: a wake is pending already
                sock.send(mqtt.sockpair_data)
        self._call_socket_register_write()

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> MQTTErrorCode:
        thread = self._thread
        if thread is None:
            return super()._packet_queue(command, packet, mid, qos, info)
        me = threading.get_ident()
        held = me in self._lean_holders
        if thread.ident != me and not held:
            return super()._packet_queue(command, packet, mid, qos, info)
        # On the network thread, the loop writes what is queued before it waits again
        # (it asks select() for writability whenever packets are queued); for a thread
        # holding its wakes, held_wakes wakes the loop once it is done.
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                 "to_process": len(packet), "packet": packet,
                                 "info": info})
        if held:
            self._lean_holders[me] = True
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        self._call_socket_register_write()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        out = self._out_packet
        if len(out) > 1:
            parts: list[bytes | bytearray] = []
            size = 0
            # By index, not by iterating: other threads append while this one writes.
            for i in range(min(len(out), JOIN_COUNT)):
                packet = out[i]
                command = packet["command"] & 0xF0
                length = packet["to_process"]
                if command == _DISCONNECT or (command == _PUBLISH and packet["qos"] == 0) \
                        or size + length > JOIN_BYTES:
                    break
                pos = packet["pos"]
                parts.append(packet["packet"][pos:] if pos else packet["packet"])
                size += length
            if len(parts) > 1:
                for _ in parts:
                    out.popleft()
                joined = b"".join(parts)
                # Written as one acknowledgement-like packet: paho does nothing more
                # with any of them once written, and keeps the position if cut short.
                out.appendleft({"command": 0x40, "mid": 0, "qos": 1, "pos": 0,
                                "to_process": len(joined), "packet": joined, "info": None})
        return super()._packet_write()


def held_wakes(client: mqtt.Client) -> AbstractContextManager[None]:
    """:meth:`LeanClient.held_wakes` of a lean client; nothing for any other."""
    if isinstance(client, LeanClient):
        return client.held_wakes()
    return nullcontext()


class _Matcher(MQTTMatcher):
    """paho's matcher of per-filter callbacks, asking nothing while it holds none: paho's
    own makes a recursive closure (a reference cycle, left to the cyclic collector) for
    every message received, callbacks or not."""

    def iter_match(self, topic: str) -> Iterator[Any]:
        root = self._root
        if not root._children and root._content is None:
            return iter(())
        return super().iter_match(topic)  # type: ignore[no-untyped-call,no-any-return]


def spare_matching(client: mqtt.Client) -> None:
    """Replace ``client``'s matcher of per-filter callbacks (none added yet) with one that
    leaves no garbage for the collector when it holds none: a process serving many
    messages a second then collects seldom (each collection pauses every thread)."""
    matcher = getattr(client, "_on_message_filtered", None)
    if type(matcher) is MQTTMatcher and not matcher._root._children:
        client._on_message_filtered = _Matcher()  # type: ignore[no-untyped-call]
