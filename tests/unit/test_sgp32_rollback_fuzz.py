"""The new SGP.32 edges under hostile input: ProfileRollback commands to a card holding a
rollback grant (SGP.32 5.9.16), the state file's Immediate Enable and rollback members
(JSON), and the eIM operator's operation data (JSON): each either works or fails with its
own clear error, and nothing changes on a refusal."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpa_emulator.eim import service
from lpa_emulator.eim.store import EimStoreError
from lpa_emulator.euicc import CardState, CardStatus, EuiccCard, ProfileRecord, es10, iot
from lpa_emulator.euicc.eim_config import IotState, RollbackGrant
from mps_esim import tlv
from mps_esim.sgp32.immediate import ImmediateEnable, decode_rollback_response
from mps_wire.identifiers import IdentifierError, make_eid, make_iccid
from tests.unit.test_sgp32_fuzz import EIM

EID = make_eid("890490320000000000000000000556")
ICCID_A = make_iccid("894900000000000056")
ICCID_B = make_iccid("894900000000000057")


def _granted() -> CardState:
    state = CardState.new(eid=EID, profiles=[
        ProfileRecord(iccid=ICCID_A, imsi="262011234500056"),
        ProfileRecord(iccid=ICCID_B, imsi="262011234500057", enabled=True,
                      isdp_aid=bytes.fromhex("A0000005591010FFFFFFFF8900001200"))])
    state.iot = replace(state.iot.with_eim(replace(EIM, counter=3)), rollback=RollbackGrant(
        ICCID_B, ICCID_A, EIM.eim_id, 3, b"\x01"))
    return state


GRANTED = _granted()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=12), inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=12) | st.sampled_from(
    [b"\x80\x01\xff", b"\x80\x01\x00", b"\x80\x01\x01", b"", b"\x80\x00"]))
def test_rollback_commands_roll_back_exactly_or_change_nothing(body: bytes) -> None:
    card = EuiccCard.from_state(GRANTED.copy())
    before = card.state.to_dict()
    try:
        answer = es10.dispatch(card, tlv.encode(0xBF58, body), iot.ISDR_HANDLERS)
    except CardStatus as exc:
        assert exc.sw == 0x6A80
        assert card.state.to_dict() == before
        return
    code, result = decode_rollback_response(answer)
    assert code == 0 and result is not None
    enabled = card.state.enabled_profile()
    assert enabled is not None and enabled.iccid == ICCID_A
    assert card.state.iot.rollback is None


@settings(max_examples=300, deadline=None)
@given(immediate=json_values, rollback=json_values)
def test_the_state_file_iot_members_load_or_name_what_is_wrong(
        immediate: Any, rollback: Any) -> None:
    data = IotState().to_dict()
    data["immediate_enable"], data["rollback"] = immediate, rollback
    try:
        loaded = IotState.from_dict(data)
    except (TypeError, ValueError):
        return
    assert loaded.immediate is None or isinstance(loaded.immediate, ImmediateEnable)
    assert IotState.from_dict(loaded.to_dict()) == loaded


@settings(max_examples=400, deadline=None)
@given(spec=st.dictionaries(st.sampled_from(
    ["kind", "iccid", "rollback", "enable", "smdp_oid", "smdp_address", "config", "eim_id"]),
    json_values | st.sampled_from(["enable", "disable", "configureImmediateEnable", "addEim",
                                   "updateEim", ICCID_A, "2.999.1", "A800"]), max_size=5))
def test_operator_operations_are_built_or_refused_clearly(spec: dict[str, Any]) -> None:
    with contextlib.suppress(EimStoreError, IdentifierError):
        op = service._operation(spec)
        assert op.encode()  # what is queued can be signed and sent
