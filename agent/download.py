"""Downloading a profile at first boot: ES9+ to the SM-DP+, ES10b to the eUICC, then
enabling the profile and sending the SM-DP+ its notifications.

Kept apart from :mod:`agent.activation` so a device whose profile is already there never
loads the download machinery."""

from __future__ import annotations

import time

from agent.activation import ActivationError, ActivationPlan, ProfileOutcome
from agent.card import CardLink
from agent.errors import CardError
from mps_common import logs
from mps_esim.lpa.device_info import device_info
from mps_esim.lpa.download import (
    DownloadError,
    Es10bOverStoreData,
    ProfileDownloader,
    process_notifications,
)
from mps_esim.lpa.es9 import Es9Clients, Es9Error, tls_context
from mps_esim.lpa.es10 import Es10Client, Es10Error
from mps_esim.sgp22 import rsp

log = logs.get(__name__)


def download_and_enable(link: CardLink, client: Es10Client, plan: ActivationPlan,
                        address: str, matching_id: str | None) -> ProfileOutcome:
    """Download the profile ``address`` holds for ``matching_id`` (or for this EID), enable
    it and send the SM-DP+ its notifications. Raises ActivationError naming the stage."""
    before = link.apdu_count
    started = time.monotonic()
    with Es9Clients(plan.ca_file) as es9:
        card = Es10bOverStoreData(client)
        try:
            downloader = ProfileDownloader(card, es9.client, device_info=plan_device_info(plan))
            result = downloader.download(address, matching_id,
                                         confirmation_code=plan.confirmation_code)
        except DownloadError as exc:
            raise ActivationError(f"profile download from {address} failed at "
                                  f"{exc.stage.value}: {exc}", stage=exc.stage.value) from exc
        client.enable_profile(iccid=result.iccid)
        _send_notifications(card, es9, address)
    log.info("profile %s downloaded from %s and enabled in %.2f s (%d APDUs)", result.iccid,
             address, time.monotonic() - started, link.apdu_count - before)
    return ProfileOutcome(result.iccid, "downloaded", result, link.apdu_count - before)


def plan_device_info(plan: ActivationPlan) -> rsp.DeviceInfo | None:
    """The device's own DeviceInfo when its IMEI is known (else the LPA's default)."""
    if plan.imei is None:
        return None
    return device_info(plan.imei, plan.capabilities)


def discover_event(client: Es10Client, plan: ActivationPlan, smds: str) -> tuple[str, str]:
    """The SM-DP+ and matching id of the first event the SM-DS ``smds`` holds for this
    eUICC (ES11, SGP.22 3.6.3); ActivationError when there is none or the SM-DS fails."""
    from mps_esim.lpa.es11 import Es11Client  # discovery only: most boots never load it

    with Es11Client(smds, context=tls_context(plan.ca_file)) as es11:
        try:
            events = ProfileDownloader(Es10bOverStoreData(client), Es9Clients().client,
                                       device_info=plan_device_info(plan)).discover(es11, smds)
        except DownloadError as exc:
            raise ActivationError(f"no activation code or default SM-DP+, and the SM-DS "
                                  f"{smds} failed at {exc.stage.value}: {exc}") from exc
    if not events:
        raise ActivationError(f"no activation code or default SM-DP+, and the SM-DS {smds} "
                              "holds no event for this eUICC")
    log.info("SM-DS %s: event %s at %s", smds, events[0].event_id, events[0].rsp_server_address)
    return events[0].rsp_server_address, events[0].event_id


def _send_notifications(card: Es10bOverStoreData, es9: Es9Clients, address: str) -> None:
    """The notifications for the SM-DP+ just used; others wait for a later run (an SM-DP+
    that does not answer must not hold first boot up)."""
    try:
        outcomes = process_notifications(card, es9.client, addresses={address})
    except (Es9Error, DownloadError, CardError, Es10Error) as exc:
        log.warning("pending notifications stay on the eUICC: %s", exc)
        return
    for o in outcomes:
        if not o.sent:
            log.warning("%s notification %d for %s stays on the eUICC: %s", o.operation,
                        o.seq_number, o.address, o.error)


__all__ = ["Es9Clients", "discover_event", "download_and_enable", "plan_device_info"]
