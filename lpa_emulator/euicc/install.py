"""Where a downloaded profile goes: the card storage a download session installs into."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from lpa_emulator.euicc.errors import EuiccError
from lpa_emulator.euicc.state import CardState, ProfileRecord, isdp_aid_for
from mps_esim import sgp22
from mps_esim.sgp22 import rsp
from mps_esim.sgp22.saip import ProfileContent

log = logging.getLogger(__name__)

NVM_CAPACITY = 1_500_000
"""Non-volatile memory for profiles, in bytes."""
PROFILE_FOOTPRINT = 48_000
"""What one installed profile takes of it (a typical small profile with a USIM)."""


class InstallRefused(EuiccError):
    """The card cannot take the profile (no memory, an identity it refuses); ``reason`` is
    the SGP.22 ErrorReason of the failed installation result."""

    def __init__(self, reason: rsp.ErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InstallTarget(Protocol):
    """The card storage a download's outcome is handed to."""

    def iccid_in_use(self, iccid: str) -> bool:
        """Whether a profile with ``iccid`` is installed already."""

    def next_sequence_number(self) -> int:
        """A fresh notification sequence number."""

    def install(self, profile: ProfileContent, metadata: rsp.StoreMetadata,
                result_for: Callable[[bytes], bytes]) -> None:
        """Store the profile and its pending install notification, both or neither.

        The target picks the ISD-P AID and calls ``result_for(aid)`` for the signed
        ProfileInstallationResult to keep (and to return to the LPA). It raises
        :class:`InstallRefused` to fail the installation with an SGP.22 reason.
        """

    def keep_notification(self, result: bytes) -> None:
        """Keep the signed ProfileInstallationResult of a failed installation as a pending
        notification."""


class CardStore(Protocol):
    """The card's persisted state, as an installation changes it."""

    @property
    def state(self) -> CardState: ...

    def commit(self, new_state: CardState) -> None:
        """Persist ``new_state`` and make it current."""


class CardInstall:
    """The card's state as the download session's :class:`InstallTarget`: the profile and
    its installation result go into one commit."""

    def __init__(self, ctx: CardStore) -> None:
        self._ctx = ctx
        self._state: CardState | None = None

    @property
    def _copy(self) -> CardState:
        if self._state is None:
            self._state = self._ctx.state.copy()
        return self._state

    def iccid_in_use(self, iccid: str) -> bool:
        return self._ctx.state.find_profile(iccid=iccid) is not None

    def next_sequence_number(self) -> int:
        return self._copy.reserve_seq()

    def install(self, profile: ProfileContent, metadata: rsp.StoreMetadata,
                result_for: Callable[[bytes], bytes]) -> None:
        state = self._copy
        if NVM_CAPACITY - (len(state.profiles) + 1) * PROFILE_FOOTPRINT < 0:
            raise InstallRefused(rsp.ErrorReason.INSUFFICIENT_MEMORY,
                                 f"no room for another profile ({len(state.profiles)} "
                                 "installed)")
        used = {p.isdp_aid for p in state.profiles}
        slot = next(i for i in range(len(state.profiles) + 1)
                    if isdp_aid_for(i) not in used)
        configs = metadata.notifications
        address = configs[0].address if configs else None
        notify = tuple(op for c in configs if c.address == address for op in c.operations)
        try:
            record = ProfileRecord(
                iccid=profile.iccid, imsi=profile.imsi, msisdn=profile.msisdn,
                isdp_aid=isdp_aid_for(slot), name=metadata.profile_name or "profile",
                spn=metadata.service_provider, profile_class=metadata.profile_class,
                usim_aid=profile.usim_aid, mnc_length=profile.mnc_length,
                smdp_address=address, notify=notify, ki=profile.ki, opc=profile.opc)
        except ValueError as exc:
            raise InstallRefused(rsp.ErrorReason.PE_PROCESSING_ERROR,
                                 f"the profile cannot be kept: {exc}") from exc
        result = result_for(record.isdp_aid)
        state.profiles.append(record)
        state.add_installation_result(_result_metadata(result), result)
        immediate = state.iot.immediate
        if immediate is not None and immediate.applies_to(
                rsp.ProfileInstallationResult.decode(result).data.smdp_oid):
            _enable_now(state, record)
        self._ctx.commit(state)
        log.info("profile %s installed in ISD-P %s", record.iccid, record.isdp_aid.hex().upper())

    def keep_notification(self, result: bytes) -> None:
        state = self._copy
        state.add_installation_result(_result_metadata(result), result)
        self._ctx.commit(state)


def _enable_now(state: CardState, record: ProfileRecord) -> None:
    """Immediate Profile Enabling (SGP.32 2.11.1.1 configureImmediateEnable): enable the
    profile just installed, as EnableProfile would (the enabled one is disabled unless its
    policy forbids it; each change makes its notification)."""
    current = state.enabled_profile()
    if current is not None and "ppr1" in current.ppr:
        log.info("immediate enabling of %s not done: %s carries PPR1", record.iccid,
                 current.iccid)
        return
    for i, profile in enumerate(state.profiles):
        if profile.enabled:
            state.profiles[i] = replace(profile, enabled=False)
            state.add_notification("disable", profile)
        elif profile.iccid == record.iccid:
            state.profiles[i] = replace(profile, enabled=True)
    state.add_notification("enable", record)
    log.info("profile %s enabled on installation (Immediate Enable)", record.iccid)


def _result_metadata(result: bytes) -> sgp22.NotificationMetadata:
    return rsp.ProfileInstallationResult.decode(result).data.notification
