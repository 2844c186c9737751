"""Requests to the registry: an app's, a user agent's and the operator systems'.

Requests are closed maps (a misspelt optional field must not be silently ignored) whose
``op`` picks the message type; :func:`parse_app_request`, :func:`parse_user_request` and
:func:`parse_operator_request` return the typed request or raise ValidationError naming
the bad field. ``mps_wire.messages`` re-exports every name here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mps_wire.errors import ValidationError
from mps_wire.fields import (
    MISSING,
    Choice,
    Identifier,
    Listing,
    Pattern,
    Text,
    UInt,
    WireField,
    WireMessage,
    WireTable,
    expect,
    optional,
)
from mps_wire.identifiers import validate_iccid, validate_imsi, validate_msisdn

R = TypeVar("R", bound=WireMessage)

PURPOSE = re.compile(r"[a-z0-9][a-z0-9._:\-]{0,63}")
REF = re.compile(r"[A-Za-z0-9_.:@=\-]{1,128}")  # ids, also usable as topic levels
MAX_EVENTS_PAGE = 500
MAX_NUMBERS = 16

PURPOSE_NAME = Pattern(PURPOSE, f"must match {PURPOSE.pattern}")
REF_ID = Pattern(REF, "is not a valid identifier")
"""An identifier the registry issued (pairing, prompt, app, contract id)."""
MSISDN = Identifier(validate_msisdn)
USER_REF = Pattern(REF, "is not a valid user reference")
"""A reference to the user's contract other than the number: the contract reference the
user gave the app, or the pseudonymous id the registry gave the app at pairing."""


class AppOp(enum.StrEnum):
    """Operations an app may request on its requests topic."""

    DEVICES = "devices"
    PAIR = "pair"
    UNPAIR = "unpair"
    EVENTS_SINCE = "events-since"


class UserOp(enum.StrEnum):
    """Operations a user agent may request on ``users/{contract}/requests``."""

    CONSENT_LIST = "consent-list"
    CONSENT_ANSWER = "consent-answer"
    CONSENT_WITHDRAW = "consent-withdraw"


class Decision(enum.StrEnum):
    """The user's answer to a consent prompt."""

    APPROVE = "approve"
    DENY = "deny"


class OperatorOp(enum.StrEnum):
    """Incremental operator data changes on ``operator/{source}/requests``."""

    ADD_CONTRACT = "add-contract"
    ADD_NUMBER = "add-number"
    REMOVE_NUMBER = "remove-number"
    ADD_SUBSCRIPTION = "add-subscription"
    REMOVE_SUBSCRIPTION = "remove-subscription"
    PORT_IN = "port-in"
    PORT_OUT = "port-out"


def _request(op: enum.StrEnum, *fields: WireField, rule: str) -> WireTable:
    return WireTable(*fields, rule=rule, consts={"op": op.value}, closed=True)


def _exactly_one(obj: object, first: str, second: str, what: str) -> None:
    # Neither: the usual choice (the number) is missing; both: the other one is too many.
    missing = getattr(obj, first) is None
    if missing == (getattr(obj, second) is None):
        raise ValidationError(f"{what} names exactly one of {first!r} and {second!r}",
                              field=first if missing else second)


# --- an app's requests -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DevicesRequest(WireMessage):
    """An app asks for the devices on the contract behind a phone number, or behind
    another reference to the user (``user``)."""

    msisdn: str | None = None
    user: str | None = None

    wire = _request(AppOp.DEVICES, optional("msisdn", MSISDN), optional("user", USER_REF),
                    rule="devices-request")

    def __post_init__(self) -> None:
        _exactly_one(self, "msisdn", "user", "devices")


@dataclass(frozen=True, slots=True)
class PairRequest(WireMessage):
    """An app asks to be paired with the contract behind ``msisdn`` (or the reference
    ``user``) for ``purpose``."""

    msisdn: str | None
    purpose: str
    user: str | None = None

    wire = _request(AppOp.PAIR, optional("msisdn", MSISDN),
                    WireField("purpose", PURPOSE_NAME), optional("user", USER_REF),
                    rule="pair-request")

    def __post_init__(self) -> None:
        _exactly_one(self, "msisdn", "user", "pair")


@dataclass(frozen=True, slots=True)
class UnpairRequest(WireMessage):
    """An app ends a pairing, named by its id or by the number it was made with."""

    msisdn: str | None = None
    pairing: str | None = None

    wire = _request(AppOp.UNPAIR, optional("msisdn", MSISDN),
                    optional("pairing", REF_ID), rule="unpair-request")

    def __post_init__(self) -> None:
        _exactly_one(self, "msisdn", "pairing", "unpair")


@dataclass(frozen=True, slots=True)
class EventsSinceRequest(WireMessage):
    """An app asks for its events with a sequence number above ``seq`` (its cursor)."""

    seq: int
    limit: int = 100

    wire = _request(AppOp.EVENTS_SINCE, optional("limit", UInt(), 100),
                    WireField("seq", UInt()),
                    rule="events-since-request")

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_EVENTS_PAGE:
            raise ValidationError(f"limit must be 1 to {MAX_EVENTS_PAGE}", field="limit")


AppRequest = DevicesRequest | PairRequest | UnpairRequest | EventsSinceRequest

APP_REQUESTS: dict[str, type[AppRequest]] = {
    AppOp.DEVICES: DevicesRequest, AppOp.PAIR: PairRequest, AppOp.UNPAIR: UnpairRequest,
    AppOp.EVENTS_SINCE: EventsSinceRequest,
}


def _op(msg: Mapping[str, Any]) -> Any:
    op = msg.get("op", MISSING)
    if op is MISSING:
        raise ValidationError("missing field 'op'", field="op")
    return expect(op, str, "op")


def _by_op(msg: Mapping[str, Any], kinds: Mapping[str, type[R]]) -> R:
    op = _op(msg)
    kind = kinds.get(op)
    if kind is None:
        raise ValidationError(f"unknown operation {op!r}", field="op")
    return kind.from_wire(msg)


def parse_app_request(msg: Mapping[str, Any]) -> AppRequest:
    """Validate an app request map and return the typed request for its ``op``."""
    return _by_op(msg, APP_REQUESTS)


# --- a user agent's requests -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConsentListRequest(WireMessage):
    """The user agent asks for the open prompts and granted consents of its contract."""

    wire = _request(UserOp.CONSENT_LIST, rule="consent-list-request")


@dataclass(frozen=True, slots=True)
class ConsentAnswerRequest(WireMessage):
    """The user approves or denies the consent prompt ``prompt``."""

    prompt: str
    decision: Decision

    wire = _request(UserOp.CONSENT_ANSWER,
                    WireField("decision", Choice(Decision)),
                    WireField("prompt", REF_ID),
                    rule="consent-answer-request")


@dataclass(frozen=True, slots=True)
class ConsentWithdrawRequest(WireMessage):
    """The user withdraws consent: ends the pairing ``pairing``, or every one of ``app``."""

    pairing: str | None = None
    app: str | None = None

    wire = _request(UserOp.CONSENT_WITHDRAW,
                    optional("pairing", REF_ID), optional("app", REF_ID),
                    rule="consent-withdraw-request")

    def __post_init__(self) -> None:
        _exactly_one(self, "pairing", "app", "consent-withdraw")


UserRequest = ConsentListRequest | ConsentAnswerRequest | ConsentWithdrawRequest

USER_REQUESTS: dict[str, type[UserRequest]] = {
    UserOp.CONSENT_LIST: ConsentListRequest, UserOp.CONSENT_ANSWER: ConsentAnswerRequest,
    UserOp.CONSENT_WITHDRAW: ConsentWithdrawRequest,
}


def parse_user_request(msg: Mapping[str, Any]) -> UserRequest:
    """Validate a user agent's request map and return the typed request for its ``op``."""
    return _by_op(msg, USER_REQUESTS)


# --- the operator's requests ---------------------------------------------------------------

class Holder(Text):
    """The contract holder's name: printable, not blank."""

    __slots__ = ()

    def decode(self, value: Any, key: str) -> str:
        if not super().decode(value, key).strip():
            raise ValidationError("field 'holder' must not be empty", field=key)
        return value  # type: ignore[no-any-return]


def _msisdn_item(value: Any, key: str) -> str:
    return validate_msisdn(value, field=key)


@dataclass(frozen=True, slots=True)
class OperatorRequest(WireMessage):
    """One operator data change; which fields are set depends on ``op``.

    ``add-contract``: contract, holder, msisdns; ``add-number``/``port-in``: msisdn,
    contract; ``remove-number``: msisdn; ``add-subscription``: iccid, imsi, contract and
    optionally msisdn; ``remove-subscription``: iccid; ``port-out``: msisdn, operator
    (the id of the operator the number moved to).
    """

    op: OperatorOp
    contract: str | None = None
    holder: str | None = None
    msisdn: str | None = None
    msisdns: tuple[str, ...] = ()
    iccid: str | None = None
    imsi: str | None = None
    operator: str | None = None

    # Every field any operation uses; VARIANTS picks each operation's.
    wire = WireTable(
        WireField("op", Choice(OperatorOp, "unknown operation {value!r}")),
        optional("contract", REF_ID),
        optional("holder", Holder(max_len=200)),
        optional("msisdn", MSISDN),
        optional("msisdns", Listing(_msisdn_item, MAX_NUMBERS, "numbers"), (),
                 when=lambda r: r.op is OperatorOp.ADD_CONTRACT),
        optional("iccid", Identifier(validate_iccid)),
        optional("imsi", Identifier(validate_imsi)),
        optional("operator", REF_ID),
        rule="operator-request", closed=True)

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> OperatorRequest:
        op = cls.wire.field("op").kind.decode(_op(msg), "op")
        return cls(**OPERATOR_VARIANTS[op].values(msg))


def _variant(required: tuple[str, ...], optional: tuple[str, ...] = ()) -> WireTable:
    return OperatorRequest.wire.select(("op", *required), optional)


OPERATOR_VARIANTS: dict[OperatorOp, WireTable] = {
    OperatorOp.ADD_CONTRACT: _variant(("contract", "holder"), ("msisdns",)),
    OperatorOp.ADD_NUMBER: _variant(("msisdn", "contract")),
    OperatorOp.PORT_IN: _variant(("msisdn", "contract")),
    OperatorOp.REMOVE_NUMBER: _variant(("msisdn",)),
    OperatorOp.ADD_SUBSCRIPTION: _variant(("iccid", "imsi", "contract"), ("msisdn",)),
    OperatorOp.REMOVE_SUBSCRIPTION: _variant(("iccid",)),
    OperatorOp.PORT_OUT: _variant(("msisdn", "operator")),
}
"""Each operation's fields: required, then optional."""


def parse_operator_request(msg: Mapping[str, Any]) -> OperatorRequest:
    """Validate an operator request map; raise ValidationError naming the bad field."""
    return OperatorRequest.from_wire(msg)
