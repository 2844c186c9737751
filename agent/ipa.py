"""The IPA in the agent (SGP.32): first boot through the eIM, and the daemon's rounds.

At first boot with no activation code, an eUICC associated with an eIM (or the eIM the
firmware profile names) asks it for work: the eIM's rounds run (its certificate request, the
download it ordered, any PSMOs) and the profile it had downloaded is enabled. The SM-DP+
receives the installation result as with any download, so the registry binds EID and ICCID
as it does today. The daemon runs the same rounds on its interval.
"""

from __future__ import annotations

import logging
import time

from agent.activation import ActivationError, ActivationPlan, ProfileOutcome
from agent.card import CardLink
from agent.download import plan_device_info
from mps_esim.ipa import card as ipa_card
from mps_esim.ipa.esipa import EsipaClient
from mps_esim.ipa.poll import PollOutcome, downloader_for, indirect, poll
from mps_esim.lpa.es9 import Es9Clients, Es9Error
from mps_esim.lpa.es10 import Es10Client, Es10Error

log = logging.getLogger(__name__)

MAX_ROUNDS = 16
"""Rounds one poll runs at most (the eIM's queue is drained within them)."""


def eim_address(client: Es10Client, configured: str | None) -> str | None:
    """The eIM to ask: the first one the eUICC is associated with that names an address,
    else ``configured``. An SGP.22-only eUICC (which refuses GetEimConfigurationData) has
    none."""
    try:
        eims = ipa_card.get_eim_configuration(client)
    except Es10Error as exc:
        log.debug("no eIM configuration on the eUICC: %s", exc)
        eims = []
    return next((e.fqdn for e in eims if e.fqdn), configured)


def run_rounds(client: Es10Client, plan: ActivationPlan, address: str) -> list[PollOutcome]:
    """Every round the eIM at ``address`` has for this eUICC."""
    eid = client.get_eid()
    via_eim = indirect(client, address)
    with EsipaClient(address, ca_file=plan.ca_file) as eim, Es9Clients(plan.ca_file) as es9:
        return poll(client, eim, eid, max_rounds=MAX_ROUNDS,
                    downloader=downloader_for(client, eim, es9.client, via_eim=via_eim,
                                              device_info=plan_device_info(plan)))


def first_boot_via_eim(link: CardLink, client: Es10Client, plan: ActivationPlan,
                       address: str) -> ProfileOutcome:
    """Run the eIM's rounds and enable the profile it had downloaded."""
    before, started = link.apdu_count, time.monotonic()
    try:
        outcomes = run_rounds(client, plan, address)
    except (Es9Error, Es10Error) as exc:
        raise ActivationError(f"the eIM {address} failed: {exc}", stage="eim") from exc
    installed = [o.detail["iccid"] for o in outcomes
                 if o.kind == "profileDownloadTriggerRequest" and o.detail.get("iccid")]
    if not installed:
        errors = [o.detail.get("error") for o in outcomes if o.detail.get("error")]
        raise ActivationError(f"the eIM {address} ordered no profile for this eUICC"
                              + (f" ({errors[0]})" if errors else ""), stage="eim")
    iccid = installed[-1]
    enabled = next((p for p in client.list_profiles() if p.state == "enabled"), None)
    if enabled is None or enabled.iccid != iccid:
        client.enable_profile(iccid=iccid)
    log.info("profile %s ordered by the eIM %s, downloaded and enabled in %.2f s", iccid,
             address, time.monotonic() - started)
    return ProfileOutcome(iccid, "downloaded", None, link.apdu_count - before)


def daemon_round(link: CardLink, plan: ActivationPlan) -> list[PollOutcome]:
    """The daemon's rounds with the eIM (none when the eUICC has no eIM)."""
    with link.open_isdr() as isdr:
        client = Es10Client(isdr, block_size=plan.block_size or link.store_data_block)
        address = eim_address(client, plan.eim)
        if address is None:
            return []
        return run_rounds(client, plan, address)


__all__ = ["daemon_round", "eim_address", "first_boot_via_eim", "run_rounds"]
