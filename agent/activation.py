"""Activation at first boot: make sure the eUICC has an operational profile enabled, and
download one (SGP.22, ES9+ over HTTPS) when it has none.

Where the profile comes from, in order: an activation code given on the command line or in
the environment (``--activation-code`` / ``MPS_ACTIVATION_CODE``), the one in the firmware
profile's ``[activation]`` table, the eIM the eUICC is associated with (SGP.32; or the one
``[activation] eim`` names), which orders the download, or, when that table says
``use_default_smdp``, the eUICC's default SM-DP+ address (an order waiting for the EID
there). With none of these (or no default SM-DP+ address on the eUICC), the SM-DS is
asked (ES11, SGP.22 3.6.3): the eUICC's root SM-DS address (ES10a
GetEuiccConfiguredAddresses, rootDsAddress), and the first event it holds for the EID
names the SM-DP+ and the matching id.

An operational profile that is installed but not enabled (a first boot that stopped between
installation and enabling) is enabled instead of downloading another one. After a
download the profile is enabled and the pending notifications (installation, enabling) are
sent to the SM-DP+; one that cannot be sent stays on the eUICC for later.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.card import CardLink
from agent.errors import AgentError, StatusWordError
from mps_common import logs
from mps_common.record import record
from mps_esim.lpa.activation import ActivationCode, ActivationCodeError, parse_activation_code
from mps_esim.lpa.es10 import Es10Client, Es10Error

if TYPE_CHECKING:
    from firmware_profiles import ActivationConfig
    from mps_esim.lpa.download import DownloadResult

log = logs.get(__name__)

SW_FILE_NOT_FOUND = 0x6A82


class ActivationError(AgentError):
    """The device could not get an operational profile. ``stage`` names the download step
    that failed (``None`` when no download was tried)."""

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage


@record
class ActivationPlan:
    """Where a missing profile is downloaded from (see the module documentation)."""

    code: ActivationCode | None = None
    use_default_smdp: bool = False
    confirmation_code: str | None = None
    ca_file: Path | None = None
    block_size: int | None = None
    """STORE DATA block size; None: the largest the card link carries."""
    imei: str | None = None
    """The modem's IMEI: its TAC goes into the DeviceInfo the eUICC signs."""
    capabilities: tuple[str, ...] = ()
    """The firmware profile's capabilities: the radio ones make DeviceCapabilities."""
    eim: str | None = None
    """The eIM to ask (SGP.32) when the eUICC names none (``[activation] eim``)."""

    @classmethod
    def from_config(cls, config: ActivationConfig | None, *, code: str | None = None,
                    ca_file: str | os.PathLike[str] | None = None) -> ActivationPlan:
        """The firmware profile's ``[activation]`` with a code given elsewhere winning."""
        parsed = None
        if code:
            try:
                parsed = parse_activation_code(code)
            except ActivationCodeError as exc:
                raise ActivationError(str(exc)) from exc
        elif config is not None:
            parsed = config.code
        return cls(code=parsed,
                   use_default_smdp=parsed is None and config is not None
                   and config.use_default_smdp,
                   confirmation_code=config.confirmation_code if config else None,
                   ca_file=Path(ca_file) if ca_file else None,
                   eim=config.eim if config else None)


@record
class ProfileOutcome:
    """What :func:`ensure_operational_profile` found or did."""

    iccid: str | None
    action: str
    """``present`` (already enabled), ``enabled`` (installed one enabled), ``downloaded``
    (downloaded and enabled) or ``no-euicc`` (a plain UICC with its profile)."""
    download: DownloadResult | None = None
    apdus: int = 0


def ensure_operational_profile(link: CardLink, plan: ActivationPlan, *,
                               on_download: Callable[[], None] | None = None
                               ) -> ProfileOutcome:
    """Make sure an operational profile is enabled on the card behind ``link``.

    ``on_download`` is called just before a download starts. Raises
    :class:`ActivationError` (its ``stage`` set for a failed download) or a
    :class:`~agent.errors.CardError` when the card cannot be talked to.
    """
    try:
        isdr = link.open_isdr()
    except StatusWordError as exc:
        if exc.sw != SW_FILE_NOT_FOUND:
            raise
        # No ISD-R: a plain UICC. Its one profile is all there is.
        try:
            return ProfileOutcome(link.read_iccid(), "no-euicc")
        except StatusWordError as exc2:
            raise ActivationError("the card has no ISD-R and no readable EF.ICCID: "
                                  "neither an eUICC nor a SIM with a profile") from exc2
    with isdr:
        client = Es10Client(isdr, block_size=plan.block_size or link.store_data_block)
        try:
            return _ensure(link, client, plan, on_download)
        except Es10Error as exc:
            raise ActivationError(f"the eUICC refused: {exc}") from exc


def _ensure(link: CardLink, client: Es10Client, plan: ActivationPlan,
            on_download: Callable[[], None] | None) -> ProfileOutcome:
    operational = [p for p in client.list_profiles() if p.profile_class == "operational"]
    enabled = next((p for p in operational if p.state == "enabled"), None)
    if enabled is not None:
        return ProfileOutcome(enabled.iccid, "present")
    if operational and operational[0].iccid is not None:
        iccid = operational[0].iccid
        log.info("operational profile %s is installed but disabled: enabling it", iccid)
        client.enable_profile(iccid=iccid)
        return ProfileOutcome(iccid, "enabled")
    if plan.code is None:
        # Zero-touch (SGP.32): the eIM the eUICC is associated with orders the profile.
        from agent.ipa import eim_address, first_boot_via_eim

        eim = eim_address(client, plan.eim)
        if eim is not None:
            if on_download is not None:
                on_download()
            return first_boot_via_eim(link, client, plan, eim)
    source = _source(client, plan)
    # The download machinery (ES9+ over TLS, the SGP.22 download codec) is loaded only
    # when a download happens: every later boot of the device goes without it.
    from agent.download import discover_event, download_and_enable

    address, matching_id = source or discover_event(client, plan, _root_ds(client))
    if on_download is not None:
        on_download()
    return download_and_enable(link, client, plan, address, matching_id)


def _root_ds(client: Es10Client) -> str:
    root = client.get_configured_addresses().root_ds_address
    if not root:
        raise ActivationError("no operational profile is enabled, no activation code "
                              "(--activation-code, MPS_ACTIVATION_CODE, or [activation] in "
                              "the firmware profile) or default SM-DP+, and the eUICC names "
                              "no root SM-DS")
    return root


def _source(client: Es10Client, plan: ActivationPlan) -> tuple[str, str | None] | None:
    """The SM-DP+ and matching id to download from; None: ask the SM-DS."""
    if plan.code is not None:
        if plan.code.cc_required and not plan.confirmation_code:
            raise ActivationError("the activation code asks for a confirmation code, and "
                                  "the firmware profile has none")
        return plan.code.address, plan.code.matching_id
    if plan.use_default_smdp:
        default = client.get_configured_addresses().default_dp_address
        if default:
            return default, None
        log.info("the eUICC has no default SM-DP+ address: asking the SM-DS")
    return None


__all__ = ["ActivationError", "ActivationPlan", "ProfileOutcome",
           "ensure_operational_profile"]
