"""Attacks on the broker configuration itself: the ACL mode that cannot keep the
registry's group closed, joining the registry's shared subscription group (MQTT v5
4.8.2), and taking over another identity's client id or persistent session (MQTT v5
3.1.4: a second connection with a client id takes the session over).

Each is tried by clients holding real credentials (an unverified app, a device) against
the deployment of :mod:`mps_bench.attacks`; an attack is refused when the broker (or the
configuration writer) refused it *and* the owners noticed nothing: the registry still
answers every request, device A's connection stays up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from broker_bridge.brokerconf import MosquittoConfig, MosquittoConfigError
from mps_bench.rawclient import RawClient
from mps_mqtt.client import BrokerURL, connect, disconnect, new_client
from mps_wire.topics import Topics

if TYPE_CHECKING:
    from mps_bench.attacks import AttackResult, _Attacks

BRIDGE_CLIENT_ID = "bridge-one"
GROUP = "mps-bridge"


def _result(*args: Any, **kwargs: Any) -> AttackResult:
    from mps_bench.attacks import AttackResult

    return AttackResult(*args, **kwargs)


def run_broker_attacks(attacks: _Attacks, device_a_eid: str) -> None:
    """Append every attack of this module to ``attacks.report``."""
    report = attacks.report.results
    report.append(_file_mode())
    # The device intruder is device B: its credentials hold no other connection. The
    # broker names each client by its username, so an intruder logged in as device C
    # would take over device C's own connection, whose reconnection would in turn close
    # the intruder's before its SUBACK.
    for who in ("tracker", "b"):
        for label, topic in (("requests", attacks.t.all_app_requests()),
                             ("registrations", attacks.t.all_registrations())):
            report.append(_join_group(attacks, who, label, topic))
    bridge_user = attacks.dep.bridge_username
    for who, victim, name, what in (
            ("tracker", BRIDGE_CLIENT_ID, "bridge-id", "the registry's client id"),
            ("tracker", bridge_user, "bridge-username", "the registry's username as "
                                                          "client id"),
            ("b", f"mps-dev-{device_a_eid}", "device-id", "device A's agent client id"),
            ("b", device_a_eid, "device-username", "device A's username as client id")):
        report.append(_takeover(attacks, who, victim, f"client-id-takeover-{name}", what))
    report.append(_hijack(attacks, bridge_user))


def _registry_answers(attacks: _Attacks, count: int = 5) -> bool:
    """The care app's requests are all answered (none went to an intruder)."""
    return all(attacks.app_request("care", {"op": "events-since", "seq": 0}) is not None
               for _ in range(count))


def _file_mode() -> AttackResult:
    try:
        MosquittoConfig(acl="file")
    except MosquittoConfigError as exc:
        return _result("file-acl-mode", "the operator asks for Mosquitto's acl_file, which "
                       "does not check subscriptions", True, "configuration", str(exc)[:80],
                       recorded=True, record="error to the operator")
    return _result("file-acl-mode", "the operator asks for Mosquitto's acl_file", False,
                   "configuration", "written", recorded=False, record="error to the operator")


def _join_group(attacks: _Attacks, who: str, label: str, topic: str) -> AttackResult:
    intruder = RawClient(attacks.dep.url(who))
    try:
        code = intruder.subscribe(Topics.shared(GROUP, topic))
        answered = _registry_answers(attacks)
        delivered = len(intruder.drain(0.2))
    finally:
        intruder.close()
    refused = code >= 0x80 and answered and not delivered
    role = "an unverified app" if who == "tracker" else "a device"
    return _result(f"join-group-{label}-{who}", f"{role} joins the registry's shared "
                   f"subscription to all {label}", refused, "broker",
                   f"SUBACK reason code 0x{code:02x}, registry "
                   + ("answered every request" if answered else "missed requests"),
                   recorded=code >= 0x80, record="reason code to the client")


def _connected_as(attacks: _Attacks, client_id: str) -> bool:
    return any(f" as {client_id} " in line for line in attacks.broker_log().splitlines())


def _takeover(attacks: _Attacks, who: str, victim: str, name: str, what: str
              ) -> AttackResult:
    url: BrokerURL = attacks.dep.url(who)
    mark = len(attacks.broker_log())
    client = new_client(victim)
    try:
        connect(client, url, timeout=5)
        time.sleep(0.2)
    finally:
        disconnect(client)
    log = attacks.broker_log()[mark:]
    kicked = f"Client {victim} already connected" in log or f" as {victim} " in log
    answered = _registry_answers(attacks, 3)
    refused = not kicked and answered
    role = "an unverified app" if who == "tracker" else "a device"
    outcome = ("connected under its own username; the owner stayed" if refused
               else "took the client id over")
    return _result(name, f"{role} connects with "
                   f"{what}", refused, "broker", outcome, recorded=not kicked,
                   record="broker log")


def _hijack(attacks: _Attacks, bridge_user: str) -> AttackResult:
    """An app resumes the registry's persistent session (clean start off, its client
    id) hoping to be handed the requests queued for it."""
    url = attacks.dep.url("tracker")
    got: list[bytes] = []
    client = new_client(BRIDGE_CLIENT_ID, persistent=True)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(bytes(msg.payload))

    client.on_message = on_message
    try:
        connect(client, url, timeout=5, persistent=True)
        answered = _registry_answers(attacks, 3)
        time.sleep(0.3)
    finally:
        disconnect(client)
    refused = not got and answered
    return _result("session-hijack-bridge", "an unverified app resumes the registry's "
                   f"persistent session ({BRIDGE_CLIENT_ID}, clean start off)", refused,
                   "broker", f"{len(got)} of the registry's messages received; registry "
                   + ("answered" if answered else "missed requests"),
                   recorded=not got, record="broker log")

