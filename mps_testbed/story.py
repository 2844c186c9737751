"""The story of figures 3 and 4 of the patent, told against a running registry.

A health app (trust level ``verified``) asks to pair with the user's number; the user
approves on the consent topic; the app receives every device of the contract at once. A
new device then joins the contract (the caller makes that happen: ``new_device``), and the
app is told without asking again. An app of lower trust is refused, and a partner app
with the operator's standing consent is answered at once with every identifier: what
each app sees follows its trust level.

:func:`run_story` plays the apps and the user's agent over MQTT and returns what each of
them saw; it needs the registry to know the apps (see ``examples/operator-demo.toml``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mps_mqtt.client import BrokerURL
from mps_sdk.client import PairingAnswer, PairingClient
from mps_sdk.consent import ConsentClient, Prompt
from mps_sdk.errors import RequestError
from mps_testbed.errors import TestbedError
from mps_wire.messages import EventKind
from mps_wire.records import DeviceRecord, Event
from mps_wire.topics import Topics


class StoryError(TestbedError):
    """The story did not go as the patent tells it; ``result`` holds what happened."""

    def __init__(self, message: str, result: StoryResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class StoryApps:
    """The apps of the story, as registered with the operator, and their purposes."""

    health: str = "health-app"
    health_purpose: str = "health-monitoring"
    lower: str | None = "fitness-tracker"
    lower_purpose: str = "fitness"
    partner: str | None = "operator-care"
    partner_purpose: str = "support"


@dataclass(slots=True)
class StoryResult:
    """What happened, step by step.

    ``granted`` are the devices the health app received when the user approved,
    ``added`` the event that announced the new device, ``lower`` the refusal of the
    lower-trust app, ``partner`` the partner app's immediate answer.
    """

    lines: list[str] = field(default_factory=list)
    prompt: Prompt | None = None
    pairing: PairingAnswer | None = None
    granted: tuple[DeviceRecord, ...] = ()
    added: Event | None = None
    lower: RequestError | None = None
    partner: PairingAnswer | None = None
    cursor: int = 0
    seconds: float = 0.0


def run_story(broker: str | BrokerURL, *, msisdn: str, contract: str,
              new_device: Callable[[], object], topics: Topics | None = None,
              apps: StoryApps | None = None, say: Callable[[str], None] = print,
              timeout: float = 30.0) -> StoryResult:
    """Tell the story against the registry behind ``broker``; return what happened.

    ``msisdn`` is the user's number and ``contract`` the contract behind it (the user's
    agent answers on its consent topic). ``new_device`` is called once the health app is
    paired and must make a new device register on that contract (the demo boots the tennis
    racket). Raises StoryError (carrying the result so far) when a step goes otherwise.
    """
    teller = _Teller(broker, apps or StoryApps(), topics=topics, say=say, timeout=timeout)
    teller.pair_and_join(msisdn, contract, new_device)
    teller.lower_asks(msisdn)
    teller.partner_asks(msisdn)
    teller.result.seconds = time.monotonic() - teller.started
    return teller.result


class _Teller:
    """The story's acts, each adding to one :class:`StoryResult`."""

    def __init__(self, broker: str | BrokerURL, cast: StoryApps, *, topics: Topics | None,
                 say: Callable[[str], None], timeout: float) -> None:
        self.broker, self.cast, self.topics = broker, cast, topics
        self.say, self.timeout = say, timeout
        self.wait = min(timeout, 10.0)
        self.result = StoryResult()
        self.started = time.monotonic()

    def tell(self, line: str) -> None:
        self.result.lines.append(line)
        self.say(line)

    def failed(self, why: str) -> StoryError:
        self.result.seconds = time.monotonic() - self.started
        return StoryError(why, self.result)

    def client(self, app: str) -> PairingClient:
        return PairingClient(self.broker, app, topics=self.topics, timeout=self.wait)

    def pair_and_join(self, msisdn: str, contract: str,
                      new_device: Callable[[], object]) -> None:
        with self.client(self.cast.health) as health, \
                ConsentClient(self.broker, contract, topics=self.topics,
                              timeout=self.wait) as user:
            self.pair_health(health, user, msisdn)
            self.device_joins(health, new_device)

    def pair_health(self, health: PairingClient, user: ConsentClient, msisdn: str) -> None:
        cast, result, timeout = self.cast, self.result, self.timeout
        start = health.fetch_events(0, limit=1).last  # earlier runs' events are history
        answer = health.pair(msisdn, cast.health_purpose)
        self.tell(f"app         {cast.health} asks to pair with {msisdn} for "
                  f"{cast.health_purpose}: {answer.state}")
        if answer.state == "pending":
            prompt = user.wait_for_prompt(app=cast.health, timeout=timeout)
            result.prompt = prompt
            self.tell(f"user        consent prompt {prompt.prompt}: {prompt.app_name} "
                      f"({prompt.trust}) would see {', '.join(prompt.fields)}")
            user.approve(prompt.prompt)
            self.tell("user        approves")
            decision = health.wait_for_decision(answer.pairing, since=start, timeout=timeout)
            if decision.kind is not EventKind.PAIRING_GRANTED:
                raise self.failed(f"the pairing was not granted: {decision.kind} "
                                  f"({decision.reason})")
            result.granted, result.cursor = decision.devices, decision.seq
        else:
            result.granted = answer.devices
            result.cursor = health.fetch_events(start).last
        result.pairing = answer
        self.tell(f"app         {cast.health} paired: sees {len(result.granted)} devices "
                  f"({_fields(result.granted)})")

    def device_joins(self, health: PairingClient, new_device: Callable[[], object]) -> None:
        """Figure 4: a device joins the contract; the paired app hears of it unasked."""
        result = self.result
        pairing = result.pairing.pairing if result.pairing is not None else None
        known = {d.device_id for d in result.granted}
        found: list[Event] = []
        done = threading.Event()

        def on_event(event: Event) -> None:
            if (event.kind is EventKind.DEVICE_ADDED and event.pairing == pairing
                    and event.device is not None and event.device.device_id not in known):
                found.append(event)
                done.set()

        watch = health.watch(on_event, since=result.cursor)
        try:
            new_device()
            self.tell("device      a new device registers on the contract")
            if not done.wait(self.timeout):
                raise self.failed(f"{self.cast.health} was not told of the new device "
                                  f"within {self.timeout:g} s")
        finally:
            watch.stop()
        result.added = found[0]
        result.cursor = found[0].seq
        self.tell(f"app         {self.cast.health} receives device-added #{found[0].seq}: "
                  f"{_describe(found[0].device)} without asking again")

    def lower_asks(self, msisdn: str) -> None:
        if self.cast.lower is None:
            return
        with self.client(self.cast.lower) as lower:
            try:
                lower.pair(msisdn, self.cast.lower_purpose)
            except RequestError as refused:
                self.result.lower = refused
                self.tell(f"app         {self.cast.lower} asks too: {refused.status.value} "
                          f"({getattr(refused, 'reason', None) or refused.code.value}); "
                          "it sees nothing")
            else:
                raise self.failed(f"{self.cast.lower} was paired although its trust level "
                                  "is lower")

    def partner_asks(self, msisdn: str) -> None:
        if self.cast.partner is None:
            return
        with self.client(self.cast.partner) as partner:
            answer = partner.pair(msisdn, self.cast.partner_purpose)
        self.result.partner = answer
        self.tell(f"app         {self.cast.partner} (partner, standing consent): "
                  f"{answer.state} at once, sees {len(answer.devices)} devices "
                  f"({_fields(answer.devices)})")


def verify_story(result: StoryResult, *, devices: int) -> list[str]:
    """Problems with a told story, for a contract that had ``devices`` devices before."""
    problems = []
    if len(result.granted) != devices:
        problems.append(f"the health app saw {len(result.granted)} devices, not {devices}")
    if any(d.eid or d.imei or d.iccid for d in result.granted):
        problems.append("the verified health app saw identifiers it may not see")
    if result.added is None:
        problems.append("the health app was not told of the new device")
    if result.partner is not None and not all(d.imei and d.eid
                                              for d in result.partner.devices):
        problems.append("the partner app did not see the identifiers it may see")
    if result.partner is not None and len(result.partner.devices) != devices + 1:
        problems.append(f"the partner app saw {len(result.partner.devices)} devices, "
                        f"not {devices + 1}")
    return problems


def _fields(records: tuple[DeviceRecord, ...]) -> str:
    if not records:
        return "nothing"
    shown = [name for name in ("eid", "imei", "iccid", "imsi", "msisdn")
             if getattr(records[0], name) is not None]
    shown += [name for name in ("ip", "capabilities") if getattr(records[0], name)]
    if records[0].model.model:
        shown.append("model")
    return "device id, " + ", ".join(shown)


def _describe(record: DeviceRecord | None) -> str:
    if record is None:
        return "?"
    model = " ".join(p for p in (record.model.manufacturer, record.model.model) if p)
    return f"{record.device_id[:12]}... {model} at {', '.join(record.ip) or '-'}"
