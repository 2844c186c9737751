"""DeviceInfo as the LPA sends it (SGP.22 5.7.13 ctxParams1, DeviceInfo and
DeviceCapabilities in the ES10b ASN.1): the TAC is the IMEI's first eight digits (3GPP TS
23.003 6.2) as four BCD octets; each radio capability is a VersionType (major, minor,
revision) at its own context tag, in tag order."""

from __future__ import annotations

import pytest

from mps_esim import tlv
from mps_esim.lpa.device_info import capabilities_of, device_info, tac_of
from mps_esim.sgp22 import rsp


def test_tac_from_the_imei() -> None:
    assert tac_of("356938035643809") == bytes.fromhex("35693803")
    with pytest.raises(ValueError, match="TAC"):
        tac_of("3569")


@pytest.mark.parametrize(("names", "expected"), [
    (["lte"], "85030D0000"),
    (["lte-m", "nb-iot", "gps"], "85030D0000"),
    (["2g", "lte", "5g"], "800308000085030D0000" "88030F0000" "89030F0000"),
    (["gps", "audio"], "85030D0000"),  # no radio named: LTE
])
def test_capabilities_from_the_firmware_profile(names: list[str], expected: str) -> None:
    assert capabilities_of(names) == bytes.fromhex(expected)


def test_device_info_round_trips_through_ctx_params1() -> None:
    info = device_info("356938035643809", ["lte-m", "umts"])
    encoded = rsp.CtxParams1(info, "MATCH").encode()
    decoded = rsp.CtxParams1.decode(tlv.decode_one(encoded))
    assert decoded.device_info.tac == bytes.fromhex("35693803")
    assert decoded.device_info.capabilities == bytes.fromhex("81030800008503" "0D0000")
    assert decoded.device_info.imei is None
