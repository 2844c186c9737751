"""Running the operations of an eUICC package (SGP.32 5.9.1 and 2.11.1.1) on a working
copy of the card's state.

The PSMOs enable, disable and delete do what ES10c's EnableProfile, DisableProfile and
DeleteProfile do (policy rules, notifications, the file system following the enabled
profile), so they run the same handlers of :mod:`~lpa_emulator.euicc.es10` against a
:class:`Staging` context: their commits replace the working copy, not the card's state.
The caller commits the working copy once, with the counter and the result, so a package
leaves all of its changes or none.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from lpa_emulator.euicc import es10
from lpa_emulator.euicc.download import DownloadSession
from lpa_emulator.euicc.eim_config import MAX_EIMS, RollbackGrant
from lpa_emulator.euicc.state import CardState
from mps_esim import sgp22, tlv
from mps_esim.sgp32.eim import MAX_COUNTER, EimConfig, EimConfigError
from mps_esim.sgp32.package import Operation
from mps_esim.sgp32.result import OperationResult

log = logging.getLogger(__name__)


class Staging:
    """An :class:`~lpa_emulator.euicc.es10.Es10Context` whose commits stay in memory."""

    def __init__(self, state: CardState, session: DownloadSession) -> None:
        self._state = state
        self._session = session

    @property
    def state(self) -> CardState:
        return self._state

    @property
    def session(self) -> DownloadSession:
        return self._session

    def commit(self, new_state: CardState) -> None:
        new_state.check()
        self._state = new_state


def _profile_command(op: Operation) -> tuple[tlv.Tlv, es10.Es10Handler]:
    ident = tlv.encode(sgp22.TAG_ICCID, sgp22.encode_iccid(op.iccid or ""))
    if op.kind == "delete":
        return tlv.Tlv(sgp22.TAG_DELETE_PROFILE, ident), es10.delete_profile
    body = tlv.encode(0xA0, ident) + tlv.encode(0x81, tlv.encode_bool(True))
    if op.kind == "enable":
        return tlv.Tlv(sgp22.TAG_ENABLE_PROFILE, body), es10.enable_profile
    return tlv.Tlv(sgp22.TAG_DISABLE_PROFILE, body), es10.disable_profile


def enable(ctx: es10.Es10Context, iccid: str) -> int:
    """Enable the profile ``iccid`` as ES10c.EnableProfile does; its result code."""
    command, handler = _profile_command(Operation("enable", iccid=iccid))
    return result_code(handler(ctx, command))


def result_code(response: bytes) -> int:
    """The result INTEGER of an SGP.22 Enable/Disable/DeleteProfile response (same codes
    in SGP.32's EnableProfileResult, DisableProfileResult, DeleteProfileResult)."""
    return tlv.decode_int(tlv.decode_one(response).children()[0].value)


def _profile_op(ctx: Staging, op: Operation) -> OperationResult:
    current = ctx.state.enabled_profile()
    if op.kind == "enable" and op.rollback and current is None:
        # Nothing to roll back to (SGP.32 3.4.1 step 3).
        return OperationResult.of(op.kind, 20)
    command, handler = _profile_command(op)
    code = result_code(handler(ctx, command))
    if code == 0 and op.kind == "enable" and op.rollback and current is not None:
        # The IPA may return to the profile enabled before (ES10b.ProfileRollback); the
        # package's identity is added when the package commits.
        grant = RollbackGrant(op.iccid or "", current.iccid)
        ctx.commit(replace(ctx.state, iot=replace(ctx.state.iot, rollback=grant)))
    return OperationResult.of(op.kind, code)


def _list_profiles(ctx: Staging, op: Operation) -> OperationResult:
    return OperationResult(op.kind, es10.list_profile_info(
        ctx, tlv.Tlv(sgp22.TAG_LIST_PROFILE_INFO, op.body)))


def _get_rat(ctx: Staging, op: Operation) -> OperationResult:
    rat = tlv.decode_one(es10.get_rat(ctx, tlv.Tlv(sgp22.TAG_GET_RAT, b""))).children()[0]
    return OperationResult(op.kind, tlv.encode(0xA6, rat.value))


def _configure_immediate_enable(ctx: Staging, op: Operation) -> OperationResult:
    """Keep the Immediate Enable configuration (SGP.32 2.11.1.1); its default SM-DP+
    address also becomes the eUICC's (as ES10a.SetDefaultDpAddress)."""
    config = op.immediate
    if config is None:
        return OperationResult.of(op.kind, 7)
    state = ctx.state
    address = state.default_dp_address if config.smdp_address is None else config.smdp_address
    ctx.commit(replace(state, default_dp_address=address,
                       iot=replace(state.iot, immediate=config)))
    return OperationResult.of(op.kind, 0)


def _check_config(ctx: Staging, eim: EimConfig) -> int:
    """0, or the addEim/updateEim result code that refuses ``eim``."""
    if eim.counter is not None and not 0 <= eim.counter <= MAX_COUNTER:
        return 6
    if eim.ci_pkid is not None and eim.ci_pkid not in ctx.state.identity.signing_pkids:
        return 3
    try:
        eim.verification_key()
    except EimConfigError:
        return 7
    return 0


def _add_eim(ctx: Staging, op: Operation) -> OperationResult:
    eim = op.eim
    if eim is None:
        return OperationResult.of(op.kind, 7)
    iot = ctx.state.iot
    code = 2 if iot.find(eim.eim_id) else _check_config(ctx, eim)
    if not code and len(iot.eims) >= MAX_EIMS:
        code = 1
    if not code and eim.association_token not in (None, -1):
        code = 5
    if code:
        return OperationResult.of(op.kind, code)
    token = None
    if eim.association_token == -1:
        token = max((e.association_token or 0 for e in iot.eims), default=0) + 1
    stored = replace(eim, counter=eim.counter or 0, association_token=token)
    ctx.commit(replace(ctx.state, iot=iot.with_eim(stored)))
    if token is None:
        return OperationResult.of(op.kind, 0)
    return OperationResult(op.kind, tlv.encode(0xA8, tlv.encode(0x84, tlv.encode_int(token))))


def _update_eim(ctx: Staging, op: Operation) -> OperationResult:
    eim = op.eim
    if eim is None:
        return OperationResult.of(op.kind, 7)
    iot = ctx.state.iot
    current = iot.find(eim.eim_id)
    if current is None:
        return OperationResult.of(op.kind, 1)
    # What the update leaves out (key, counter) stays; the association token always does.
    keep_key = eim.public_key is None and eim.certificate is None
    updated = replace(eim, association_token=current.association_token,
                      counter=current.counter if eim.counter is None else eim.counter,
                      public_key=current.public_key if keep_key else eim.public_key,
                      certificate=current.certificate if keep_key else eim.certificate)
    code = _check_config(ctx, updated)
    if code:
        return OperationResult.of(op.kind, code)
    ctx.commit(replace(ctx.state, iot=iot.with_eim(updated)))
    return OperationResult.of(op.kind, 0)


def _delete_eim(ctx: Staging, op: Operation) -> OperationResult:
    iot = ctx.state.iot
    if op.eim_id is None or iot.find(op.eim_id) is None:
        return OperationResult.of(op.kind, 1)
    remaining = iot.without_eim(op.eim_id)
    ctx.commit(replace(ctx.state, iot=remaining))
    return OperationResult.of(op.kind, 0 if remaining.eims else 2)


def _list_eims(ctx: Staging, op: Operation) -> OperationResult:
    infos = b"".join(tlv.encode(0x30, tlv.encode(0x80, e.eim_id.encode()) + (
        b"" if e.id_type is None else tlv.encode(0x82, tlv.encode_int(e.id_type))))
        for e in ctx.state.iot.eims)
    return OperationResult(op.kind, tlv.encode(0xAB, tlv.encode(0xA0, infos)))


_RUNNERS = {"enable": _profile_op, "disable": _profile_op, "delete": _profile_op,
            "listProfileInfo": _list_profiles, "getRAT": _get_rat,
            "configureImmediateEnable": _configure_immediate_enable, "addEim": _add_eim,
            "updateEim": _update_eim, "deleteEim": _delete_eim, "listEim": _list_eims}


def run(ctx: Staging, operations: tuple[Operation, ...]) -> list[OperationResult]:
    """Run ``operations`` in order on ``ctx``'s working copy; the first that fails ends
    the package (its result is the last one reported, SGP.32 5.9.1)."""
    results = []
    for op in operations:
        result = _RUNNERS[op.kind](ctx, op)
        results.append(result)
        log.info("eUICC package: %s %s -> %s", op.kind, op.iccid or op.eim_id or "",
                 result.name)
        if result.code not in (None, 0) and (op.kind, result.code) != ("deleteEim", 2):
            break
    return results
