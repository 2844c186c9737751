"""The attack suite against a deployment with TLS, logins, ACLs and a registry requiring
signed registrations: nobody gets in, and every refusal is on record."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_bridge.brokerconf import find_dynsec_plugin
from mps_bench.attacks import run_attacks

EXPECTED = {
    "app-without-consent", "app-other-contract", "foreign-reply-topic",
    "foreign-events-subscription", "foreign-register-topic", "user-other-contract",
    "foreign-subscription", "claimed-eid", "forged-signature", "unsigned",
    "replayed-registration", "oversized-registration", "deeply-nested-registration",
    "oversized-app-request", "deeply-nested-app-request", "anonymous-login",
    "wrong-password",
    # The broker configuration: the ACL mode, the registry's group, client ids, sessions.
    "file-acl-mode", "join-group-requests-tracker", "join-group-registrations-tracker",
    "join-group-requests-b", "join-group-registrations-b",
    "client-id-takeover-bridge-id", "client-id-takeover-bridge-username",
    "client-id-takeover-device-id", "client-id-takeover-device-username",
    "session-hijack-bridge",
    # What a registration proves (an installation, the operator's IMSI, one device per
    # profile, a sequence number within its window), and the broker's packet limit.
    "unproven-subscription", "foreign-contract-iccid", "second-device-same-iccid",
    "device-sent-imsi", "forged-installation-result", "sequence-number-max",
    "sequence-number-jump", "oversize-packet",
    # No enumeration before consent, and topics and sessions of others.
    "enumeration-devices", "enumeration-unpair", "enumeration-pair",
    "enumeration-devices-pending", "linked-numbers", "enumeration-unpair-pending",
    "foreign-prompt-answer", "app-as-other-app", "app-registers-device",
    "foreign-replies-subscription", "session-hijack-device",
}


def test_the_attack_suite_lets_nobody_in(tmp_path: Path) -> None:
    if find_dynsec_plugin() is None:
        pytest.skip("the suite's subscription refusals need Mosquitto's dynsec plugin")
    report = run_attacks(tmp_path, acl="dynsec", smdp_sessions=0)
    by_name = {r.name: r for r in report.results}
    assert set(by_name) == EXPECTED
    assert report.let_in == 0, [r.to_json() for r in report.results if not r.refused]
    assert report.unrecorded == []
    # No attack knocked the registry or an owner off by logging in as them (MQTT v5
    # 3.1.4-3: the broker closes the older connection of a client id).
    assert report.owners_closed == []
    # The registry's refusals carry the stable code each attack deserves.
    codes = {name: r.outcome.split("/")[-1] for name, r in by_name.items()
             if r.by == "registry" and "/" in r.outcome and " " not in r.outcome}
    assert codes == {
        "app-without-consent": "denied", "app-other-contract": "denied",
        "foreign-subscription": "denied", "claimed-eid": "bad-request",
        "forged-signature": "bad-signature", "unsigned": "signature-required",
        "replayed-registration": "replay", "oversized-registration": "too-large",
        "deeply-nested-registration": "too-large", "oversized-app-request": "too-large",
        "deeply-nested-app-request": "too-large", "unproven-subscription": "denied",
        "foreign-contract-iccid": "denied", "second-device-same-iccid": "denied",
        "device-sent-imsi": "denied", "sequence-number-max": "replay",
        "sequence-number-jump": "replay", "foreign-prompt-answer": "not-found"}
    # Before consent a customer's, a stranger's and a ported number answer alike.
    for name in ("enumeration-devices", "enumeration-unpair", "enumeration-pair",
                 "enumeration-devices-pending", "enumeration-unpair-pending"):
        assert " for all; " in by_name[name].outcome, by_name[name].outcome
    assert by_name["foreign-reply-topic"].record == "audit log"
    assert by_name["foreign-events-subscription"].outcome.startswith(
        "SUBACK reason codes 0x87, 0x87")
    assert {r.record for r in report.results if r.by == "broker"} == {
        "broker log", "reason code to the client"}


@pytest.mark.slow
def test_the_smdp_floods_stop_no_download(tmp_path: Path) -> None:
    from mps_bench.smdp_attacks import run_smdp_attacks

    results = run_smdp_attacks(tmp_path, sessions=500, slow=200)
    assert [r.name for r in results] == ["smdp-session-exhaustion", "smdp-slow-connections"]
    assert all(r.refused for r in results), [r.to_json() for r in results]
