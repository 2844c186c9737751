"""Attacks on what a registration proves and on what an app may learn before consent.

Registrations (issue item: installations required): a subscription without an
installation record, another contract's profile, a profile another registered device holds,
a forged SM-DP+ installation result, an IMSI the operator did not issue, a sequence
number at the top of its range (2^63-1) or beyond the window, a packet above the broker's
``max_packet_size``. Each is sent by a device holding its own valid key; each would file
the device under a contract it does not hold, or lock it out, were the defence gone.

Enumeration (no answer tells a customer's number from a stranger's or a ported one
before consent): ``pair``, ``devices`` and ``unpair`` for a customer's number, a number
nobody has and a number of another operator's range answer with the same shape; two
numbers of one contract get references that do not link them. The answers' times are
reported (medians of a few requests) beside the shapes.

Topics and sessions: a user agent answering another contract's prompt, an app acting as
another app, an app registering a device, a device reading another's replies and resuming
another's session.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from broker_bridge.model import OtherOperator, Subscription
from broker_bridge.registry.registrations import MAX_SEQ, SEQ_WINDOW
from mps_bench.rawclient import RawClient
from mps_mqtt.client import connect, disconnect, new_client
from mps_wire import codec
from mps_wire.messages import InstallationOutcome, InstallationResult

if TYPE_CHECKING:
    from mps_bench.attacks import AttackResult, _Attacks

#: Nobody's number, and one in another operator's range (see the deployment).
STRANGER = "+4915199999999"
PORTED = "+4917212345678"
#: Lena's second number.
LENA_SECOND = "+4917098765433"
#: A subscription of Paul's contract that no installation record puts on any eUICC.
UNPROVEN_SUB = 4
#: Above the broker's max_packet_size (256 KiB).
OVERSIZE = 300 * 1024


def _result(*args: Any, **kwargs: Any) -> AttackResult:
    from mps_bench.attacks import AttackResult

    return AttackResult(*args, **kwargs)


def run_identity_attacks(attacks: _Attacks) -> None:
    """Append every attack of this module to ``attacks.report``."""
    _registrations(attacks)
    _sequence_numbers(attacks)
    _enumeration(attacks)
    _topics(attacks)
    attacks.report.results.append(_oversize(attacks))
    attacks.report.results.append(_device_session(attacks))


# --- registrations -------------------------------------------------------------------------

def _registrations(attacks: _Attacks) -> None:
    from mps_bench.attacks import LENA, PAUL, device, iccid

    dep = attacks.dep
    a1, c2 = device(1), device(2)
    dep.store.upsert_subscription(Subscription(iccid(UNPROVEN_SUB),
                                               f"26201{UNPROVEN_SUB:010d}", None, PAUL))
    before = len(dep.store.devices_of_contract(PAUL)), len(dep.store.devices_of_contract(LENA))
    attacks.registry_refusal(
        "unproven-subscription", "a device registers with a profile of the contract that no "
        "SM-DP+ installation record or operator binding puts on its eUICC",
        f"device:{c2.device_id}",
        lambda: attacks.register("c", device(2, sub=UNPROVEN_SUB, seq=10)), "denied")
    attacks.registry_refusal(
        "foreign-contract-iccid", "a device registers with another contract's profile "
        "(installed on that contract's device)", f"device:{c2.device_id}",
        lambda: attacks.register("c", device(2, sub=9, seq=11)), "denied")
    attacks.registry_refusal(
        "second-device-same-iccid", "a second device claims the profile a registered "
        "device holds", f"device:{c2.device_id}",
        lambda: attacks.register("c", device(2, sub=1, seq=12)), "denied")
    attacks.registry_refusal(
        "device-sent-imsi", "a device registers its own profile with an IMSI the operator "
        "did not issue (another contract's)", f"device:{a1.device_id}",
        lambda: attacks.register("a", device(1, seq=5, imsi="262010000000009",
                                             ip=("10.9.9.9",))), "denied")
    forged = InstallationResult(
        seq=99, eid=c2.device_id, iccid=iccid(1), imsi="262010000000001",
        result=InstallationOutcome.INSTALLED, transaction="txn-forged",
        matching_id="forged", smdp="smdp.example", ts=1_700_000_000_000, pir=b"\x00",
        euicc_certificate=b"\x00", eum_certificate=b"\x00")
    attacks.publish_refusal(
        "forged-installation-result", "a device publishes an SM-DP+ installation result "
        "moving another device's profile onto its eUICC", "c",
        dep.topics.operator("installations"), codec.encode(forged.to_wire()))
    after = len(dep.store.devices_of_contract(PAUL)), len(dep.store.devices_of_contract(LENA))
    stored = dep.store.device(a1.device_id)
    if after != before or stored is None or stored.iccid != a1.iccid or \
            stored.imsi != "262010000000001":
        raise RuntimeError(f"a refused registration changed the registry: {after} devices "
                           f"(were {before}), device A {stored}")


def _sequence_numbers(attacks: _Attacks) -> None:
    from mps_bench.attacks import device

    a1 = device(1)
    last = attacks.dep.store.last_registration(a1.device_id)
    top = 0 if last is None else last[0]
    attacks.registry_refusal(
        "sequence-number-max", "a registration with sequence number 2^63-1, which would "
        "lock the device out of every number below", f"device:{a1.device_id}",
        lambda: attacks.register("a", device(1, seq=MAX_SEQ, ip=("10.9.9.9",),
                                             ts=1_700_000_009_999)), "replay")
    attacks.registry_refusal(
        "sequence-number-jump", "a registration whose sequence number jumps beyond the "
        "window", f"device:{a1.device_id}",
        lambda: attacks.register("a", device(1, seq=top + SEQ_WINDOW + 1,
                                             ip=("10.9.9.9",))), "replay")
    # Not locked out: the next number still registers.
    fine = attacks.register("a", device(1, seq=top + 1, ip=("10.9.9.9",)))
    if fine is None or fine.get("status") != "ok":
        raise RuntimeError(f"device A was locked out by a refused sequence number: {fine}")


# --- enumeration ---------------------------------------------------------------------------

def _shape(reply: dict[str, Any] | None) -> tuple[Any, ...]:
    """What an app could tell numbers apart by: everything but ids and times."""
    if reply is None:
        return ("no reply",)
    return (reply.get("status"), reply.get("code"), reply.get("reason"),
            reply.get("message"), reply.get("state"), tuple(sorted(reply)),
            len(str(reply.get("contract", ""))), len(str(reply.get("pairing", ""))))


def _timed(attacks: _Attacks, msg: dict[str, Any], count: int
           ) -> tuple[dict[str, Any] | None, float]:
    """The first reply to ``msg`` from the health app and the median time (ms) of
    ``count`` such requests."""
    times, replies = [], []
    for _ in range(count):
        started = time.perf_counter()
        replies.append(attacks.app_request("health", msg))
        times.append((time.perf_counter() - started) * 1000)
    return replies[0], statistics.median(times)


def _told(reply: dict[str, Any] | None) -> bool:
    """Whether a reply tells where a number is served, or that nobody has it."""
    return reply is not None and (reply.get("status") == "redirect" or (
        reply.get("code") == "not-found" and reply.get("reason") != "not-paired"))


def _alike(attacks: _Attacks, name: str, description: str, op: str,
           extra: dict[str, Any]) -> None:
    from mps_bench.attacks import LENA_MSISDN

    mark = attacks._mark()
    numbers = {"customer": LENA_MSISDN, "stranger": STRANGER, "ported": PORTED}
    # pair and unpair change what they answer about: one each; devices a few times.
    answers = {k: _timed(attacks, {"op": op, "msisdn": n, **extra}, 5 if op == "devices" else 1)
               for k, n in numbers.items()}
    shapes = {k: _shape(reply) for k, (reply, _ms) in answers.items()}
    alike = len(set(shapes.values())) == 1 and answers["customer"][0] is not None
    leaked = any(_told(reply) for reply, _ms in answers.values())
    status = answers["customer"][0] or {}
    outcome = (f"{status.get('status')}/{status.get('code') or status.get('state')} for all; "
               if alike else f"differ: {shapes}; ") + ", ".join(
        f"{k} {ms:.1f} ms" for k, (_r, ms) in answers.items())
    attacks.report.results.append(_result(
        name, description, alike and not leaked, "registry", outcome[:120],
        attacks._audited(mark, "app:health")))


def _enumeration(attacks: _Attacks) -> None:
    from mps_bench.attacks import LENA, LENA_MSISDN

    dep = attacks.dep
    dep.store.upsert_number(LENA_SECOND, LENA)
    dep.store.upsert_operator(OtherOperator("other", "Other Mobile",
                                            "mqtt://other.example:1883",
                                            number_prefixes=(PORTED[:6],)))
    _alike(attacks, "enumeration-devices", "before consent, a verified app asks for the "
           "devices of a customer's, nobody's and a ported number", "devices", {})
    _alike(attacks, "enumeration-unpair", "a verified app unpairs from numbers it never "
           "paired with: a customer's, nobody's, a ported one", "unpair", {})
    _alike(attacks, "enumeration-pair", "a verified app asks to pair with a customer's, "
           "nobody's and a ported number, to learn which is a customer", "pair",
           {"purpose": "health-monitoring"})
    _alike(attacks, "enumeration-devices-pending", "the same app asks for the devices of "
           "the three numbers while its requests wait", "devices", {})
    mark = attacks._mark()
    second = attacks.app_request("health", {"op": "pair", "msisdn": LENA_SECOND,
                                            "purpose": "health-monitoring"}) or {}
    first = attacks.app_request("health", {"op": "pair", "msisdn": LENA_MSISDN,
                                           "purpose": "health-monitoring"}) or {}
    refs = first.get("contract"), second.get("contract")
    linked = refs[0] is None or refs[0] == refs[1]
    attacks.report.results.append(_result(
        "linked-numbers", "before consent, an app pairs with two numbers of one contract to "
        "link them by their contract reference", not linked, "registry",
        "two different references" if not linked else f"references {refs}",
        attacks._audited(mark, "app:health")))
    _alike(attacks, "enumeration-unpair-pending", "the app unpairs its waiting requests "
           "for the three numbers", "unpair", {})


# --- topics and sessions -------------------------------------------------------------------

def _topics(attacks: _Attacks) -> None:
    from mps_bench.attacks import LENA, LENA_MSISDN, PAUL, device

    dep, t = attacks.dep, attacks.t
    asked = attacks.app_request("health", {"op": "pair", "msisdn": LENA_MSISDN,
                                           "purpose": "health-monitoring"}) or {}
    pairing = dep.store.pairing(str(asked.get("pairing")))
    if pairing is None or pairing.prompt_id is None or pairing.contract_id != LENA:
        raise RuntimeError(f"the health app's request to Lena made no prompt: {asked}")
    prompt = pairing.prompt_id
    attacks.registry_refusal(
        "foreign-prompt-answer", "a user agent approves a consent prompt of another "
        "contract, pairing an app with someone else's devices", f"user:{PAUL}",
        lambda: attacks.c["paul"].request(t.user_requests(PAUL), codec.encode(
            {"op": "consent-answer", "prompt": prompt, "decision": "approve"}),
            t.user_replies(PAUL)), "not-found")
    attacks.publish_refusal(
        "app-as-other-app", "an app publishes on the requests topic of a partner app with "
        "standing consent", "health", t.app_requests("care"),
        codec.encode({"op": "devices", "msisdn": LENA_MSISDN}))
    attacks.publish_refusal(
        "app-registers-device", "an app publishes a registration on a device's topic",
        "health", t.device_register(device(5).device_id), codec.encode(device(5).to_wire()))
    thief = attacks.c["c"]
    code = thief.subscribe(t.device_reply(device(1).device_id))
    thief.drain(0.05)
    attacks.register("a", device(1, seq=_last_seq(attacks), ip=("10.9.9.9",)))
    stolen = [m for m in thief.drain(0.3) if m[0] == t.device_reply(device(1).device_id)]
    attacks.report.results.append(_result(
        "foreign-replies-subscription", "a device subscribes to another device's replies",
        not stolen, "broker", f"SUBACK reason code 0x{code:02x}, {len(stolen)} delivered",
        recorded=code >= 0x80, record="reason code to the client"))


def _last_seq(attacks: _Attacks) -> int:
    from mps_bench.attacks import device

    last = attacks.dep.store.last_registration(device(1).device_id)
    return 1 if last is None else last[0]


def _oversize(attacks: _Attacks) -> AttackResult:
    """An app publishes a request above the broker's max_packet_size (MQTT v5 3.1.2.11.4:
    a packet above the limit is a protocol error, the connection is closed)."""
    intruder = RawClient(attacks.dep.url("tracker"))
    try:
        try:
            code = intruder.publish(attacks.t.app_requests("tracker"), b"\xa0" * OVERSIZE,
                                    timeout=3)
            outcome = f"PUBACK reason code 0x{code:02x}"
        except TimeoutError:
            code, outcome = 0x95, "no PUBACK: the broker closed the connection"
        connected = intruder.client.is_connected()
    finally:
        intruder.close()
    refused = code >= 0x80
    return _result("oversize-packet", f"an app publishes a {OVERSIZE // 1024} KiB request "
                   "(above max_packet_size)", refused, "broker",
                   outcome + ("" if connected else ", disconnected"), recorded=refused,
                   record="broker log")


def _device_session(attacks: _Attacks) -> AttackResult:
    """A device resumes another device's persistent session (its agent's client id,
    clean start off) hoping to be handed that device's replies."""
    from mps_bench.attacks import device

    a1 = device(1)
    got: list[bytes] = []
    client = new_client(f"mps-dev-{a1.device_id}", persistent=True)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(bytes(msg.payload))

    client.on_message = on_message
    try:
        # Device B: device C's login would close device C's own connection.
        connect(client, attacks.dep.url("b"), timeout=5, persistent=True)
        answered = attacks.register("a", device(1, seq=_last_seq(attacks),
                                                ip=("10.9.9.9",)))
        time.sleep(0.3)
    finally:
        disconnect(client)
    refused = not got and answered is not None
    return _result("session-hijack-device", "a device resumes another device's persistent "
                   "session (mps-dev-<EID>, clean start off)", refused, "broker",
                   f"{len(got)} of device A's messages received; device A "
                   + ("answered" if answered is not None else "not answered"),
                   recorded=not got, record="broker log")
