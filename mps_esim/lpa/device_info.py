"""The DeviceInfo an LPA puts into ctxParams1 (SGP.22 5.7.13, 2.2.x ASN.1 ``DeviceInfo``):
the device's TAC, taken from its IMEI, and its DeviceCapabilities, taken from the
capability names a firmware profile declares.

``DeviceCapabilities`` is a SEQUENCE of optional VersionType members (three octets:
major, minor, revision of the 3GPP release supported), each at its own context tag, in
tag order. The names map to the radio access the device has: ``gsm``/``2g`` ->
gsmSupportedRelease [0], ``umts``/``3g`` -> utranSupportedRelease [1], ``lte``, ``lte-m``,
``nb-iot``, ``4g`` -> eutranEpcSupportedRelease [5], ``5g``/``nr`` -> nrEpcSupportedRelease
[8] and nr5gcSupportedRelease [9]. Other capabilities (gps, audio, sensors) have no place
in DeviceInfo.
"""

from __future__ import annotations

from collections.abc import Iterable

from mps_esim import tlv
from mps_esim.sgp22 import rsp

_GSM, _UTRAN, _EUTRAN_EPC, _NR_EPC, _NR_5GC = 0x80, 0x81, 0x85, 0x88, 0x89

_RELEASES: dict[str, tuple[tuple[int, bytes], ...]] = {
    "gsm": ((_GSM, bytes((8, 0, 0))),),
    "umts": ((_UTRAN, bytes((8, 0, 0))),),
    "lte": ((_EUTRAN_EPC, bytes((13, 0, 0))),),
    # LTE-M and NB-IoT arrived with release 13.
    "lte-m": ((_EUTRAN_EPC, bytes((13, 0, 0))),),
    "nb-iot": ((_EUTRAN_EPC, bytes((13, 0, 0))),),
    "nr": ((_NR_EPC, bytes((15, 0, 0))), (_NR_5GC, bytes((15, 0, 0)))),
}
_ALIASES = {"2g": "gsm", "3g": "umts", "4g": "lte", "5g": "nr"}

DEFAULT_CAPABILITIES = ("lte",)
"""What a device declaring no radio is taken to have."""


def tac_of(imei: str) -> bytes:
    """The Type Allocation Code (the IMEI's first 8 digits, TS 23.003 6.2) as 4 BCD octets."""
    if len(imei) < 8 or not imei[:8].isdigit():
        raise ValueError(f"{imei!r} does not start with an 8-digit TAC")
    return bytes.fromhex(imei[:8])


def capabilities_of(names: Iterable[str]) -> bytes:
    """The members of DeviceCapabilities for the capability ``names`` (unknown ones skipped),
    in tag order; the highest release per member wins."""
    members: dict[int, bytes] = {}
    for name in names:
        for tag, release in _RELEASES.get(_ALIASES.get(name, name), ()):
            members[tag] = max(members.get(tag, release), release)
    if not members:
        return capabilities_of(DEFAULT_CAPABILITIES)
    return b"".join(tlv.encode(tag, members[tag]) for tag in sorted(members))


def device_info(imei: str, capabilities: Iterable[str] = ()) -> rsp.DeviceInfo:
    """DeviceInfo of a device with ``imei`` and the firmware profile's ``capabilities``."""
    return rsp.DeviceInfo(tac=tac_of(imei), capabilities=capabilities_of(capabilities))
