"""The user agent's side: see consent prompts, approve or deny them, withdraw consent.

    with ConsentClient("mqtt://broker:1883", "C-1001") as user:
        for prompt in user.consent().prompts:
            print(prompt.app_name, "asks for", prompt.purpose)
            user.approve(prompt.prompt)

The registry keeps the contract's open prompts as a retained message on
``users/{contract}/consent`` (so an agent that connects later still sees them; see
:meth:`ConsentClient.watch_prompts`) and answers requests on ``users/{contract}/requests``.
Any MQTT client allowed on those topics can do the same.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from mps_mqtt.client import DEFAULT_RETRY, BrokerURL, Retry
from mps_sdk.client import REPLY_LIMIT, RegistryClient
from mps_sdk.errors import BadReplyError, PairingTimeoutError
from mps_sdk.settle import answered
from mps_wire.codec import decode, encode
from mps_wire.errors import WireError
from mps_wire.messages import (
    ConsentAnswerRequest,
    ConsentListRequest,
    ConsentWithdrawRequest,
    Decision,
)
from mps_wire.signin import SignInCode
from mps_wire.topics import Topics, check_level

__all__ = ["ConsentClient", "ConsentState", "Grant", "Prompt"]

#: Prompts whose pairing a client remembers (see :meth:`ConsentClient.prompt_pairing`).
MAX_PROMPTS_KEPT = 10_000


def _field(msg: Mapping[str, Any], key: str, typ: type) -> Any:
    value = msg.get(key)
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        raise BadReplyError(f"the registry sent a consent entry without a valid {key!r}")
    return value


@dataclass(frozen=True, slots=True)
class Prompt:
    """A consent prompt: ``app`` asks to pair for ``purpose`` and would see ``fields``."""

    prompt: str
    pairing: str
    app: str
    app_name: str
    trust: str
    purpose: str
    fields: tuple[str, ...]
    created_at: int
    expires_at: int

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Prompt:
        fields = _field(msg, "fields", list)
        return cls(prompt=_field(msg, "prompt", str), pairing=_field(msg, "pairing", str),
                   app=_field(msg, "app", str), app_name=_field(msg, "app_name", str),
                   trust=_field(msg, "trust", str), purpose=_field(msg, "purpose", str),
                   fields=tuple(str(f) for f in fields),
                   created_at=_field(msg, "created_at", int),
                   expires_at=_field(msg, "expires_at", int))


@dataclass(frozen=True, slots=True)
class Grant:
    """A consent in force: ``app`` is paired for ``purpose`` since ``since`` (ms)."""

    pairing: str
    app: str
    app_name: str
    trust: str
    purpose: str
    consent: str
    since: int

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> Grant:
        return cls(pairing=_field(msg, "pairing", str), app=_field(msg, "app", str),
                   app_name=_field(msg, "app_name", str), trust=_field(msg, "trust", str),
                   purpose=_field(msg, "purpose", str), consent=_field(msg, "consent", str),
                   since=_field(msg, "since", int))


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A contract's open prompts and the consents in force."""

    contract: str
    prompts: tuple[Prompt, ...]
    granted: tuple[Grant, ...]

    @classmethod
    def from_wire(cls, msg: Mapping[str, Any]) -> ConsentState:
        prompts = _field(msg, "prompts", list)
        granted = msg.get("granted", [])
        if not isinstance(granted, list) or not all(isinstance(p, Mapping)
                                                    for p in (*prompts, *granted)):
            raise BadReplyError("the registry sent consent entries that are not maps")
        return cls(contract=_field(msg, "contract", str),
                   prompts=tuple(Prompt.from_wire(p) for p in prompts),
                   granted=tuple(Grant.from_wire(g) for g in granted))


class ConsentClient(RegistryClient):
    """The user agent of one contract: the user's answers to consent prompts.

    Same connection options and errors as :class:`~mps_sdk.client.PairingClient`;
    an unknown or expired prompt raises NotFoundError (``reason`` in its message).
    """

    def __init__(self, broker: str | BrokerURL, contract: str, *,
                 topics: Topics | None = None, timeout: float = 10.0,
                 client_id: str | None = None, retry: Retry | None = DEFAULT_RETRY) -> None:
        super().__init__(broker, topics=topics, timeout=timeout, client_id=client_id,
                         retry=retry)
        self.contract = check_level(contract, "contract id")
        # The pairing of every prompt seen, to confirm an answer whose reply was lost.
        self._prompts: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ConsentClient({str(self.broker)!r}, {self.contract!r})"

    def __enter__(self) -> ConsentClient:
        self.connect()
        return self

    def _requests_topic(self) -> str:
        return self.topics.user_requests(self.contract)

    def _replies_topic(self) -> str:
        return self.topics.user_replies(self.contract)

    def consent(self) -> ConsentState:
        """The contract's open prompts and granted consents, from the registry."""
        reply = self._request(encode(ConsentListRequest().to_wire()))
        return self._seen(ConsentState.from_wire(reply.body))

    def _seen(self, state: ConsentState) -> ConsentState:
        if len(self._prompts) > MAX_PROMPTS_KEPT:
            self._prompts.clear()
        self._prompts.update((p.prompt, p.pairing) for p in state.prompts)
        return state

    def prompt_pairing(self, prompt: str) -> str | None:
        """The pairing of a prompt this client has seen, if any."""
        return self._prompts.get(prompt)

    def approve(self, prompt: str, *, devices: Sequence[str] | None = None,
                fields: Sequence[str] | None = None) -> str:
        """Approve the prompt: its app is paired and receives every device, or only the
        ``devices`` (EIDs) chosen, showing only the ``fields`` chosen (None: all its trust
        level allows). Returns the pairing id."""
        return self._answer(prompt, Decision.APPROVE,
                            devices=None if devices is None else tuple(devices),
                            fields=None if fields is None else tuple(fields))

    def deny(self, prompt: str) -> str:
        """Deny the prompt: its app gets ``pairing-denied``. Returns the pairing id."""
        return self._answer(prompt, Decision.DENY)

    def _answer(self, prompt: str, decision: Decision, *,
                devices: tuple[str, ...] | None = None,
                fields: tuple[str, ...] | None = None) -> str:
        check_level(prompt, "prompt id")
        # Idempotent: a repeat that finds the prompt answered as asked is the answer.
        settle = partial(answered, self, prompt, decision is Decision.APPROVE)
        reply = self._request(encode(ConsentAnswerRequest(prompt, decision, devices,
                                                          fields).to_wire()),
                              settle=settle)
        pairing = reply.body.get("pairing")
        if not isinstance(pairing, str):
            raise BadReplyError("the registry's answer names no pairing")
        return pairing

    def withdraw(self, *, app: str | None = None, pairing: str | None = None) -> list[str]:
        """Withdraw consent from an app (every pairing of it) or for one pairing; returns
        the pairings ended. Their apps get ``pairing-ended``."""
        try:
            request = ConsentWithdrawRequest(pairing=pairing, app=app)
        except WireError as exc:
            raise ValueError(exc.message) from exc
        reply = self._request(encode(request.to_wire()))
        ended = reply.body.get("ended")
        if not isinstance(ended, list) or not all(isinstance(p, str) for p in ended):
            raise BadReplyError("the registry's answer lists no ended pairings")
        return list(ended)

    def watch_prompts(self, *, timeout: float | None = None) -> Iterator[tuple[Prompt, ...]]:
        """The open prompts each time they change, starting with the retained state.

        Reads the consent topic; ends after ``timeout`` seconds without a change.
        """
        topic = self.topics.user_consent(self.contract)
        inbox = self._listen(topic)
        newest = -1
        try:
            while True:
                try:
                    raw = inbox.get(timeout=timeout)
                except queue.Empty:
                    return
                if not raw:
                    continue  # a cleared retained message
                try:
                    msg = decode(raw, max_size=REPLY_LIMIT)
                except WireError:
                    continue
                revision = msg.get("rev")
                if not isinstance(revision, int) or revision <= newest:
                    continue  # an older snapshot published late by another bridge
                newest = revision
                yield self._seen(ConsentState.from_wire({**msg, "granted": []})).prompts
        finally:
            self._unlisten(topic, inbox)

    def wait_for_prompt(self, *, app: str | None = None, timeout: float = 10.0) -> Prompt:
        """The first open prompt (of ``app``, if given) seen on the consent topic."""
        deadline = time.monotonic() + timeout
        for prompts in self.watch_prompts(timeout=timeout):
            for prompt in prompts:
                if app is None or prompt.app == app:
                    return prompt
            if time.monotonic() > deadline:
                break
        raise PairingTimeoutError(f"no consent prompt{' of ' + app if app else ''} "
                                  f"within {timeout:g} s")

    def sign_in_code(self, *, timeout: float = 10.0) -> SignInCode:
        """The consent page's one-time code the operator sent to the user's number (its
        text message, on the user's ``sign-in`` topic, kept there until it expires)."""
        topic = self.topics.user_sign_in(self.contract)
        inbox = self._listen(topic)
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    raw = inbox.get(timeout=left)
                except queue.Empty:
                    break
                try:
                    return SignInCode.from_wire(decode(raw, max_size=REPLY_LIMIT))
                except WireError:
                    continue  # a cleared message, or not a code
        finally:
            self._unlisten(topic, inbox)
        raise PairingTimeoutError(f"no sign-in code within {timeout:g} s: ask for one on "
                                  "the consent page")
