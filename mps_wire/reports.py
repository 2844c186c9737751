"""The reports of the SM-DP+ and the eIM to the registry: installation results and
profile state changes, published on the operator topics
:data:`~mps_wire.messages.INSTALLATIONS` and :data:`~mps_wire.messages.PROFILES`. Re-exported by
:mod:`mps_wire.messages` and loaded at their first use (a device sends none of them).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mps_wire.fields import (
    Blob,
    Choice,
    Identifier,
    Text,
    UInt,
    Version,
    WireField,
    WireMessage,
    WireTable,
    optional,
)
from mps_wire.identifiers import validate_msisdn
from mps_wire.messages import EID, ICCID, IMSI


class InstallationOutcome(enum.StrEnum):
    """What the SM-DP+ reports of a profile download."""

    INSTALLED = "installed"
    FAILED = "failed"


class ProfileOutcome(enum.StrEnum):
    """What the eIM reports of a profile state change an eUICC carried out (SGP.32
    PSMOs enable, disable, delete)."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"


# --- installation results (SM-DP+ -> registry) -------------------------------------------

MAX_CERTIFICATE = 4096


@dataclass(frozen=True, slots=True)
class InstallationResult(WireMessage):
    """The SM-DP+'s report that eUICC ``eid`` installed (or failed to install) the profile
    ``iccid``, with the eUICC-signed result (``pir``, DER) and its certificate chain.

    ``seq`` numbers the SM-DP+'s reports and ``transaction`` names the download session:
    a report can arrive twice.
    """

    seq: int
    eid: str
    iccid: str
    imsi: str
    result: InstallationOutcome
    transaction: str
    matching_id: str
    smdp: str
    ts: int
    pir: bytes
    euicc_certificate: bytes
    eum_certificate: bytes
    msisdn: str | None = None
    reason: str | None = None

    wire = WireTable(
        WireField("v", Version(1, "installation report"), stored=False),
        WireField("result", Choice(InstallationOutcome)), WireField("seq", UInt()),
        WireField("eid", EID), WireField("iccid", ICCID), WireField("imsi", IMSI),
        WireField("transaction", Text()), WireField("matching_id", Text()),
        WireField("smdp", Text(max_len=255)), WireField("ts", UInt()),
        WireField("pir", Blob(MAX_CERTIFICATE)),
        WireField("euicc_certificate", Blob(MAX_CERTIFICATE)),
        WireField("eum_certificate", Blob(MAX_CERTIFICATE)),
        optional("msisdn", Identifier(validate_msisdn)), optional("reason", Text()),
        rule="installation-result", consts={"v": 1}, closed=True)


# --- profile state changes (eIM -> registry) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileChange(WireMessage):
    """The eIM's report that eUICC ``eid`` enabled, disabled or deleted the profile
    ``iccid`` on an eIM-signed eUICC package, with the eUICC-signed EuiccPackageResult
    (``epr``, DER) the eIM verified.

    ``seq`` numbers the eIM's reports and ``transaction`` names the package (hex of its
    eimTransactionId): a report can arrive twice.
    """

    seq: int
    eid: str
    iccid: str
    result: ProfileOutcome
    transaction: str
    eim: str
    ts: int
    epr: bytes

    wire = WireTable(
        WireField("v", Version(1, "profile change"), stored=False),
        WireField("result", Choice(ProfileOutcome)), WireField("seq", UInt()),
        WireField("eid", EID), WireField("iccid", ICCID),
        WireField("transaction", Text()), WireField("eim", Text()),
        WireField("ts", UInt()), WireField("epr", Blob(MAX_CERTIFICATE)),
        rule="profile-change", consts={"v": 1}, closed=True)


__all__ = ["MAX_CERTIFICATE", "InstallationOutcome", "InstallationResult", "ProfileChange",
           "ProfileOutcome"]
