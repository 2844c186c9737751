"""The eUICC packages of SGP.32 on the card: LoadEuiccPackage (``BF51``) and
ProfileRollback (``BF58``), which :mod:`lpa_emulator.euicc.iot` hands over to.

A package is checked in this order: the eIM is associated, its signature over the package
(and association token), the EID, and the counter (above the last one accepted, at most
:data:`~mps_esim.sgp32.eim.MAX_COUNTER`). An unknown eIM or a bad signature gets an
unsigned error, a wrong EID or counter a signed one; none of them changes anything. An
accepted package runs its operations, raises the eIM's counter and keeps the signed result
for the eIM, all in one commit.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from lpa_emulator.euicc import es10, psmo
from lpa_emulator.euicc.state import CardState
from mps_esim import tlv
from mps_esim.crypto.errors import SignatureError
from mps_esim.sgp32 import immediate
from mps_esim.sgp32.eim import MAX_COUNTER, EimConfig, EimConfigError
from mps_esim.sgp32.package import (
    COUNTER_OUT_OF_RANGE,
    INVALID_EID,
    MAX_OPERATIONS,
    REPLAY_ERROR,
    UNDEFINED_ERROR,
    EuiccPackageRequest,
    decode_eim_id,
)
from mps_esim.sgp32.result import (
    EuiccPackageResult,
    OperationResult,
    signed_error,
    signed_result,
)

log = logging.getLogger(__name__)


def _unsigned(eim_id: str | None, txid: bytes | None, token: int | None = None) -> bytes:
    return EuiccPackageResult("unsigned", eim_id or "?", transaction_id=txid,
                              association_token=token, error_code=UNDEFINED_ERROR).encode()


def _refusal(state: CardState, request: EuiccPackageRequest, eim: EimConfig) -> int:
    """0, or the EuiccPackageErrorCode that refuses an authentic package."""
    signed = request.signed
    if signed.eid != state.eid:
        return INVALID_EID
    if signed.counter > MAX_COUNTER:
        return COUNTER_OUT_OF_RANGE
    if signed.counter <= (eim.counter or 0):
        return REPLAY_ERROR
    if len(signed.operations) > MAX_OPERATIONS:
        return 15
    return 0


def load_euicc_package(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """LoadEuiccPackage: verify the eIM's package and run it, or refuse it unchanged."""
    try:
        request = EuiccPackageRequest.decode(command)
    except tlv.TlvError as exc:
        eim_id, txid = decode_eim_id(command)
        if eim_id is None:
            raise
        log.info("eUICC package refused: %s", exc)
        return _unsigned(eim_id, txid)
    signed, state = request.signed, ctx.state
    eim = state.iot.find(signed.eim_id)
    try:
        if eim is None:
            raise SignatureError(f"eIM {signed.eim_id!r} is not associated")
        request.verify(eim.verification_key(), eim.association_token)
    except (SignatureError, EimConfigError) as exc:
        log.warning("eUICC package refused: %s", exc)
        return _unsigned(signed.eim_id, signed.transaction_id)
    code = _refusal(state, request, eim)
    if code:
        log.warning("eUICC package of %s refused: error %d (counter %d, last %s)",
                    eim.eim_id, code, signed.counter, eim.counter)
        return signed_error(state.identity.sign, eim_id=eim.eim_id, counter=signed.counter,
                            transaction_id=signed.transaction_id, code=code,
                            association_token=eim.association_token).encode()
    return _run_package(ctx, request, eim)


def _run_package(ctx: es10.Es10Context, request: EuiccPackageRequest, eim: EimConfig
                 ) -> bytes:
    signed = request.signed
    staging = psmo.Staging(ctx.state.copy(), ctx.session)
    # The counter is raised before the operations run, so an eCO updating this eIM keeps it.
    # A package that arrives ends an earlier rollback grant: the eIM reached the device.
    staging.commit(replace(staging.state, iot=replace(staging.state.iot.with_eim(
        replace(eim, counter=signed.counter)), rollback=None)))
    results = psmo.run(staging, signed.operations)
    work = staging.state
    if work.iot.rollback is not None:
        work = replace(work, iot=replace(work.iot, rollback=replace(
            work.iot.rollback, eim_id=eim.eim_id, counter=signed.counter,
            transaction_id=signed.transaction_id)))
    seq = work.reserve_seq()
    result = signed_result(work.identity.sign, eim_id=eim.eim_id, counter=signed.counter,
                           transaction_id=signed.transaction_id, seq=seq, results=results,
                           association_token=eim.association_token).encode()
    ctx.commit(replace(work, iot=work.iot.with_result(seq, result)))
    log.info("eUICC package %d of %s run: %s", signed.counter, eim.eim_id,
             ", ".join(f"{r.kind} {r.name}" for r in results))
    return result


def profile_rollback(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """ProfileRollback (SGP.32 5.9.16): return to the profile enabled before an enable PSMO
    that granted rollback, while that grant holds; the answer carries a new signed
    EuiccPackageResult (rollbackResult) for the eIM that sent the enable."""
    refresh = immediate.decode_rollback_request(command)
    state = ctx.state
    grant = state.iot.rollback
    current = state.enabled_profile()
    if (grant is None or current is None or current.iccid != grant.enabled
            or state.find_profile(iccid=grant.previous) is None):
        return immediate.rollback_response(immediate.ROLLBACK_NOT_ALLOWED)
    staging = psmo.Staging(state.copy(), ctx.session)
    if psmo.enable(staging, grant.previous) != 0:
        return immediate.rollback_response(UNDEFINED_ERROR)
    work = staging.state
    eim = work.iot.find(grant.eim_id)
    seq = work.reserve_seq()
    result = signed_result(work.identity.sign, eim_id=grant.eim_id, counter=grant.counter,
                           transaction_id=grant.transaction_id, seq=seq,
                           results=[OperationResult.of("rollback", immediate.ROLLBACK_OK)],
                           association_token=eim.association_token if eim else None).encode()
    ctx.commit(replace(work, iot=replace(work.iot.with_result(seq, result), rollback=None)))
    log.info("rolled back from %s to %s (refresh %s)", grant.enabled, grant.previous, refresh)
    return immediate.rollback_response(immediate.ROLLBACK_OK, result)


__all__ = ["load_euicc_package", "profile_rollback"]
