"""The SGP.32 ES10b functions as the IPA calls them, on an :class:`Es10Client`.

Each function sends one command (STORE DATA segmentation by the client) and decodes the
answer; a refusal the eUICC reports as a result code raises
:class:`~mps_esim.lpa.es10.Es10ResultError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from mps_esim import sgp22, tlv
from mps_esim.lpa.es10 import Es10Client, Es10Error, Es10ResultError
from mps_esim.sgp22 import der
from mps_esim.sgp32 import es10 as sgp32_es10
from mps_esim.sgp32 import immediate
from mps_esim.sgp32.eim import EimConfig

if TYPE_CHECKING:
    from mps_esim.sgp32.result import EuiccPackageResult

_T = TypeVar("_T")


def _decoded(name: str, data: bytes, decode: Callable[[bytes], _T]) -> _T:
    try:
        return decode(data)
    except tlv.TlvError as exc:
        raise Es10Error(f"malformed {name} response: {exc}") from exc


def add_initial_eim(client: Es10Client, configs: list[EimConfig]) -> list[int | None]:
    """AddInitialEim: the association token per eIM (None where none was asked for)."""
    answer = _decoded("AddInitialEim", client.command(
        sgp32_es10.add_initial_eim_request(configs)),
        sgp32_es10.decode_add_initial_eim_response)
    if isinstance(answer, int):
        raise Es10ResultError("AddInitialEim", answer, sgp32_es10.ADD_INITIAL_EIM_ERRORS)
    return answer


def get_eim_configuration(client: Es10Client, eim_id: str | None = None) -> list[EimConfig]:
    """GetEimConfigurationData: the associated eIMs (or the one named)."""
    return _decoded("GetEimConfigurationData", client.command(
        sgp32_es10.get_eim_configuration_request(eim_id)),
        sgp32_es10.decode_get_eim_configuration_response)


def load_euicc_package(client: Es10Client, package: bytes) -> tuple[bytes, EuiccPackageResult]:
    """LoadEuiccPackage: the eUICC's EuiccPackageResult, as DER (for the eIM, which checks
    its signature over these exact bytes) and decoded."""
    # The result codec is loaded with the first package: a download order needs none.
    from mps_esim.sgp32.result import EuiccPackageResult

    raw = client.command(package)
    return raw, _decoded("LoadEuiccPackage", raw, EuiccPackageResult.decode)


@dataclass(frozen=True)
class Certificates:
    """CERT.EUM and CERT.EUICC, DER."""

    eum: bytes
    euicc: bytes


def get_certs(client: Es10Client) -> Certificates:
    """GetCerts: the certificates the eIM verifies package results with."""
    raw = client.command(tlv.encode(sgp32_es10.TAG_GET_CERTS, b""))
    try:
        choice = der.children(der.expect(raw, sgp32_es10.TAG_GET_CERTS, "GetCerts"), "GetCerts")
        if len(choice) != 1 or choice[0].tag != 0xA0:
            raise Es10Error("GetCerts refused: invalidCiPKId")
        m = der.Members(choice[0], "GetCerts")
        eum = m.required(0xA5, "eumCertificate")
        euicc = m.required(0xA6, "euiccCertificate")
    except tlv.TlvError as exc:
        raise Es10Error(f"malformed GetCerts response: {exc}") from exc
    return Certificates(tlv.encode(0x30, eum.value), tlv.encode(0x30, euicc.value))


def package_results(client: Es10Client) -> list[bytes]:
    """The eUICC package results not yet delivered (RetrieveNotificationsList with the
    euiccPackageResults criterion), each as its DER."""
    raw = client.command(tlv.encode(sgp22.TAG_RETRIEVE_NOTIFICATIONS,
                                    tlv.encode(0xA0, tlv.encode(0x82, b""))))
    try:
        item = der.expect(raw, sgp22.TAG_RETRIEVE_NOTIFICATIONS, "RetrieveNotificationsList")
        choice = der.children(item, "RetrieveNotificationsList")
        if len(choice) != 1 or choice[0].tag != 0xA2:
            raise Es10Error("RetrieveNotificationsList did not answer package results")
        return [r.encode() for r in der.children(choice[0], "euiccPackageResultList")]
    except tlv.TlvError as exc:
        raise Es10Error(f"malformed RetrieveNotificationsList response: {exc}") from exc


def profile_rollback(client: Es10Client, *, refresh: bool = False) -> bytes:
    """ProfileRollback (SGP.32 5.9.16): back to the profile enabled before an enable PSMO
    that granted rollback; the new signed EuiccPackageResult for the eIM, as DER."""
    code, result = _decoded("ProfileRollback", client.command(
        immediate.rollback_request(refresh)), immediate.decode_rollback_response)
    if code != immediate.ROLLBACK_OK or result is None:
        raise Es10ResultError("ProfileRollback", code or immediate.ROLLBACK_COMMAND_ERROR,
                              immediate.ROLLBACK_CODES)
    return result
