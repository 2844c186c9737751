"""MQTT v5 framing, PUBLISH and PUBACK decoding without paho's generic property parser,
for :mod:`mps_mqtt.lean`.

paho decodes every property through name-checked tables (``Properties.unpack`` and
``__setattr__``), and builds those tables anew for each packet. The functions here read
the common forms directly and return what paho's decoders return for the same bytes:
:class:`~paho.mqtt.properties.Properties` and :class:`~paho.mqtt.reasoncodes.ReasonCode`
objects holding the same attributes. Each returns None for what it does not take whole
(a property a PUBLISH may not carry, one repeated that may appear once, a value paho
refuses, a length reaching past its field); the caller then leaves the packet to paho,
which decodes or refuses it its own way.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

_U32 = struct.Struct("!L")


class _Irregular(Exception):
    """The packet is left to paho."""


def frame(held: bytes, at: int) -> tuple[int, int] | None:
    """Where the body of the packet starting at ``held[at]`` starts, and its length, if
    ``held`` holds the whole packet and its Remaining Length takes at most four bytes
    (MQTT v5 section 2.1.4); None otherwise."""
    size = len(held)
    pos = at + 1
    length = 0
    mult = 1
    while True:
        if pos >= size or pos - at > 4:
            return None
        byte = held[pos]
        pos += 1
        length += (byte & 0x7F) * mult
        if byte < 0x80:
            break
        mult *= 128
    return (pos, length) if pos + length <= size else None


def _properties(template: dict[str, Any]) -> Properties:
    # paho never changes the name tables a Properties holds after building them: a new
    # object can share the template's instead of building its own.
    props = Properties.__new__(Properties)
    vars(props).update(template)
    return props


def _template(packet_type: int) -> dict[str, Any]:
    return dict(vars(Properties(packet_type)))  # type: ignore[no-untyped-call]


_PUBLISH_TEMPLATE = _template(PacketTypes.PUBLISH)
_PUBACK_TEMPLATE = _template(PacketTypes.PUBACK)


# --- property values (MQTT v5 section 2.2.2.2): (buffer, position, end of properties)
# -> (value, next position), refusing what paho's Properties refuses.

def _vbi(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A Variable Byte Integer (section 1.5.5), at most four bytes, inside ``end``."""
    value = 0
    mult = 1
    for _ in range(4):
        if pos >= end:
            raise _Irregular
        byte = buf[pos]
        pos += 1
        value += (byte & 0x7F) * mult
        if byte < 0x80:
            return value, pos
        mult *= 128
    raise _Irregular


def _indicator(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end or buf[pos] > 1:  # paho accepts 0 or 1 only
        raise _Irregular
    return buf[pos], pos + 1


def _four_bytes(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise _Irregular
    return _U32.unpack_from(buf, pos)[0], pos + 4


def _alias(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise _Irregular
    value = buf[pos] << 8 | buf[pos + 1]
    if not value:  # paho refuses a Topic Alias of 0
        raise _Irregular
    return value, pos + 2


def _identifier(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _vbi(buf, pos, end)
    if not value:  # paho refuses a Subscription Identifier of 0
        raise _Irregular
    return value, pos


def _binary(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise _Irregular
    stop = pos + 2 + (buf[pos] << 8 | buf[pos + 1])
    if stop > end:
        raise _Irregular
    return buf[pos + 2:stop], stop


def _text(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    raw, stop = _binary(buf, pos, end)
    try:
        text = raw.decode("utf-8")  # strict: no surrogates (section 1.5.4)
    except UnicodeDecodeError:
        raise _Irregular from None
    if "\x00" in text or "\ufeff" in text:  # refused by paho (MQTT-1.5.4-2, -3)
        raise _Irregular
    return text, stop


def _pair(buf: bytes, pos: int, end: int) -> tuple[tuple[str, str], int]:
    name, pos = _text(buf, pos, end)
    value, pos = _text(buf, pos, end)
    return (name, value), pos


#: The properties a PUBLISH may carry (section 3.3.2.3): identifier -> (attribute name,
#: reader, whether it may appear more than once; paho then holds a list).
_PUBLISH_PROPERTIES: dict[int, tuple[str, Callable[[bytes, int, int], tuple[Any, int]],
                                     bool]] = {
    1: ("PayloadFormatIndicator", _indicator, False),
    2: ("MessageExpiryInterval", _four_bytes, False),
    3: ("ContentType", _text, False),
    8: ("ResponseTopic", _text, False),
    9: ("CorrelationData", _binary, False),
    11: ("SubscriptionIdentifier", _identifier, True),
    35: ("TopicAlias", _alias, False),
    38: ("UserProperty", _pair, True),
}


def _read_properties(buf: bytes, pos: int, end: int, into: dict[str, Any]) -> None:
    while pos < end:
        known = _PUBLISH_PROPERTIES.get(buf[pos])  # an identifier >= 0x80: none known
        if known is None:
            raise _Irregular
        name, read, multiple = known
        value, pos = read(buf, pos + 1, end)
        if multiple:
            into.setdefault(name, []).append(value)
        elif name in into:
            raise _Irregular
        else:
            into[name] = value


def _publish(packet: bytes, qos: int) -> tuple[bytes, int, Properties, bytes]:
    size = len(packet)
    if size < 2:
        raise _Irregular
    pos = 2 + (packet[0] << 8 | packet[1])
    if pos > size:
        raise _Irregular
    topic = packet[2:pos]
    mid = 0
    if qos:
        if pos + 2 > size:
            raise _Irregular
        mid = packet[pos] << 8 | packet[pos + 1]
        pos += 2
    length, pos = _vbi(packet, pos, size)
    end = pos + length
    if end > size:
        raise _Irregular
    props = _properties(_PUBLISH_TEMPLATE)
    if length:
        _read_properties(packet, pos, end, vars(props))
    return topic, mid, props, packet[end:]


def publish(packet: bytes | bytearray, qos: int) -> tuple[bytes, int, Properties,
                                                           bytes] | None:
    """The topic, packet identifier (0 at QoS 0), properties and payload of an MQTT v5
    PUBLISH's body (sections 3.3.2, 3.3.3) at QoS 0 or 1, as paho decodes them; None for
    what is left to paho."""
    try:
        return _publish(bytes(packet), qos)
    except _Irregular:
        return None


_UNSEEN: Any = object()
_PUBACK_REASONS: dict[int, dict[str, Any] | None] = {}


def _puback_reason(code: int) -> ReasonCode | None:
    template = _PUBACK_REASONS.get(code, _UNSEEN)
    if template is _UNSEEN:
        try:  # as paho reads it: a code PUBACK does not know is a malformed packet
            reason = ReasonCode(PacketTypes.PUBACK)
            reason.unpack(bytes([code]))
            template = dict(vars(reason))
        except (KeyError, ValueError):
            template = None
        _PUBACK_REASONS[code] = template
    if template is None:
        return None
    # paho never changes its name table after building it: shared, as with Properties.
    reason = ReasonCode.__new__(ReasonCode)
    vars(reason).update(template)
    return reason


def puback(packet: bytes | bytearray) -> tuple[int, ReasonCode, Properties] | None:
    """The packet identifier, reason code and (empty) properties of an MQTT v5 PUBACK's
    body (section 3.4.2) in its short forms: the identifier alone, or followed by a
    reason code and at most an empty property length; None for what is left to paho."""
    size = len(packet)
    if size < 2 or size > 4 or (size == 4 and packet[3]):
        return None
    reason = _puback_reason(packet[2] if size > 2 else 0)
    if reason is None:
        return None
    return packet[0] << 8 | packet[1], reason, _properties(_PUBACK_TEMPLATE)
