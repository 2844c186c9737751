"""Cheap MQTT v5 property handling for the service's hot path."""

from __future__ import annotations

import logging
import socket
import struct

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

_CORRELATION_DATA = 0x09  # MQTT v5 property identifier (binary data)


class PackedProperties(Properties):
    """PUBLISH properties packed once, up front.

    paho builds properties through a generic, name-checked ``__setattr__`` and packs them by
    scanning every known property name, about 23 us per message; a reply only ever carries
    the request's Correlation Data, which packs in a few bytes operations. paho calls
    nothing but :meth:`pack` on a PUBLISH's properties (and ``str`` for debug logging).
    """

    _packed: bytes

    def __init__(self, packed: bytes) -> None:
        # Properties.__init__ builds its name tables and __setattr__ rejects other names;
        # neither is needed for an already packed block.
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", packed)

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:
        return f"[packed properties: {self._packed.hex()}]"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def echo_correlation(request: Properties | None) -> Properties | None:
    """Reply properties carrying the request's Correlation Data, or None if it had none."""
    corr = getattr(request, "CorrelationData", None) if request is not None else None
    if corr is None:
        return None
    body = struct.pack("!BH", _CORRELATION_DATA, len(corr)) + bytes(corr)
    return PackedProperties(_varint(len(body)) + body)


def response_topic(request: Properties | None) -> str | None:
    """The request's Response Topic, if it named one."""
    if request is None:
        return None
    topic = getattr(request, "ResponseTopic", None)
    return topic if isinstance(topic, str) and topic else None


def set_nodelay(client: mqtt.Client) -> None:
    """Turn off Nagle's algorithm on the client's socket.

    paho writes a reply and the acknowledgement of the request as separate small
    segments; with Nagle on, the second waits for the peer's delayed ACK (up to 40 ms).
    Call after every (re)connect: each connection has a new socket.
    """
    sock = client.socket()
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            log.debug("cannot set TCP_NODELAY: %s", exc)
