"""One IPA round (SGP.32 3.x, the IPA polling its eIM): ask the eIM for work, run it,
report the result, and let the eUICC forget what the eIM acknowledged.

=================================  ==============================================
the eIM hands over                 the IPA
=================================  ==============================================
euiccPackageRequest                LoadEuiccPackage on the eUICC; the signed result and
                                   the pending notifications go back (when the eIM is out
                                   of reach after an enable that granted rollback, the
                                   IPA rolls back and reports that instead)
ipaEuiccDataRequest                gathers the data asked for from the eUICC (GetCerts,
                                   notifications, package results, EUICCInfo1/2,
                                   configured addresses)
profileDownloadTriggerRequest      downloads the profile from the SM-DP+ of the activation
                                   code (SGP.22 ES9+, directly; or through the eIM when
                                   its configuration asks for indirect profile download),
                                   returns the signed ProfileInstallationResult
=================================  ==============================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mps_esim import sgp22, tlv
from mps_esim.ipa import card as ipa_card
from mps_esim.ipa.esipa import EsipaClient
from mps_esim.lpa.activation import parse_activation_code
from mps_esim.lpa.download import Es10bOverStoreData, ProfileDownloader
from mps_esim.lpa.es9 import Es9, Es9TransportError
from mps_esim.lpa.es10 import Es10Client, Es10Error
from mps_esim.sgp22 import rsp
from mps_esim.sgp32 import es10 as sgp32_es10
from mps_esim.sgp32 import esipa

log = logging.getLogger(__name__)

Downloader = Callable[[str], bytes]
"""Downloads the profile an activation code names; the signed ProfileInstallationResult
(``BF37``) as DER. Raises on failure."""


@dataclass
class PollOutcome:
    """What one round did: the kind of package (None: the eIM had nothing) and what
    happened, as data for people and scripts."""

    kind: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    acknowledged: list[int] = field(default_factory=list)


def _forget(client: Es10Client, acks: list[int]) -> None:
    for seq in acks:
        try:
            client.notification_sent(seq)
        except Es10Error as exc:
            log.info("acknowledged %d was not on the eUICC: %s", seq, exc)


def _run_package(client: Es10Client, der: bytes
                 ) -> tuple[str, bytes, list[bytes], dict[str, Any]]:
    raw, result = ipa_card.load_euicc_package(client, der)
    notes = [n.der for n in client.retrieve_notifications()]
    detail = {"result": result.kind, "error": result.error_name, "counter": result.counter,
              "operations": [[r.kind, r.name] for r in result.results]}
    return "euiccPackageResult", raw, notes, detail


def ipa_euicc_data(client: Es10Client, der: bytes) -> bytes:
    """The IpaEuiccDataResponse to an IpaEuiccDataRequest, from the eUICC's ES10 data."""
    try:
        request = sgp32_es10.IpaEuiccDataRequest.decode(der)
    except tlv.TlvError:
        return sgp32_es10.ipa_euicc_data_error(1)
    members: dict[int, bytes] = {}
    wanted = set(request.tags)
    if wanted & {sgp32_es10.DATA_EUM_CERTIFICATE, sgp32_es10.DATA_EUICC_CERTIFICATE}:
        certs = ipa_card.get_certs(client)
        members[0xA5] = tlv.encode(0xA5, tlv.decode_one(certs.eum).value)
        members[0xA6] = tlv.encode(0xA6, tlv.decode_one(certs.euicc).value)
    if sgp32_es10.DATA_NOTIFICATIONS in wanted:
        members[sgp32_es10.DATA_NOTIFICATIONS] = tlv.encode(0xA0, b"".join(
            n.der for n in client.retrieve_notifications()))
    if sgp32_es10.DATA_PACKAGE_RESULTS in wanted:
        members[sgp32_es10.DATA_PACKAGE_RESULTS] = tlv.encode(
            0xA2, b"".join(ipa_card.package_results(client)))
    if sgp32_es10.DATA_EUICC_INFO1 in wanted:
        members[sgp32_es10.DATA_EUICC_INFO1] = client.command(tlv.encode(0xBF20, b""))
    if sgp32_es10.DATA_EUICC_INFO2 in wanted:
        members[sgp32_es10.DATA_EUICC_INFO2] = client.command(tlv.encode(0xBF22, b""))
    addresses = client.get_configured_addresses()
    if sgp32_es10.DATA_DEFAULT_SMDP in wanted and addresses.default_dp_address:
        members[0x81] = tlv.encode(0x81, addresses.default_dp_address.encode())
    if sgp32_es10.DATA_ROOT_SMDS in wanted and addresses.root_ds_address:
        members[0x83] = tlv.encode(0x83, addresses.root_ds_address.encode())
    if request.transaction_id is not None:
        members[sgp32_es10.DATA_TRANSACTION_ID] = tlv.encode(0x87, request.transaction_id)
    return sgp32_es10.ipa_euicc_data_response(members)


def _download(der: bytes, downloader: Downloader | None) -> tuple[bytes, dict[str, Any]]:
    try:
        trigger = esipa.DownloadTrigger.decode(der)
    except tlv.TlvError as exc:
        log.warning("download trigger refused: %s", exc)
        return esipa.DownloadTriggerResult(None, error_reason=127).encode(), {
            "error": str(exc)}
    if downloader is None:
        return esipa.DownloadTriggerResult(trigger.transaction_id, error_reason=127).encode(), {
            "error": "this IPA cannot download profiles"}
    try:
        installed = downloader(trigger.activation_code)
    except Exception as exc:  # every failure of the download is reported to the eIM
        log.warning("download for the eIM failed: %s", exc)
        return (esipa.DownloadTriggerResult(trigger.transaction_id, error_reason=127,
                                            error_response=str(exc).encode()[:200]).encode(),
                {"error": str(exc)})
    data = tlv.decode_one(installed).find(sgp22.TAG_PROFILE_INSTALLATION_RESULT_DATA)
    note = data.find(sgp22.TAG_NOTIFICATION_METADATA) if data is not None else None
    iccid = None if note is None else sgp22.NotificationMetadata.decode(note).iccid
    return (esipa.DownloadTriggerResult(trigger.transaction_id,
                                        installation_result=installed).encode(),
            {"iccid": iccid, "activation_code": trigger.activation_code})


def _rollback_granted(der: bytes, detail: dict[str, Any]) -> bool:
    """Whether the package just run enabled a profile with its rollbackFlag."""
    # The package codec is loaded when a package came: a download order needs none.
    from mps_esim.sgp32.package import EuiccPackageRequest

    try:
        ops = EuiccPackageRequest.decode(der).signed.operations
    except tlv.TlvError:
        return False
    return (["enable", "ok"] in detail.get("operations", [])
            and any(op.kind == "enable" and op.rollback for op in ops))


def poll_once(client: Es10Client, eim: EsipaClient, eid: str, *,
              downloader: Downloader | None = None) -> PollOutcome:
    """One round with the eIM for the eUICC ``eid`` behind ``client``."""
    package = eim.get_eim_package(eid)
    if package is None:
        return PollOutcome(None)
    notes: list[bytes] = []
    if package.kind == "euiccPackageRequest":
        kind, result, notes, detail = _run_package(client, package.der)
    elif package.kind == "ipaEuiccDataRequest":
        kind, result, detail = "ipaEuiccDataResponse", ipa_euicc_data(client, package.der), {}
    else:
        kind = "profileDownloadTriggerResult"
        result, detail = _download(package.der, downloader)
    try:
        acks = eim.provide_eim_package_result(eid, kind, result, notes)
    except Es9TransportError as exc:
        if package.kind != "euiccPackageRequest" or not _rollback_granted(package.der, detail):
            raise
        # The profile just enabled gives no way to the eIM: back to the one before
        # (SGP.32 3.4.1, 5.9.16), and report the rollback through it.
        log.warning("the eIM is out of reach after the enable (%s): rolling back", exc)
        kind, result = "euiccPackageResult", ipa_card.profile_rollback(client)
        detail["rolled_back"] = True
        acks = eim.provide_eim_package_result(
            eid, kind, result, [n.der for n in client.retrieve_notifications()])
    _forget(client, acks)
    log.info("IPA round: %s -> %s, acknowledged %s", package.kind, detail, acks)
    return PollOutcome(package.kind, detail, acks)


def poll(client: Es10Client, eim: EsipaClient, eid: str, *, max_rounds: int = 16,
         downloader: Downloader | None = None) -> list[PollOutcome]:
    """Rounds until the eIM has nothing more (at most ``max_rounds``)."""
    outcomes = []
    for _ in range(max_rounds):
        outcome = poll_once(client, eim, eid, downloader=downloader)
        if outcome.kind is None:
            break
        outcomes.append(outcome)
    return outcomes


class _Recording:
    """ES10b that keeps the eUICC's ProfileInstallationResult as it passes."""

    def __init__(self, inner: Es10bOverStoreData) -> None:
        self.inner = inner
        self.installation_result: bytes | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_bound_profile_package(self, segment: bytes) -> bytes:
        answer = self.inner.load_bound_profile_package(segment)
        if answer[:2] == sgp22.TAG_PROFILE_INSTALLATION_RESULT.to_bytes(2, "big"):
            self.installation_result = answer
        return answer


def profile_downloader(client: Es10Client, es9_for: Callable[[str], Es9], *,
                       device_info: rsp.DeviceInfo | None = None) -> Downloader:
    """A :data:`Downloader` that runs the SGP.22 download (ES9+ directly to the SM-DP+ of
    the activation code, ES10b to the eUICC behind ``client``) for the device described by
    ``device_info`` (default: the LPA's generic one)."""

    def download(activation_code: str) -> bytes:
        code = parse_activation_code(activation_code)
        card = _Recording(Es10bOverStoreData(client))
        ProfileDownloader(card, es9_for, device_info=device_info).download(
            code.address, code.matching_id)
        if card.installation_result is None:
            raise Es10Error("the eUICC gave no ProfileInstallationResult")
        return card.installation_result

    return download


def indirect(client: Es10Client, eim_address: str) -> bool:
    """Whether the eUICC's configuration of the eIM at ``eim_address`` asks for indirect
    profile download (``indirectProfileDownload``, SGP.32 2.11.1.1, 3.2.3)."""
    try:
        eims = ipa_card.get_eim_configuration(client)
    except Es10Error:
        return False
    return any(e.indirect_download for e in eims if e.fqdn == eim_address)


def downloader_for(client: Es10Client, eim: EsipaClient, direct: Callable[[str], Es9], *,
                   via_eim: bool, device_info: rsp.DeviceInfo | None = None) -> Downloader:
    """The download path to take: ES9+ straight to the SM-DP+ (``direct``), or the same
    functions over ESipa to the eIM, which relays them (``via_eim``); either way with the
    device's ``device_info``."""
    return profile_downloader(client, (lambda _address: eim) if via_eim else direct,
                              device_info=device_info)
