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
    "join-group-requests-c", "join-group-registrations-c",
    "client-id-takeover-bridge-id", "client-id-takeover-bridge-username",
    "client-id-takeover-device-id", "client-id-takeover-device-username",
    "session-hijack-bridge",
}


def test_the_attack_suite_lets_nobody_in(tmp_path: Path) -> None:
    if find_dynsec_plugin() is None:
        pytest.skip("the suite's subscription refusals need Mosquitto's dynsec plugin")
    report = run_attacks(tmp_path, acl="dynsec", smdp_sessions=0)
    by_name = {r.name: r for r in report.results}
    assert set(by_name) == EXPECTED
    assert report.let_in == 0, [r.to_json() for r in report.results if not r.refused]
    assert report.unrecorded == []
    # The registry's refusals carry the stable code each attack deserves.
    codes = {name: r.outcome.split("/")[-1] for name, r in by_name.items()
             if r.by == "registry" and "/" in r.outcome}
    assert codes == {
        "app-without-consent": "denied", "app-other-contract": "denied",
        "foreign-subscription": "denied", "claimed-eid": "bad-request",
        "forged-signature": "bad-signature", "unsigned": "signature-required",
        "replayed-registration": "replay", "oversized-registration": "too-large",
        "deeply-nested-registration": "too-large", "oversized-app-request": "too-large",
        "deeply-nested-app-request": "too-large"}
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
