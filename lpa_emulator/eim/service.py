"""The eIM: a fleet of eUICCs by EID, work queued per EID, and the ESipa functions the
IPAs call (SGP.32 3.x procedures, 6.3 functions).

The operator associates EIDs, queues PSMOs and eCOs, and orders downloads (a
ProfileDownloadTriggerRequest with an activation code). An IPA polling ``getEimPackage``
receives the oldest queued item: an eUICC package signed now with the eUICC's next counter,
a download trigger, or an IpaEuiccDataRequest. The eIM first asks each new eUICC for its
certificates, with which it verifies every signed package result after. Results and
notifications are kept as events; each received result and notification is acknowledged,
so the IPA lets the eUICC forget it.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lpa_emulator.eim import relay, results
from lpa_emulator.eim.store import EimStore, EimStoreError, Package
from lpa_emulator.smdp import errors as st
from lpa_emulator.smdp.errors import Es9StatusError
from lpa_emulator.smdp.fields import binary_field
from mps_esim import tlv
from mps_esim.lpa.activation import parse_activation_code
from mps_esim.sgp32 import EimConfig, EuiccPackageRequest, EuiccPackageSigned, Operation, esipa
from mps_esim.sgp32 import es10 as sgp32_es10
from mps_esim.sgp32.immediate import ImmediateEnable
from mps_wire.identifiers import IdentifierError, validate_eid, validate_iccid

log = logging.getLogger(__name__)

CERT_TAGS = (sgp32_es10.DATA_EUM_CERTIFICATE, sgp32_es10.DATA_EUICC_CERTIFICATE)
PSMO_KINDS = ("enable", "disable", "delete", "listProfileInfo", "getRAT",
              "configureImmediateEnable")
ECO_KINDS = ("addEim", "updateEim", "deleteEim", "listEim")


SERVED = ("getEimPackage", "provideEimPackageResult", "handleNotification",
          *relay.FUNCTIONS)
"""The ESipa functions this eIM serves; those of an indirect profile download only with a
relay (:mod:`lpa_emulator.eim.relay`)."""


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


class Eim:
    """The eIM over its store. :meth:`create` gives a new store its identity."""

    def __init__(self, store: EimStore, *, es9_relay: relay.Es9Relay | None = None) -> None:
        self.store = store
        self.relay = es9_relay
        eim_id, key_pem = store.setting("eim_id"), store.setting("private_key")
        if eim_id is None or key_pem is None:
            raise EimStoreError(f"{store.path} is no eIM database (run 'mps-emu eim init')")
        key = serialization.load_pem_private_key(key_pem.encode(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise EimStoreError("the eIM's key is not an elliptic curve key")
        self.eim_id = eim_id
        self.fqdn = store.setting("fqdn")
        self.address = self.fqdn or eim_id
        self.key = key
        #: Called after a report for the registry was queued (the publisher's wake-up).
        self.on_report: Callable[[], None] | None = None

    @classmethod
    def create(cls, store: EimStore, eim_id: str, fqdn: str) -> Eim:
        """Give ``store`` an identity (a new P-256 key) unless it has one; the eIM."""
        if store.setting("eim_id") is None:
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            EimConfig(eim_id)  # checks the id's size
            store.set_settings({"eim_id": eim_id, "fqdn": fqdn, "private_key": pem})
        return cls(store)

    def config(self) -> EimConfig:
        """The EimConfigurationData an eUICC is given for this eIM (AddInitialEim/addEim)."""
        return EimConfig(self.eim_id, fqdn=self.fqdn, id_type=2, counter=0,
                         protocols=frozenset({"eimRetrieveHttps"}),
                         indirect_download=self.relay is not None).with_key(
                             self.key.public_key())

    # --- the operator's side -------------------------------------------------------------

    def associate(self, eid: str, *, counter: int = 0) -> bool:
        """Add ``eid`` to the fleet (and ask it for its certificates first); False when it
        was associated already."""
        eid = validate_eid(eid)
        added = self.store.associate(eid, counter=counter)
        if added:
            self.store.queue(eid, "ipaEuiccData", {"tags": [f"{t:X}" for t in CERT_TAGS]})
        return added

    def queue_operations(self, eid: str, operations: list[dict[str, Any]]) -> int:
        """Queue one eUICC package of PSMOs or of eCOs (see :func:`_operation`)."""
        ops = [_operation(o) for o in operations]
        if not ops or len({op.eco for op in ops}) != 1:
            raise EimStoreError("a package holds one or more PSMOs, or one or more eCOs")
        return self.store.queue(validate_eid(eid), "euiccPackage", {"operations": operations})

    def order_download(self, eid: str, activation_code: str) -> int:
        """Queue a ProfileDownloadTriggerRequest carrying ``activation_code``."""
        esipa.DownloadTrigger(activation_code).encode()  # checks the size
        parse_activation_code(activation_code)  # ActivationCodeError names the bad part
        return self.store.queue(validate_eid(eid), "download",
                                {"activationCode": activation_code})

    # --- ESipa ---------------------------------------------------------------------------

    def call(self, function: str, body: Mapping[str, Any], *, client: str | None = None
             ) -> dict[str, Any] | None:
        """Run ESipa ``function``; its response body, or None for no content."""
        handlers: dict[str, Callable[[Mapping[str, Any]], dict[str, Any] | None]] = {
            "getEimPackage": self.get_eim_package,
            "provideEimPackageResult": self.provide_eim_package_result,
            "handleNotification": self.handle_notification,
        }
        if function in relay.FUNCTIONS:
            return self._relayed(function, body)
        handler = handlers.get(function)
        if handler is None:
            raise Es9StatusError(st.MALFORMED, f"ESipa function {function!r} is not served")
        try:
            return handler(body)
        except EimStoreError as exc:
            raise Es9StatusError(st.MALFORMED, str(exc)) from exc

    def _eid(self, body: Mapping[str, Any]) -> str | int:
        value = body.get("eidValue")
        if value is None:
            return 4
        try:
            eid = validate_eid(value) if isinstance(value, str) else ""
        except IdentifierError:
            eid = ""
        if not eid:
            return 3
        return eid if self.store.euicc(eid) is not None else esipa.EID_NOT_FOUND

    def get_eim_package(self, body: Mapping[str, Any]) -> dict[str, Any]:
        eid = self._eid(body)
        if isinstance(eid, int):
            return {"eimPackageError": eid}
        if body.get("notifyStateChange") is True:
            self.store.record(eid, "stateChange", {})
        package = self.store.next_queued(eid)
        if package is None:
            return {"eimPackageError": esipa.NO_PACKAGE}
        kind, der = self._build(eid, package)
        log.info("eIM package %d (%s) for %s", package.id, package.kind, eid)
        return {kind: _b64(der)}

    def _build(self, eid: str, package: Package) -> tuple[str, bytes]:
        txid = secrets.token_bytes(16)
        if package.kind == "download":
            self.store.mark_sent(package.id, txid, take_counter=False)
            trigger = esipa.DownloadTrigger(package.request["activationCode"], txid)
            return "profileDownloadTriggerRequest", trigger.encode()
        if package.kind == "ipaEuiccData":
            self.store.mark_sent(package.id, txid, take_counter=False)
            tags = tuple(int(t, 16) for t in package.request["tags"])
            data = sgp32_es10.IpaEuiccDataRequest(tags, transaction_id=txid)
            return "ipaEuiccDataRequest", data.encode()
        counter = self.store.mark_sent(package.id, txid, take_counter=True)
        euicc = self.store.euicc(eid)
        ops = tuple(_operation(o) for o in package.request["operations"])
        signed = EuiccPackageSigned(self.eim_id, eid, counter or 0, ops, transaction_id=txid)
        request = EuiccPackageRequest.sign(
            signed, self.key, association_token=euicc.association_token if euicc else None)
        return "euiccPackageRequest", request.encode()

    def provide_eim_package_result(self, body: Mapping[str, Any]) -> dict[str, Any]:
        eid = self._eid(body)
        if isinstance(eid, int):
            return {"provideEimPackageResultError": eid}
        kinds = [k for k in esipa.RESULT_KINDS if k in body]
        if len(kinds) != 1:
            raise Es9StatusError(st.MISSING_ELEMENT, "one eIM package result is expected")
        notes = body.get("notificationList", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise Es9StatusError(st.MALFORMED, "notificationList is a list of base64")
        acks = results.receive(self, eid, kinds[0], binary_field(body, kinds[0]),
                               [binary_field({"n": n}, "n") for n in notes])
        return {"eimAcknowledgements": acks}

    def handle_notification(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record a notification; with a relay, also pass it to its SM-DP+ when the relay
        serves that one (the installation result of an indirect download: the IPA keeps
        it until this succeeds)."""
        results.notification(self, None, binary_field(body, "pendingNotification"))
        if self.relay is not None:
            self.relay.notify(body)
        return None

    def _relayed(self, function: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.relay is None:
            raise Es9StatusError(st.MALFORMED, f"{function}: this eIM offers no indirect "
                                               "profile download")
        return self.relay.call(function, body)

    def euicc_key(self, eid: str) -> ec.EllipticCurvePublicKey | None:
        """The eUICC's public key, once its certificate is known."""
        euicc = self.store.euicc(eid)
        if euicc is None or euicc.euicc_certificate is None:
            return None
        key = x509.load_der_x509_certificate(euicc.euicc_certificate).public_key()
        return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def _operation(spec: Mapping[str, Any]) -> Operation:
    """An operator's PSMO or eCO: ``{"kind": "enable"|"disable"|"delete", "iccid": ...}``
    (enable with ``"rollback": true``), ``{"kind": "configureImmediateEnable", "enable":
    bool, "smdp_oid"?, "smdp_address"?}``, ``{"kind": "addEim"|"updateEim", "config": hex
    of EimConfigurationData}``, ``{"kind": "deleteEim", "eim_id": ...}``, or a listing."""
    kind = spec.get("kind")
    if kind in ("enable", "disable", "delete"):
        iccid, rollback = spec.get("iccid"), spec.get("rollback", False)
        if not isinstance(iccid, str):
            raise EimStoreError(f"{kind} needs an ICCID")
        if not isinstance(rollback, bool) or (rollback and kind != "enable"):
            raise EimStoreError("rollback is a flag of enable only")
        return Operation(kind, iccid=validate_iccid(iccid), rollback=rollback)
    if kind == "configureImmediateEnable":
        return Operation(kind, immediate=_immediate(spec))
    if kind in ("addEim", "updateEim"):
        return Operation(kind, eim=_eim_config(spec.get("config")))
    if kind in ("listProfileInfo", "getRAT", "listEim"):
        return Operation(kind)
    if kind == "deleteEim" and isinstance(spec.get("eim_id"), str):
        return Operation(kind, eim_id=spec["eim_id"])
    raise EimStoreError(f"unknown operation {spec!r}")


def _immediate(spec: Mapping[str, Any]) -> ImmediateEnable:
    enable, oid, address = (spec.get("enable", True), spec.get("smdp_oid"),
                            spec.get("smdp_address"))
    if not isinstance(enable, bool) or not all(v is None or isinstance(v, str)
                                               for v in (oid, address)):
        raise EimStoreError("configureImmediateEnable takes a flag, an OID and an address")
    config = ImmediateEnable(enable, oid, address)
    try:
        ImmediateEnable.decode(tlv.decode_one(config.encode()))  # checks OID and address
    except (ValueError, tlv.TlvError) as exc:
        raise EimStoreError(f"configureImmediateEnable: {exc}") from exc
    return config


def _eim_config(value: object) -> EimConfig:
    try:
        if not isinstance(value, str):
            raise ValueError("the eIM configuration is the hex of its DER")
        return EimConfig.decode(tlv.decode_one(bytes.fromhex(value)))
    except (ValueError, tlv.TlvError) as exc:
        raise EimStoreError(f"not an EimConfigurationData: {exc}") from exc
