"""The ES10b functions SGP.32 adds to the ISD-R (SGP.32 5.9), for the IPA on the device.

* AddInitialEim (``BF57``): the first eIM(s), only while none is associated;
* GetEimConfigurationData (``BF55``): the associated eIMs, without their tokens;
* LoadEuiccPackage (``BF51``): an eIM-signed package of PSMOs or eCOs. The card
  checks, in this order, that the eIM is associated, its signature over the package (and
  association token), the EID, and the counter (above the last one accepted, at most
  :data:`~mps_esim.sgp32.eim.MAX_COUNTER`). An unknown eIM or a bad signature gets an
  unsigned error, a wrong EID or counter a signed one; none of them changes anything. An
  accepted package runs its operations, raises the eIM's counter and keeps the signed
  result for the eIM, all in one commit;
* GetCerts (``BF56``): CERT.EUM and CERT.EUICC, which the IPA passes to the eIM;
* ProfileRollback (``BF58``): back to the profile enabled before an enable PSMO that
  granted rollback (:mod:`mps_esim.sgp32.immediate`);
* RetrieveNotificationsList (``BF2B``) with SGP.32's criterion euiccPackageResults: the
  package results not yet delivered;
* GetEUICCInfo2 (``BF22``) gains the IoT members ipaMode (``90``) and iotSpecificInfo
  (``B4``); NotificationSent (``BF30``) also removes a delivered package result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from lpa_emulator.euicc import es10
from lpa_emulator.euicc.eim_config import MAX_EIMS
from lpa_emulator.euicc.isdr import (
    IOT_VERSION,
    IPA_MODE_IPAD,
    get_euicc_info2,
    notification_sent,
    retrieve_notifications,
)
from lpa_emulator.euicc.state import CardState
from mps_esim import sgp22, tlv
from mps_esim.sgp22 import der
from mps_esim.sgp32 import es10 as sgp32_es10
from mps_esim.sgp32 import immediate
from mps_esim.sgp32.eim import MAX_COUNTER, EimConfig, EimConfigError

log = logging.getLogger(__name__)

# --- eIM configuration ------------------------------------------------------------------------

def _initial_eim_problem(state: CardState, configs: list[EimConfig]) -> int:
    """0, or the addInitialEimError that refuses ``configs``."""
    ids = [c.eim_id for c in configs]
    if state.iot.eims:
        return 2
    if len(set(ids)) != len(ids):
        return 7
    if len(configs) > MAX_EIMS:
        return 1
    for config in configs:
        if config.counter is not None and not 0 <= config.counter <= MAX_COUNTER:
            return 6
        if config.association_token not in (None, -1):
            return 5
        if config.ci_pkid is not None and config.ci_pkid not in state.identity.signing_pkids:
            return 3
        try:
            config.verification_key()
        except EimConfigError:
            return 7
    return 0


def add_initial_eim(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """AddInitialEim: associate the first eIM(s); a token asked for (``-1``) is made."""
    configs = sgp32_es10.decode_add_initial_eim_request(command)
    state = ctx.state
    problem = _initial_eim_problem(state, configs)
    if problem:
        log.info("AddInitialEim refused: %s", sgp32_es10.ADD_INITIAL_EIM_ERRORS[problem])
        return sgp32_es10.add_initial_eim_error(problem)
    tokens: list[int | None] = []
    iot = state.iot
    for number, config in enumerate(configs, start=1):
        token = number if config.association_token == -1 else None
        tokens.append(token)
        iot = iot.with_eim(replace(config, counter=config.counter or 0,
                                   association_token=token))
    ctx.commit(replace(state.copy(), iot=iot))
    log.info("initial eIM(s) %s associated", ", ".join(c.eim_id for c in configs))
    return sgp32_es10.add_initial_eim_ok(tokens)


def get_eim_configuration(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """GetEimConfigurationData: every associated eIM, or the one searched for."""
    wanted = sgp32_es10.decode_get_eim_configuration_request(command)
    eims = [e for e in ctx.state.iot.eims if wanted is None or e.eim_id == wanted]
    return sgp32_es10.get_eim_configuration_response(eims)


# --- eUICC packages -------------------------------------------------------------------------------

def load_euicc_package(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """LoadEuiccPackage (:func:`lpa_emulator.euicc.packages.load_euicc_package`)."""
    # The package codecs and the PSMOs are loaded with the first package: a first boot
    # through the eIM (its download order, the eIM's configuration) runs none of them.
    from lpa_emulator.euicc import packages

    return packages.load_euicc_package(ctx, command)


def profile_rollback(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """ProfileRollback (:func:`lpa_emulator.euicc.packages.profile_rollback`)."""
    from lpa_emulator.euicc import packages

    return packages.profile_rollback(ctx, command)


# --- data for the eIM -----------------------------------------------------------------------------

def get_certs(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """GetCerts: CERT.EUM (``A5``) and CERT.EUICC (``A6``) for the eIM, which verifies the
    package results with them; ``invalidCiPKId`` for a CI the card's chain is not under."""
    m = der.Members(command, "GetCertsRequest")
    pkid = m.optional(0x04)
    identity = ctx.state.identity
    if pkid is not None and pkid.value not in identity.signing_pkids:
        return tlv.encode(sgp32_es10.TAG_GET_CERTS, tlv.encode(0x81, tlv.encode_int(1)))
    certs = (tlv.encode(0xA5, tlv.decode_one(identity.eum_certificate_der).value)
             + tlv.encode(0xA6, tlv.decode_one(identity.certificate_der).value))
    return tlv.encode(sgp32_es10.TAG_GET_CERTS, tlv.encode(0xA0, certs))


HANDLERS: Mapping[int, es10.Es10Handler] = {
    sgp32_es10.TAG_ADD_INITIAL_EIM: add_initial_eim,
    sgp32_es10.TAG_GET_EIM_CONFIGURATION: get_eim_configuration,
    sgp32_es10.TAG_LOAD_EUICC_PACKAGE: load_euicc_package,
    sgp32_es10.TAG_GET_CERTS: get_certs,
    immediate.TAG_PROFILE_ROLLBACK: profile_rollback,
    sgp22.TAG_RETRIEVE_NOTIFICATIONS: retrieve_notifications,
    sgp22.TAG_GET_EUICC_INFO2: get_euicc_info2,
    sgp22.TAG_NOTIFICATION_SENT: notification_sent,
}
"""The SGP.32 functions, and the SGP.22 ones they extend (:mod:`.isdr`)."""

ISDR_HANDLERS: Mapping[int, es10.Es10Handler] = {**es10.HANDLERS, **HANDLERS}
"""Every ES10 function of this eUICC: SGP.22's and SGP.32's (the card dispatches with
:data:`lpa_emulator.euicc.isdr.HANDLERS`, which loads this module on first use)."""

__all__ = ["HANDLERS", "IOT_VERSION", "IPA_MODE_IPAD", "ISDR_HANDLERS", "add_initial_eim",
           "get_certs", "get_eim_configuration", "get_euicc_info2", "load_euicc_package",
           "notification_sent", "profile_rollback", "retrieve_notifications"]
