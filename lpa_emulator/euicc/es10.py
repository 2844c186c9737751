"""ES10a/b/c commands of the ISD-R (SGP.22 section 5.7), dispatched by their BER tag.

Each handler takes the card context and the reassembled command TLV and returns the
complete response TLV. Where the response type has a result code, refusals are answered
with it (``iccidOrAidNotFound``, ``profileNotInDisabledState``, ...). A command that is not
valid DER for its ASN.1 type (missing or repeated components, wrong sizes, INTEGER or
BOOLEAN contents DER forbids) has no response of its own and is answered with status
``6A80``, as is a command tag the eUICC does not know: that lets an LPA tell a refused
command from a transport failure.

Handlers change the state only through ``ctx.commit(copy)``, so a refusal or a failed save
leaves the card as it was.

The profile download (GetEUICCChallenge, AuthenticateServer, PrepareDownload,
LoadBoundProfilePackage, CancelSession) runs in the card's volatile
:class:`~lpa_emulator.euicc.download.DownloadSession`. The segments of a bound profile
package are not all complete TLVs (the ``BF36`` header travels with ``BF23``, the ``A1``
and ``A3`` headers alone), so :func:`dispatch` hands them to the session before decoding;
an installed profile and its installation result are committed together, so a download
that fails or is interrupted leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from lpa_emulator.euicc.apdu import SW
from lpa_emulator.euicc.download import DownloadSession
from lpa_emulator.euicc.errors import CardStatus
from lpa_emulator.euicc.install import NVM_CAPACITY, PROFILE_FOOTPRINT, CardInstall
from lpa_emulator.euicc.state import CardState, ProfileRecord
from mps_esim import sgp22, tlv
from mps_esim.sgp22 import fields

log = logging.getLogger(__name__)

SVN = "2.2.2"
"""The SGP.22 version this eUICC implements."""
PROFILE_VERSION = "2.3.1"
FIRMWARE_VERSION = "1.0.0"
TS102241_VERSION = "9.2.0"
GLOBALPLATFORM_VERSION = "2.3.0"
PP_VERSION = "1.0.0"
SAS_ACCREDITATION_NUMBER = "MPS-EMULATED-EUICC"
UICC_CAPABILITIES = frozenset({
    "usimSupport", "isimSupport", "akaMilenage", "akaTuak128", "gbaAuthenUsim", "javacard",
    "multipleUsimSupport", "berTlvFileSupport", "catTp", "getIdentity", "profile-b-p256"})
RSP_CAPABILITIES = frozenset({"additionalProfile", "testProfileSupport"})

FREE_RAM = 8_192

RULES_AUTHORISATION_TABLE = (
    sgp22.PolicyRule(frozenset({"ppr1", "ppr2"}),
                     (sgp22.OperatorId(bytes.fromhex("EEEEEE")),), consent_required=True),
)
"""The RAT: any operator (MCC/MNC all wildcard) may set PPR1 and PPR2, with the user's
consent."""


class Es10Context(Protocol):
    """What a handler may use of the card."""

    @property
    def state(self) -> CardState: ...

    @property
    def session(self) -> DownloadSession:
        """The volatile download session (a reset starts a new one)."""

    def commit(self, new_state: CardState) -> None:
        """Persist ``new_state`` and make it current (``6581`` if it cannot be stored)."""


Es10Handler = Callable[[Es10Context, tlv.Tlv], bytes]


def _wrong(message: str) -> CardStatus:
    return CardStatus(SW.WRONG_DATA, message)


# --- eUICC information (ES10a/ES10b/ES10c) -----------------------------------------------------

def get_euicc_data(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetEuiccData: the EID (tag 5A) when the tag list asks for it."""
    tags = fields(command, (sgp22.TAG_TAG_LIST,), required=(sgp22.TAG_TAG_LIST,))
    body = b""
    if sgp22.TAG_EID in tlv.decode_tag_list(tags[sgp22.TAG_TAG_LIST].value):
        # The EID travels as 16 bytes of plain (not nibble-swapped) BCD.
        body = tlv.encode(sgp22.TAG_EID, bytes.fromhex(ctx.state.eid))
    return tlv.encode(sgp22.TAG_GET_EUICC_DATA, body)


def euicc_info1(state: CardState) -> sgp22.EuiccInfo1:
    """The CIs the card verifies servers with, and those its own chain is issued under."""
    identity = state.identity
    return sgp22.EuiccInfo1(SVN, identity.ci_pkids, identity.signing_pkids)


def euicc_info2(state: CardState) -> sgp22.EuiccInfo2:
    pkids, signing = state.identity.ci_pkids, state.identity.signing_pkids
    used = len(state.profiles) * PROFILE_FOOTPRINT
    return sgp22.EuiccInfo2(
        profile_version=PROFILE_VERSION, svn=SVN, firmware_version=FIRMWARE_VERSION,
        resources=sgp22.CardResources(len(state.profiles), max(0, NVM_CAPACITY - used),
                                      FREE_RAM),
        uicc_capabilities=UICC_CAPABILITIES, rsp_capabilities=RSP_CAPABILITIES,
        ci_pkids_verification=pkids, ci_pkids_signing=signing,
        pp_version=PP_VERSION, sas_accreditation_number=SAS_ACCREDITATION_NUMBER,
        ts102241_version=TS102241_VERSION, globalplatform_version=GLOBALPLATFORM_VERSION,
        category="other")


def get_euicc_info1(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetEUICCInfo1: SGP.22 version and the CI key ids for verification and signing."""
    fields(command, ())
    return euicc_info1(ctx.state).encode()


def get_euicc_info2(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetEUICCInfo2: versions, capabilities, free memory, CI key ids, certification."""
    fields(command, ())
    return euicc_info2(ctx.state).encode()


def get_euicc_challenge(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetEUICCChallenge: 16 fresh random bytes, remembered for AuthenticateServer. A new
    challenge ends any session in progress."""
    fields(command, ())
    return ctx.session.get_challenge()


def get_rat(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetRAT: the Rules Authorisation Table."""
    fields(command, ())
    rules = b"".join(rule.encode() for rule in RULES_AUTHORISATION_TABLE)
    return tlv.encode(sgp22.TAG_GET_RAT, tlv.encode(0xA0, rules))


# --- configured addresses -----------------------------------------------------------------------

def get_configured_addresses(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """GetEuiccConfiguredAddresses: default SM-DP+ address (80, if set) and root SM-DS (81)."""
    fields(command, ())
    state = ctx.state
    body = b""
    if state.default_dp_address:
        body += tlv.encode(0x80, state.default_dp_address.encode())
    body += tlv.encode(0x81, state.root_ds_address.encode())
    return tlv.encode(sgp22.TAG_GET_CONFIGURED_ADDRESSES, body)


def set_default_dp_address(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """SetDefaultDpAddress: store (or, when empty, remove) the default SM-DP+ address."""
    address = fields(command, (0x80,), required=(0x80,))[0x80]
    if len(address.value) > sgp22.MAX_ADDRESS:
        raise _wrong("defaultDpAddress is longer than 255 bytes")
    text = tlv.decode_utf8(address.value)
    new_state = ctx.state.copy()
    new_state.default_dp_address = text or None
    ctx.commit(new_state)
    return sgp22.SET_DEFAULT_DP_ADDRESS.encode_ok()


# --- profiles -------------------------------------------------------------------------------------

def _identifier(item: tlv.Tlv) -> tuple[int, bytes]:
    """A profile identifier (``4F`` ISD-P AID or ``5A`` ICCID), checked for its size."""
    if item.tag == sgp22.TAG_ISDP_AID and 5 <= len(item.value) <= 16:
        return item.tag, item.value
    if item.tag == sgp22.TAG_ICCID and len(item.value) == 10:
        return item.tag, item.value
    raise _wrong(f"a profile is named by ISD-P AID (4F, 5-16 bytes) or ICCID (5A, 10 bytes), "
                 f"got {item.tag:X} of {len(item.value)} bytes")


def _matches(profile: ProfileRecord, ident: tuple[int, bytes]) -> bool:
    tag, value = ident
    if tag == sgp22.TAG_ISDP_AID:
        return profile.isdp_aid == value
    # Compared as encoded bytes: an ICCID with non-digit nibbles simply matches nothing.
    return sgp22.encode_iccid(profile.iccid) == value


def _find(state: CardState, ident: tuple[int, bytes]) -> int | None:
    return next((i for i, p in enumerate(state.profiles) if _matches(p, ident)), None)


def _choice(command: tlv.Tlv) -> tuple[tuple[int, bytes], bool]:
    """The ``A0`` profileIdentifier CHOICE and ``81`` refreshFlag of Enable/DisableProfile."""
    f = fields(command, (0xA0, 0x81), required=(0xA0, 0x81))
    options = f[0xA0].children()
    if len(options) != 1:
        raise _wrong("profileIdentifier holds exactly one choice")
    return _identifier(options[0]), tlv.decode_bool(f[0x81].value)


def enable_profile(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """EnableProfile: disable the enabled profile (unless its policy forbids), enable the
    target; each change makes its notification. The file system follows at once."""
    ident, refresh = _choice(command)

    def result(code: int) -> bytes:
        return sgp22.ENABLE_PROFILE.encode_error(code)

    state = ctx.state
    index = _find(state, ident)
    if index is None:
        return result(1)
    target = state.profiles[index]
    if target.enabled:
        return result(2)
    current = state.enabled_profile()
    if current is not None and "ppr1" in current.ppr:
        return result(3)
    new_state = state.copy()
    for i, profile in enumerate(new_state.profiles):
        if profile.enabled:
            new_state.profiles[i] = replace(profile, enabled=False)
            new_state.add_notification("disable", profile)
    new_state.profiles[index] = replace(target, enabled=True)
    new_state.add_notification("enable", target)
    ctx.commit(new_state)
    log.info("profile %s enabled (refresh %s)", target.iccid, refresh)
    return result(0)


def disable_profile(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """DisableProfile: refused when the profile is not enabled or carries PPR1."""
    ident, refresh = _choice(command)

    def result(code: int) -> bytes:
        return sgp22.DISABLE_PROFILE.encode_error(code)

    state = ctx.state
    index = _find(state, ident)
    if index is None:
        return result(1)
    target = state.profiles[index]
    if not target.enabled:
        return result(2)
    if "ppr1" in target.ppr:
        return result(3)
    new_state = state.copy()
    new_state.profiles[index] = replace(target, enabled=False)
    new_state.add_notification("disable", target)
    ctx.commit(new_state)
    log.info("profile %s disabled (refresh %s)", target.iccid, refresh)
    return result(0)


def delete_profile(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """DeleteProfile: only a disabled profile without PPR2 can go."""
    if not command.constructed:
        raise _wrong("DeleteProfileRequest must be constructed")
    options = command.children()
    if len(options) != 1:
        raise _wrong("DeleteProfileRequest holds exactly one ISD-P AID or ICCID")
    ident = _identifier(options[0])

    def result(code: int) -> bytes:
        return sgp22.DELETE_PROFILE.encode_error(code)

    state = ctx.state
    index = _find(state, ident)
    if index is None:
        return result(1)
    target = state.profiles[index]
    if target.enabled:
        return result(2)
    if "ppr2" in target.ppr:
        return result(3)
    new_state = state.copy()
    del new_state.profiles[index]
    new_state.add_notification("delete", target)
    ctx.commit(new_state)
    log.info("profile %s deleted", target.iccid)
    return result(0)


def memory_reset(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """eUICCMemoryReset: delete operational and/or test profiles whatever their state and
    policy, and/or forget the default SM-DP+ address. Makes no notifications."""
    options = sgp22.decode_named_bits(fields(command, (0x82,), required=(0x82,))[0x82].value,
                                      sgp22.MEMORY_RESET_OPTIONS)
    doomed = set()
    if "deleteOperationalProfiles" in options:
        doomed.add("operational")
    if "deleteFieldLoadedTestProfiles" in options:
        doomed.add("test")
    state = ctx.state
    new_state = state.copy()
    new_state.profiles = [p for p in state.profiles if p.profile_class not in doomed]
    if "resetDefaultSmdpAddress" in options:
        new_state.default_dp_address = None
    if new_state.profiles == state.profiles and (
            new_state.default_dp_address == state.default_dp_address):
        return sgp22.MEMORY_RESET.encode_error(1)
    ctx.commit(new_state)
    log.info("memory reset (%s)", ", ".join(sorted(options)))
    return sgp22.MEMORY_RESET.encode_ok()


def set_nickname(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """SetNickname: an empty nickname removes it."""
    f = fields(command, (sgp22.TAG_ICCID, sgp22.TAG_NICKNAME),
               required=(sgp22.TAG_ICCID, sgp22.TAG_NICKNAME))
    ident = _identifier(f[sgp22.TAG_ICCID])
    nickname = tlv.decode_utf8(f[sgp22.TAG_NICKNAME].value, max_chars=sgp22.MAX_NICKNAME)
    state = ctx.state
    index = _find(state, ident)
    if index is None:
        return sgp22.SET_NICKNAME.encode_error(1)
    new_state = state.copy()
    new_state.profiles[index] = replace(state.profiles[index], nickname=nickname or None)
    ctx.commit(new_state)
    return sgp22.SET_NICKNAME.encode_ok()


def list_profile_info(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """ListProfileInfo: the profiles matching the search criteria (all without), each with
    the components the tag list names (all without). Bad criteria: ``incorrectInput``."""
    try:
        f = fields(command, (0xA0, sgp22.TAG_TAG_LIST))
        wanted = None
        if sgp22.TAG_TAG_LIST in f:
            wanted = tlv.decode_tag_list(f[sgp22.TAG_TAG_LIST].value)
        selected = list(ctx.state.profiles)
        if 0xA0 in f:
            criteria = f[0xA0].children()
            if len(criteria) != 1:
                raise tlv.TlvError("searchCriteria holds exactly one criterion")
            criterion = criteria[0]
            if criterion.tag == sgp22.TAG_PROFILE_CLASS:
                wanted_class = sgp22.PROFILE_CLASSES[tlv.decode_int(
                    criterion.value, min_value=0, max_value=len(sgp22.PROFILE_CLASSES) - 1)]
                selected = [p for p in selected if p.profile_class == wanted_class]
            else:
                ident = _identifier(criterion)
                selected = [p for p in selected if _matches(p, ident)]
    except (tlv.TlvError, CardStatus) as exc:
        log.info("ListProfileInfo refused: %s", exc)
        return sgp22.LIST_PROFILE_INFO.encode_error(1)
    infos = b"".join(p.info().encode(wanted) for p in selected)
    return sgp22.LIST_PROFILE_INFO.encode_ok(infos)


# --- notifications --------------------------------------------------------------------------------

def list_notification(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """ListNotification: metadata of the pending notifications, optionally only those of
    the operations named in ``81``."""
    f = fields(command, (0x81,))
    ops = (sgp22.decode_named_bits(f[0x81].value, sgp22.NOTIFICATION_EVENTS)
           if 0x81 in f else None)
    body = b"".join(n.metadata.encode() for n in ctx.state.notifications
                    if ops is None or n.operation in ops)
    return sgp22.LIST_NOTIFICATION.encode_ok(body)


def retrieve_notifications(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """RetrieveNotificationsList: the signed pending notifications, all or those matching a
    sequence number (``80``) or operations (``81``)."""
    f = fields(command, (0xA0,))
    state = ctx.state
    selected = list(state.notifications)
    if 0xA0 in f:
        criteria = f[0xA0].children()
        if len(criteria) != 1 or criteria[0].tag not in (0x80, 0x81):
            raise _wrong("searchCriteria is one seqNumber (80) or operation (81)")
        criterion = criteria[0]
        if criterion.tag == 0x80:
            seq = tlv.decode_int(criterion.value)
            selected = [n for n in selected if n.seq == seq]
            if not selected:
                return sgp22.RETRIEVE_NOTIFICATIONS.encode_error(1)
        else:
            ops = sgp22.decode_named_bits(criterion.value, sgp22.NOTIFICATION_EVENTS)
            selected = [n for n in selected if n.operation in ops]
    body = b"".join(n.pending(state.identity) for n in selected)
    return sgp22.RETRIEVE_NOTIFICATIONS.encode_ok(body)


def notification_sent(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """NotificationSent: the LPA delivered notification ``seqNumber``; forget it."""
    seq = tlv.decode_int(fields(command, (0x80,), required=(0x80,))[0x80].value)
    state = ctx.state
    remaining = [n for n in state.notifications if n.seq != seq]
    if len(remaining) == len(state.notifications):
        return sgp22.NOTIFICATION_SENT.encode_error(1)
    new_state = state.copy()
    new_state.notifications = remaining
    ctx.commit(new_state)
    return sgp22.NOTIFICATION_SENT.encode_ok()


# --- the profile download -------------------------------------------------------------------------

def authenticate_server(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """AuthenticateServer: check the SM-DP+ (CERT.DPauth chain, signature, challenge,
    address) and answer with the card's signed euiccSigned1 and certificates."""
    state = ctx.state
    return ctx.session.authenticate_server(
        command.encode(), euicc_info2=euicc_info2(state).encode(),
        default_smdp_address=state.default_dp_address)


def prepare_download(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """PrepareDownload: check CERT.DPpb and smdpSignature2, make the one-time key."""
    return ctx.session.prepare_download(command.encode())


def cancel_session(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """CancelSession: end the download session ``transactionId`` with a signed receipt for
    the SM-DP+; ``invalidTransactionId`` when no such session runs."""
    return ctx.session.cancel_session(command.encode())


def load_bound_profile_package(ctx: Es10Context, segment: bytes) -> bytes:
    """One LoadBoundProfilePackage segment: nothing while more are expected, the signed
    ProfileInstallationResult after the last one or the first failure."""
    try:
        return ctx.session.load_segment(segment, CardInstall(ctx))
    except CardStatus:
        # The result could not be stored: the download is over, with nothing installed.
        ctx.session.reset()
        raise


_SEGMENT_TAGS = frozenset((0xA0, 0xA1, 0xA2, 0xA3, 0x86, 0x88))
_BPP_START = sgp22.TAG_BOUND_PROFILE_PACKAGE.to_bytes(2, "big")


def is_bpp_segment(data: bytes, session: DownloadSession) -> bool:
    """Whether ``data`` is a LoadBoundProfilePackage segment: the ``BF36`` header with
    ``BF23``, or, while a package is being loaded, one of its groups, group headers or
    protected segments."""
    return data[:2] == _BPP_START or (session.loading and bool(data)
                                       and data[0] in _SEGMENT_TAGS)


HANDLERS: Mapping[int, Es10Handler] = {
    sgp22.TAG_GET_EUICC_DATA: get_euicc_data,
    sgp22.TAG_GET_EUICC_INFO1: get_euicc_info1,
    sgp22.TAG_GET_EUICC_INFO2: get_euicc_info2,
    sgp22.TAG_GET_EUICC_CHALLENGE: get_euicc_challenge,
    sgp22.TAG_GET_CONFIGURED_ADDRESSES: get_configured_addresses,
    sgp22.TAG_SET_DEFAULT_DP_ADDRESS: set_default_dp_address,
    sgp22.TAG_LIST_PROFILE_INFO: list_profile_info,
    sgp22.TAG_ENABLE_PROFILE: enable_profile,
    sgp22.TAG_DISABLE_PROFILE: disable_profile,
    sgp22.TAG_DELETE_PROFILE: delete_profile,
    sgp22.TAG_MEMORY_RESET: memory_reset,
    sgp22.TAG_SET_NICKNAME: set_nickname,
    sgp22.TAG_LIST_NOTIFICATION: list_notification,
    sgp22.TAG_RETRIEVE_NOTIFICATIONS: retrieve_notifications,
    sgp22.TAG_NOTIFICATION_SENT: notification_sent,
    sgp22.TAG_CANCEL_SESSION: cancel_session,
    sgp22.TAG_GET_RAT: get_rat,
    sgp22.TAG_AUTHENTICATE_SERVER: authenticate_server,
    sgp22.TAG_PREPARE_DOWNLOAD: prepare_download,
}


def dispatch(ctx: Es10Context, data: bytes,
             handlers: Mapping[int, Es10Handler] = HANDLERS) -> bytes:
    """Run the ES10 command in ``data`` (one complete TLV, or a segment of a bound profile
    package) and return its response."""
    if is_bpp_segment(data, ctx.session):
        return load_bound_profile_package(ctx, data)
    try:
        command = tlv.decode_one(data)
    except tlv.TlvError as exc:
        raise _wrong(f"ES10 command is not a valid TLV: {exc}") from exc
    handler = handlers.get(command.tag)
    if handler is None:
        log.info("unsupported ES10 command %X", command.tag)
        raise _wrong(f"unsupported ES10 command {command.tag:X}")
    try:
        return handler(ctx, command)
    except tlv.TlvError as exc:
        raise _wrong(f"malformed ES10 command {command.tag:X}: {exc}") from exc
