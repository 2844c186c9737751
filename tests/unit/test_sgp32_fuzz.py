"""Every new DER edge of SGP.32 under hostile input: the decoders of eIM configuration
data, eUICC packages and results, AddInitialEim / GetEimConfigurationData responses and
IpaEuiccDataRequest raise only :class:`tlv.TlvError`; valid values round-trip; and the
eUICC, given any mutation of an eIM-signed package, either refuses it (6A80 for what is
not DER, an unsigned or signed EuiccPackageResult otherwise) without changing anything.

References: SGP.32 v1.2 section 2.11.1.1 (EuiccPackageRequest, eimSignature), 2.11.2.1
(EuiccPackageResult), 2.11.1.2 (IpaEuiccDataRequest), 5.9 (ES10b.LoadEuiccPackage,
AddInitialEim, GetEimConfigurationData).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpa_emulator.euicc import CardState, CardStatus, EuiccCard, ProfileRecord, es10, iot
from mps_esim import tlv
from mps_esim.sgp32 import EimConfig, EuiccPackageRequest, EuiccPackageSigned, Operation
from mps_esim.sgp32 import es10 as sgp32_es10
from mps_esim.sgp32.eim import PROTOCOLS
from mps_esim.sgp32.immediate import (
    ImmediateEnable,
    decode_rollback_request,
    decode_rollback_response,
    rollback_request,
    rollback_response,
)
from mps_esim.sgp32.result import EuiccPackageResult
from mps_wire.identifiers import make_eid, make_iccid

EID = make_eid("890490320000000000000000000555")
ICCID = make_iccid("894900000000000055")
KEY = ec.generate_private_key(ec.SECP256R1())
EIM = EimConfig("eim.fuzz", counter=0).with_key(KEY.public_key())

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "EimConfigurationData": lambda b: EimConfig.decode(tlv.decode_one(b)),
    "EuiccPackageRequest": EuiccPackageRequest.decode,
    "EuiccPackageResult": EuiccPackageResult.decode,
    "AddInitialEimResponse": sgp32_es10.decode_add_initial_eim_response,
    "GetEimConfigurationDataResponse": sgp32_es10.decode_get_eim_configuration_response,
    "IpaEuiccDataRequest": sgp32_es10.IpaEuiccDataRequest.decode,
    "IpaEuiccDataResponse": sgp32_es10.decode_ipa_euicc_data_response,
    "configureImmediateEnable": lambda b: ImmediateEnable.decode(tlv.decode_one(b)),
    "ProfileRollbackRequest": lambda b: decode_rollback_request(tlv.decode_one(b)),
    "ProfileRollbackResponse": decode_rollback_response,
}


def _signed_package(*ops: Operation) -> bytes:
    signed = EuiccPackageSigned(EIM.eim_id, EID, 1, ops, transaction_id=b"\x01\x02")
    return EuiccPackageRequest.sign(signed, KEY).encode()


SEEDS = [
    EIM.encode(),
    _signed_package(Operation("disable", iccid=ICCID), Operation("listProfileInfo")),
    _signed_package(Operation("addEim", eim=EIM), Operation("deleteEim", eim_id="x")),
    sgp32_es10.add_initial_eim_ok([None, 7]),
    sgp32_es10.get_eim_configuration_response([EIM]),
    sgp32_es10.IpaEuiccDataRequest((0xA0, 0xBF20), transaction_id=b"\x09").encode(),
    sgp32_es10.ipa_euicc_data_error(1, b"\x01"),
    _signed_package(Operation("enable", iccid=ICCID, rollback=True), Operation(
        "configureImmediateEnable", immediate=ImmediateEnable(True, "2.999.10", "a.example"))),
    ImmediateEnable(True, "2.999.10", "smdp.example:8443").encode(),
    rollback_request(True),
    rollback_response(0, EuiccPackageResult("unsigned", "eim.fuzz", error_code=127).encode()),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with bytes flipped, cut, inserted or removed."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(("flip", "cut", "insert", "delete")))
        if action == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[pos:]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            del data[pos]
    return bytes(data)


@settings(max_examples=600, deadline=None)
@given(name=st.sampled_from(sorted(DECODERS)), data=st.one_of(mutated(), st.binary(
    max_size=64)))
def test_decoders_raise_only_tlv_errors(name: str, data: bytes) -> None:
    with contextlib.suppress(tlv.TlvError):
        DECODERS[name](data)


eim_configs = st.builds(
    EimConfig,
    eim_id=st.text(min_size=1, max_size=40),
    fqdn=st.none() | st.text(max_size=40),
    id_type=st.none() | st.integers(1, 3),
    counter=st.none() | st.integers(-(2**40), 2**40),
    association_token=st.none() | st.integers(-5, 2**31),
    protocols=st.frozensets(st.sampled_from(PROTOCOLS)),
    ci_pkid=st.none() | st.binary(min_size=1, max_size=32),
    indirect_download=st.booleans(),
).map(lambda c: c.with_key(KEY.public_key()))


@settings(max_examples=150, deadline=None)
@given(config=eim_configs)
def test_eim_configuration_round_trips(config: EimConfig) -> None:
    assert EimConfig.decode(tlv.decode_one(config.encode())) == config


operations = st.one_of(
    st.builds(Operation, kind=st.sampled_from(("enable", "disable", "delete")),
              iccid=st.just(ICCID)),
    st.builds(Operation, kind=st.just("enable"), iccid=st.just(ICCID),
              rollback=st.booleans()),
    st.builds(Operation, kind=st.just("configureImmediateEnable"), immediate=st.builds(
        ImmediateEnable, enabled=st.booleans(),
        smdp_oid=st.none() | st.lists(st.integers(0, 2**20), min_size=1, max_size=5).map(
            lambda arcs: "2.999." + ".".join(map(str, arcs))),
        smdp_address=st.none() | st.text(max_size=60))),
    st.builds(Operation, kind=st.sampled_from(("getRAT", "listProfileInfo"))),
)


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(operations, min_size=1, max_size=5), counter=st.integers(0, 2**31),
       txid=st.none() | st.binary(min_size=1, max_size=16))
def test_packages_round_trip_and_verify(ops: list[Operation], counter: int,
                                        txid: bytes | None) -> None:
    signed = EuiccPackageSigned(EIM.eim_id, EID, counter, tuple(ops), transaction_id=txid)
    request = EuiccPackageRequest.decode(EuiccPackageRequest.sign(signed, KEY).encode())
    assert request.signed == signed
    request.verify(KEY.public_key(), None)


def _fresh_state() -> CardState:
    profile = ProfileRecord(iccid=ICCID, imsi="262011234500055", enabled=True,
                            smdp_address="smdp.example.test")
    state = CardState.new(eid=EID, profiles=[profile])
    state.iot = state.iot.with_eim(EIM)
    return state


STATE = _fresh_state()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_the_card_refuses_every_altered_package_and_changes_nothing(data: bytes) -> None:
    if data in SEEDS:
        return  # not altered after all
    card = EuiccCard.from_state(STATE.copy())
    before = card.state.to_dict()
    try:
        answer = es10.dispatch(card, data, iot.ISDR_HANDLERS)
    except CardStatus as exc:
        assert exc.sw == 0x6A80
    else:
        if data[:2] == b"\xbf\x51":
            assert EuiccPackageResult.decode(answer).kind in ("unsigned", "error")
    assert card.state.to_dict() == before


@pytest.mark.parametrize("seed", [SEEDS[1], SEEDS[2]])
def test_the_unaltered_seeds_are_accepted(seed: bytes) -> None:
    card = EuiccCard.from_state(STATE.copy())
    result = EuiccPackageResult.decode(es10.dispatch(card, seed, iot.ISDR_HANDLERS))
    assert result.kind == "result"
    assert card.state.iot.find(EIM.eim_id).counter == 1  # type: ignore[union-attr]
