"""ES10 commands of the ISD-R (SGP.22 section 5.7), dispatched by their BER tag.

Each handler takes the card context and the reassembled command TLV and returns the
complete response TLV (or nothing). Handlers raise :class:`CardStatus` with ``6A80`` for a
malformed command. A command whose tag has no handler is answered with status ``6A80``
and no data: SGP.22 has no response for a function the eUICC does not know, and ``6A80``
("incorrect data") lets an LPA tell it apart from a transport failure.

More commands slot in by adding a handler to :data:`HANDLERS`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from lpa_emulator import tlv
from lpa_emulator.euicc.apdu import SW
from lpa_emulator.euicc.errors import CardStatus
from lpa_emulator.euicc.state import CardState

log = logging.getLogger(__name__)

TAG_GET_EUICC_DATA = 0xBF3E
TAG_GET_CONFIGURED_ADDRESSES = 0xBF3C
TAG_SET_DEFAULT_DP_ADDRESS = 0xBF3F
TAG_TAG_LIST = 0x5C
TAG_EID = 0x5A

_MAX_ADDRESS = 255


class Es10Context(Protocol):
    """What a handler may use of the card."""

    @property
    def state(self) -> CardState: ...

    def commit(self, new_state: CardState) -> None:
        """Persist ``new_state`` and make it current (``6581`` if it cannot be stored)."""


Es10Handler = Callable[[Es10Context, tlv.Tlv], bytes]


def _children(command: tlv.Tlv) -> list[tlv.Tlv]:
    if not command.constructed:
        raise CardStatus(SW.WRONG_DATA, f"ES10 command {command.tag:X} is not constructed")
    return command.children()


def get_euicc_data(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetEuiccData: the EID (tag 5A) when the tag list asks for it."""
    tags = [c for c in _children(command) if c.tag == TAG_TAG_LIST]
    if len(tags) != 1:
        raise CardStatus(SW.WRONG_DATA, "GetEuiccData needs exactly one tag list (5C)")
    body = b""
    if TAG_EID in tags[0].value:
        # The EID travels as 16 bytes of plain (not nibble-swapped) BCD.
        body = tlv.encode(TAG_EID, bytes.fromhex(ctx.state.eid))
    return tlv.encode(TAG_GET_EUICC_DATA, body)


def get_configured_addresses(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetEuiccConfiguredAddresses: default SM-DP+ address (80, if set) and root SM-DS (81)."""
    _children(command)
    state = ctx.state
    body = b""
    if state.default_dp_address:
        body += tlv.encode(0x80, state.default_dp_address.encode())
    body += tlv.encode(0x81, state.root_ds_address.encode())
    return tlv.encode(TAG_GET_CONFIGURED_ADDRESSES, body)


def set_default_dp_address(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """SetDefaultDpAddress: store (or, when empty, remove) the default SM-DP+ address."""
    fields = {c.tag: c for c in _children(command)}
    address = fields.get(0x80)
    if address is None or len(address.value) > _MAX_ADDRESS:
        raise CardStatus(SW.WRONG_DATA, "SetDefaultDpAddress needs a defaultDpAddress (80)")
    try:
        text = address.value.decode("utf-8")
    except UnicodeDecodeError:
        raise CardStatus(SW.WRONG_DATA, "defaultDpAddress is not UTF-8") from None
    new_state = copy.deepcopy(ctx.state)
    new_state.default_dp_address = text or None
    ctx.commit(new_state)
    return tlv.encode(TAG_SET_DEFAULT_DP_ADDRESS, tlv.encode(0x80, b"\x00"))  # ok(0)


HANDLERS: Mapping[int, Es10Handler] = {
    TAG_GET_EUICC_DATA: get_euicc_data,
    TAG_GET_CONFIGURED_ADDRESSES: get_configured_addresses,
    TAG_SET_DEFAULT_DP_ADDRESS: set_default_dp_address,
}


def dispatch(ctx: Es10Context, data: bytes,
             handlers: Mapping[int, Es10Handler] = HANDLERS) -> bytes:
    """Run the ES10 command in ``data`` (one complete TLV) and return its response."""
    try:
        command = tlv.decode_one(data)
    except tlv.TlvError as exc:
        raise CardStatus(SW.WRONG_DATA, f"ES10 command is not a valid TLV: {exc}") from exc
    handler = handlers.get(command.tag)
    if handler is None:
        log.info("unsupported ES10 command %X", command.tag)
        raise CardStatus(SW.WRONG_DATA, f"unsupported ES10 command {command.tag:X}")
    try:
        return handler(ctx, command)
    except tlv.TlvError as exc:
        raise CardStatus(SW.WRONG_DATA, f"malformed ES10 command {command.tag:X}: {exc}") from exc
