"""ES10a/b/c commands of the ISD-R (SGP.22 section 5.7), dispatched by their BER tag.

Each handler takes the card context and the reassembled command TLV and returns the
complete response TLV. Where the response type has a result code, refusals are answered
with it (``iccidOrAidNotFound``, ``profileNotInDisabledState``, ...). A command that is not
valid DER for its ASN.1 type (missing or repeated components, wrong sizes, INTEGER or
BOOLEAN contents DER forbids) has no response of its own and is answered with status
``6A80``, as is a command tag the eUICC does not know: that lets an LPA tell a refused
command from a transport failure.

Handlers change the state only through ``ctx.commit(copy)``, so a refusal or a failed save
leaves the card as it was. The download commands (issue: profile download) slot in by adding
handlers to :data:`HANDLERS`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from lpa_emulator import sgp22, tlv
from lpa_emulator.euicc.apdu import SW
from lpa_emulator.euicc.errors import CardStatus
from lpa_emulator.euicc.state import CardState, ProfileRecord
from lpa_emulator.sgp22 import fields

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

NVM_CAPACITY = 1_500_000
"""Non-volatile memory for profiles, in bytes."""
PROFILE_FOOTPRINT = 48_000
"""What one installed profile takes of it (a typical small profile with a USIM)."""
FREE_RAM = 8_192

RULES_AUTHORISATION_TABLE = (
    sgp22.PolicyRule(frozenset({"ppr1", "ppr2"}),
                     (sgp22.OperatorId(bytes.fromhex("EEEEEE")),), consent_required=True),
)
"""The RAT: any operator (MCC/MNC all wildcard) may set PPR1 and PPR2, with the user's
consent."""


@dataclass
class RspSession:
    """Volatile ES10b session data: the challenge of GetEUICCChallenge and, once the SM-DP+
    is authenticated, the transaction it runs. A reset loses it, as on a card."""

    challenge: bytes | None = None
    transaction_id: bytes | None = None
    smdp_oid: bytes | None = None
    """The SM-DP+'s OID (DER content of the OBJECT IDENTIFIER), from its certificate."""


class Es10Context(Protocol):
    """What a handler may use of the card."""

    @property
    def state(self) -> CardState: ...

    @property
    def session(self) -> RspSession: ...

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
    pkids = state.identity.ci_pkids
    return sgp22.EuiccInfo1(SVN, pkids, pkids)


def euicc_info2(state: CardState) -> sgp22.EuiccInfo2:
    pkids = state.identity.ci_pkids
    used = len(state.profiles) * PROFILE_FOOTPRINT
    return sgp22.EuiccInfo2(
        profile_version=PROFILE_VERSION, svn=SVN, firmware_version=FIRMWARE_VERSION,
        resources=sgp22.CardResources(len(state.profiles), max(0, NVM_CAPACITY - used),
                                      FREE_RAM),
        uicc_capabilities=UICC_CAPABILITIES, rsp_capabilities=RSP_CAPABILITIES,
        ci_pkids_verification=pkids, ci_pkids_signing=pkids,
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
    challenge = secrets.token_bytes(16)
    session = ctx.session
    session.challenge, session.transaction_id, session.smdp_oid = challenge, None, None
    return tlv.encode(sgp22.TAG_GET_EUICC_CHALLENGE, tlv.encode(0x80, challenge))


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
    return sgp22.encode_result(sgp22.TAG_SET_DEFAULT_DP_ADDRESS, 0)


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
        return sgp22.encode_result(sgp22.TAG_ENABLE_PROFILE, code)

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
        return sgp22.encode_result(sgp22.TAG_DISABLE_PROFILE, code)

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
        return sgp22.encode_result(sgp22.TAG_DELETE_PROFILE, code)

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
        return sgp22.encode_result(sgp22.TAG_MEMORY_RESET, 1)
    ctx.commit(new_state)
    log.info("memory reset (%s)", ", ".join(sorted(options)))
    return sgp22.encode_result(sgp22.TAG_MEMORY_RESET, 0)


def set_nickname(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """SetNickname: an empty nickname removes it."""
    f = fields(command, (sgp22.TAG_ICCID, sgp22.TAG_NICKNAME),
               required=(sgp22.TAG_ICCID, sgp22.TAG_NICKNAME))
    ident = _identifier(f[sgp22.TAG_ICCID])
    nickname = tlv.decode_utf8(f[sgp22.TAG_NICKNAME].value, max_chars=sgp22.MAX_NICKNAME)
    state = ctx.state
    index = _find(state, ident)
    if index is None:
        return sgp22.encode_result(sgp22.TAG_SET_NICKNAME, 1)
    new_state = state.copy()
    new_state.profiles[index] = replace(state.profiles[index], nickname=nickname or None)
    ctx.commit(new_state)
    return sgp22.encode_result(sgp22.TAG_SET_NICKNAME, 0)


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
        return sgp22.encode_result(sgp22.TAG_LIST_PROFILE_INFO, 1, choice=True)
    infos = b"".join(p.info().encode(wanted) for p in selected)
    return tlv.encode(sgp22.TAG_LIST_PROFILE_INFO, tlv.encode(0xA0, infos))


# --- notifications --------------------------------------------------------------------------------

def list_notification(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """ListNotification: metadata of the pending notifications, optionally only those of
    the operations named in ``81``."""
    f = fields(command, (0x81,))
    ops = (sgp22.decode_named_bits(f[0x81].value, sgp22.NOTIFICATION_EVENTS)
           if 0x81 in f else None)
    body = b"".join(n.metadata.encode() for n in ctx.state.notifications
                    if ops is None or n.operation in ops)
    return tlv.encode(sgp22.TAG_LIST_NOTIFICATION, tlv.encode(0xA0, body))


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
                return sgp22.encode_result(sgp22.TAG_RETRIEVE_NOTIFICATIONS, 1, choice=True)
        else:
            ops = sgp22.decode_named_bits(criterion.value, sgp22.NOTIFICATION_EVENTS)
            selected = [n for n in selected if n.operation in ops]
    body = b"".join(n.pending(state.identity) for n in selected)
    return tlv.encode(sgp22.TAG_RETRIEVE_NOTIFICATIONS, tlv.encode(0xA0, body))


def notification_sent(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """NotificationSent: the LPA delivered notification ``seqNumber``; forget it."""
    seq = tlv.decode_int(fields(command, (0x80,), required=(0x80,))[0x80].value)
    state = ctx.state
    remaining = [n for n in state.notifications if n.seq != seq]
    if len(remaining) == len(state.notifications):
        return sgp22.encode_result(sgp22.TAG_NOTIFICATION_SENT, 1)
    new_state = state.copy()
    new_state.notifications = remaining
    ctx.commit(new_state)
    return sgp22.encode_result(sgp22.TAG_NOTIFICATION_SENT, 0)


# --- the RSP session ------------------------------------------------------------------------------

def cancel_session(ctx: Es10Context, command: tlv.Tlv) -> bytes:
    """CancelSession: end the download session ``transactionId`` with a signed receipt for
    the SM-DP+; ``invalidTransactionId`` when no such session runs."""
    f = fields(command, (0x80, 0x81), required=(0x80, 0x81))
    transaction_id = f[0x80].value
    if not 1 <= len(transaction_id) <= sgp22.MAX_TRANSACTION_ID:
        raise _wrong("transactionId is 1 to 16 bytes")
    reason = tlv.decode_int(f[0x81].value)
    if reason not in sgp22.CANCEL_SESSION_REASONS:
        raise _wrong(f"unknown cancel reason {reason}")
    session = ctx.session
    if (session.transaction_id is None or session.smdp_oid is None
            or session.transaction_id != transaction_id):
        return sgp22.encode_result(sgp22.TAG_CANCEL_SESSION, 5, choice=True)
    signed = tlv.encode(sgp22.TAG_SEQUENCE,
                        tlv.encode(0x80, transaction_id)
                        + tlv.encode(sgp22.TAG_OID, session.smdp_oid)
                        + tlv.encode(0x81, tlv.encode_int(reason)))
    signature = ctx.state.identity.sign(signed)
    session.challenge = session.transaction_id = session.smdp_oid = None
    log.info("session %s cancelled: %s", transaction_id.hex(),
             sgp22.CANCEL_SESSION_REASONS[reason])
    return tlv.encode(sgp22.TAG_CANCEL_SESSION,
                      tlv.encode(0xA0, signed + tlv.encode(sgp22.TAG_SIGNATURE, signature)))


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
}


def dispatch(ctx: Es10Context, data: bytes,
             handlers: Mapping[int, Es10Handler] = HANDLERS) -> bytes:
    """Run the ES10 command in ``data`` (one complete TLV) and return its response."""
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
