"""What the eIM does with what comes back from an IPA: eUICC package results (checked
against CERT.EUICC), IpaEuiccData (certificates, notifications, results), download trigger
results, and notifications. Everything received is kept as an event; the answer is the
sequence numbers the eUICC may forget (EimAcknowledgements, SGP.32 2.11.1.3)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from lpa_emulator.eim import reports
from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError
from mps_esim import sgp22, tlv
from mps_esim.crypto.errors import SignatureError
from mps_esim.sgp22.rsp import ProfileInstallationResult
from mps_esim.sgp32 import es10 as sgp32_es10
from mps_esim.sgp32 import esipa
from mps_esim.sgp32.result import EuiccPackageResult

if TYPE_CHECKING:
    from lpa_emulator.eim.service import Eim
    from lpa_emulator.eim.store import Package

log = logging.getLogger(__name__)


def _malformed(what: str, exc: Exception) -> Es9StatusError:
    return Es9StatusError(st.MALFORMED, f"{what} is not valid DER: {exc}")


def receive(eim: Eim, eid: str, kind: str, der: bytes, notes: list[bytes]) -> list[int]:
    """Take one provideEimPackageResult; the acknowledged sequence numbers."""
    acks = [n for n in (notification(eim, eid, note) for note in notes) if n is not None]
    if kind == "euiccPackageResult":
        seq = package_result(eim, eid, der)
        return acks + ([] if seq is None else [seq])
    if kind == "profileDownloadTriggerResult":
        return acks + download_result(eim, eid, der)
    return acks + ipa_euicc_data(eim, eid, der)


def package_result(eim: Eim, eid: str, der: bytes) -> int | None:
    """Record an EuiccPackageResult; its seqNumber when it is authentic."""
    try:
        result = EuiccPackageResult.decode(der)
    except tlv.TlvError as exc:
        raise _malformed("euiccPackageResult", exc) from exc
    package = eim.store.sent_package(eid, result.transaction_id)
    detail: dict[str, Any] = {"result": result.kind, "counter": result.counter,
                              "error": result.error_name,
                              "operations": [[r.kind, r.name] for r in result.results]}
    key = eim.euicc_key(eid)
    verified = False
    if result.kind != "unsigned" and key is not None:
        euicc = eim.store.euicc(eid)
        try:
            result.verify(key, euicc.association_token if euicc else None)
            verified = True
        except SignatureError:
            detail["error"] = "the eUICC's signature does not verify"
    detail["verified"] = verified
    ok = verified and result.kind == "result" and all(
        r.code in (None, 0) for r in result.results)
    if package is not None:
        if verified:
            detail["reports"] = _report(eim, eid, package, result, der)
        eim.store.finish(package.id, ok=ok, result=detail)
    eim.store.record(eid, "euiccPackageResult", {"package": package and package.id, **detail})
    log.info("eUICC package result from %s: %s", eid, detail)
    return result.seq if verified and result.seq is not None else None


def _report(eim: Eim, eid: str, package: Package, result: EuiccPackageResult,
            der: bytes) -> list[int]:
    """Queue the registry's reports of what the eUICC did, once per package (a result
    that arrives again finds its package finished)."""
    if package.state != "sent":
        return []
    changes = reports.profile_changes(eim.eim_id, eid, package, result, der)
    return reports.queue(eim.store, changes, eim.on_report)


def download_result(eim: Eim, eid: str, der: bytes) -> list[int]:
    """Record a ProfileDownloadTriggerResult (the installed ICCID, or why not)."""
    try:
        result = esipa.DownloadTriggerResult.decode(der)
        pir = (None if result.installation_result is None
               else ProfileInstallationResult.decode(result.installation_result).data)
    except tlv.TlvError as exc:
        raise _malformed("profileDownloadTriggerResult", exc) from exc
    package = eim.store.sent_package(eid, result.transaction_id)
    detail: dict[str, Any] = {"iccid": None if pir is None else pir.notification.iccid,
                              "installed": pir is not None and hasattr(pir.result, "aid"),
                              "error": result.error_reason}
    if package is not None:
        eim.store.finish(package.id, ok=bool(detail["installed"]), result=detail)
    eim.store.record(eid, "download", {"package": package and package.id, **detail})
    log.info("download on %s: %s", eid, detail)
    return []


def ipa_euicc_data(eim: Eim, eid: str, der: bytes) -> list[int]:
    """Record an IpaEuiccDataResponse: keep the certificates (when CERT.EUICC names this
    EID and CERT.EUM issued it), take its notifications and package results."""
    try:
        members = sgp32_es10.decode_ipa_euicc_data_response(der)
    except tlv.TlvError as exc:
        raise _malformed("ipaEuiccDataResponse", exc) from exc
    if isinstance(members, int):
        eim.store.record(eid, "ipaEuiccDataError", {"code": members})
        return []
    txid = members.get(sgp32_es10.DATA_TRANSACTION_ID)
    package = eim.store.sent_package(eid, None if txid is None else txid.value)
    detail = {"certificates": _certificates(eim, eid, members)}
    acks: list[int] = []
    handlers: dict[int, Callable[[Eim, str, bytes], int | None]] = {
        sgp32_es10.DATA_NOTIFICATIONS: notification,
        sgp32_es10.DATA_PACKAGE_RESULTS: package_result}
    for tag, handle in handlers.items():
        if tag in members:
            acks += [s for s in (handle(eim, eid, i.encode()) for i in members[tag].children())
                     if s is not None]
    if package is not None:
        eim.store.finish(package.id, ok=True, result=detail)
    eim.store.record(eid, "ipaEuiccData", detail)
    return acks


def _certificates(eim: Eim, eid: str, members: dict[int, tlv.Tlv]) -> bool:
    eum_item = members.get(sgp32_es10.DATA_EUM_CERTIFICATE)
    euicc_item = members.get(sgp32_es10.DATA_EUICC_CERTIFICATE)
    if eum_item is None or euicc_item is None:
        return False
    eum_der, euicc_der = (tlv.encode(0x30, i.value) for i in (eum_item, euicc_item))
    try:
        eum = x509.load_der_x509_certificate(eum_der)
        cert = x509.load_der_x509_certificate(euicc_der)
        cert.verify_directly_issued_by(eum)
        names = [a.value for a in cert.subject.get_attributes_for_oid(
            x509.NameOID.SERIAL_NUMBER)]
    except (ValueError, TypeError, InvalidSignature) as exc:
        log.warning("certificates of %s refused: %s", eid, exc)
        return False
    if names != [eid]:
        log.warning("CERT.EUICC names %s, not %s", names, eid)
        return False
    eim.store.set_certificates(eid, euicc_der, eum_der)
    return True


def notification(eim: Eim, eid: str | None, der: bytes) -> int | None:
    """Record a PendingNotification; its sequence number."""
    try:
        metadata = sgp22.pending_notification_metadata(tlv.decode_one(der))
    except tlv.TlvError as exc:
        raise _malformed("pendingNotification", exc) from exc
    eim.store.record(eid, "notification", {"seq": metadata.seq, "operation":
                                           metadata.operation, "iccid": metadata.iccid})
    return metadata.seq
