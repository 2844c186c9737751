"""Every ES10 function of this eUICC's ISD-R, by tag: SGP.22's (:mod:`.es10`), the three
SGP.22 functions SGP.32 extends (here, as every download uses them), and SGP.32's own
(:mod:`.iot`), whose module and codecs are loaded when the first of them arrives: a card
that only downloads profiles never carries them.

* GetEUICCInfo2 (``BF22``) gains the IoT members ipaMode (``90``) and iotSpecificInfo
  (``B4``);
* RetrieveNotificationsList (``BF2B``) takes SGP.32's criterion euiccPackageResults;
* NotificationSent (``BF30``) also removes a delivered package result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from lpa_emulator.euicc import es10
from mps_esim import sgp22, tlv

IOT_VERSION = "1.2.0"
"""The SGP.32 version this eUICC implements."""
IPA_MODE_IPAD = 0

SGP32_TAGS = frozenset({0xBF57, 0xBF55, 0xBF51, 0xBF56, 0xBF58})
"""AddInitialEim, GetEimConfigurationData, LoadEuiccPackage, GetCerts and ProfileRollback:
the functions :data:`lpa_emulator.euicc.iot.HANDLERS` adds."""


def retrieve_notifications(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """RetrieveNotificationsList; SGP.32's criterion euiccPackageResults (``82``) answers
    with the undelivered package results (``A2``)."""
    f = sgp22.fields(command, (0xA0,))
    criteria = f[0xA0].children() if 0xA0 in f else []
    if len(criteria) == 1 and criteria[0].tag == 0x82 and not criteria[0].value:
        return tlv.encode(sgp22.TAG_RETRIEVE_NOTIFICATIONS, tlv.encode(
            0xA2, b"".join(result for _seq, result in ctx.state.iot.results)))
    return es10.retrieve_notifications(ctx, command)


def get_euicc_info2(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """GetEUICCInfo2 with SGP.32's ipaMode and iotSpecificInfo (iotVersion) appended: their
    tags (``90``, ``B4``) come after every member the SGP.22 part encodes."""
    base = tlv.decode_one(es10.get_euicc_info2(ctx, command))
    iot = (tlv.encode(0x90, tlv.encode_int(IPA_MODE_IPAD))
           + tlv.encode(0xB4, tlv.encode(0xA0, tlv.encode(0x04, sgp22.encode_version(
               IOT_VERSION)))))
    return tlv.encode(base.tag, base.value + iot)


def notification_sent(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    """NotificationSent (RemoveNotificationFromList): a notification or, SGP.32, a package
    result the eIM has acknowledged."""
    seq = tlv.decode_int(sgp22.fields(command, (0x80,), required=(0x80,))[0x80].value)
    remaining = ctx.state.iot.without_result(seq)
    if remaining is None:
        return es10.notification_sent(ctx, command)
    ctx.commit(replace(ctx.state.copy(), iot=remaining))
    return sgp22.NOTIFICATION_SENT.encode_ok()


def _sgp32(ctx: es10.Es10Context, command: tlv.Tlv) -> bytes:
    from lpa_emulator.euicc import iot  # on the first SGP.32 function (see the module doc)

    return iot.HANDLERS[command.tag](ctx, command)


EXTENDED: Mapping[int, es10.Es10Handler] = {
    sgp22.TAG_RETRIEVE_NOTIFICATIONS: retrieve_notifications,
    sgp22.TAG_GET_EUICC_INFO2: get_euicc_info2,
    sgp22.TAG_NOTIFICATION_SENT: notification_sent,
}
"""The SGP.22 functions as SGP.32 extends them."""

HANDLERS: Mapping[int, es10.Es10Handler] = {**es10.HANDLERS, **EXTENDED,
                                            **dict.fromkeys(SGP32_TAGS, _sgp32)}
"""Every ES10 function of this eUICC: SGP.22's and SGP.32's."""
