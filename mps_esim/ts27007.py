"""3GPP TS 27.007 error codes and texts, shared by the agent's modem driver (which reads
them) and the modem emulator (which gives them), so both agree on every code."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

CME_TEXTS: Mapping[int, str] = MappingProxyType({
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    50: "incorrect parameters",
    100: "unknown",
})
"""27.007 9.2.1 mobile termination error codes and their AT+CMEE=2 texts."""

# 27.007 9.2.2: the packet-domain errors the vendors' manuals list beside 9.2.1's.
PACKET_DOMAIN_CME_TEXTS: Mapping[int, str] = MappingProxyType({
    103: "Illegal MS",
    106: "Illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "Location area not allowed",
    113: "Roaming not allowed in this location area",
    132: "service option not supported",
    133: "requested service option not subscribed",
    134: "service option temporarily out of order",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
})

CME_OPERATION_NOT_ALLOWED = 3
CME_OPERATION_NOT_SUPPORTED = 4
CME_SIM_NOT_INSERTED = 10
CME_SIM_FAILURE = 13
CME_INVALID_INDEX = 21
CME_NOT_FOUND = 22
CME_INCORRECT_PARAMETERS = 50
