"""The consent page's sign-in code as the operator's text message to the user, emulated
on MQTT.

    {prefix}/users/{contract}/sign-in   registry -> user agent (QoS 1, retained with a
                                        Message Expiry Interval: the code's lifetime)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mps_wire.fields import Pattern, Text, UInt, WireField, WireMessage, WireTable
from mps_wire.requests import MSISDN, REF_ID

CODE = Pattern(re.compile(r"[0-9]{6,10}"), "must be 6 to 10 digits")


@dataclass(frozen=True, slots=True)
class SignInCode(WireMessage):
    """A one-time code for the consent page, sent to ``msisdn`` of ``contract``."""

    contract: str
    msisdn: str
    code: str
    expires_at: int  # ms since the epoch
    ts: int
    text: str  # the message as a person reads it

    wire = WireTable(
        WireField("contract", REF_ID), WireField("msisdn", MSISDN), WireField("code", CODE),
        WireField("expires_at", UInt()), WireField("ts", UInt()),
        WireField("text", Text(160)), rule="sign-in-code")
