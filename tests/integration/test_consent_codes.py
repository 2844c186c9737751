"""The consent page's sign-in code as the operator's text message on the user's MQTT
topic: retained until the code expires (MQTT 5.0 section 3.3.2.3.3, Message Expiry
Interval), read by the user agent (``mps-user consent code``) and shown to the operator
(``mps-consent-web codes NUMBER --broker``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from broker_bridge.storage import SqliteStore
from consent_web import cli
from consent_web.signin import SignIn, SignInPolicy
from consent_web.sms import MqttTexts, read_code
from mps_mqtt.client import BrokerURL
from mps_sdk import user_cli
from mps_sdk.consent import ConsentClient
from mps_testbed.stack import Mosquitto
from mps_wire.topics import Topics
from tests.helpers import PAUL, PAUL_MSISDN, paul_and_apps


def test_the_code_reaches_the_user_agent_and_expires_with_the_code(
        mosquitto: Mosquitto, topics: Topics, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "registry.db"
    texts = MqttTexts(BrokerURL.parse(mosquitto.url), topics=topics)
    texts.start()
    try:
        with SqliteStore(db) as store:
            paul_and_apps(store, devices=1)
            SignIn(store, texts.send, policy=SignInPolicy(code_ttl=2)).request_code(
                PAUL_MSISDN, "127.0.0.1")
    finally:
        texts.stop()
    with ConsentClient(mosquitto.url, PAUL, topics=topics, timeout=5) as user:
        message = user.sign_in_code(timeout=5)  # retained: read after it was sent
    assert message.msisdn == PAUL_MSISDN and message.contract == PAUL
    assert message.code in message.text and len(message.code) == 6
    assert user_cli.main(["consent", "code", "--contract", PAUL, "--broker", mosquitto.url,
                          "--prefix", topics.prefix, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["code"] == message.code
    assert cli.main(["codes", PAUL_MSISDN, "--db", str(db), "--broker", mosquitto.url,
                     "--prefix", topics.prefix]) == 0
    assert message.text in capsys.readouterr().out
    time.sleep(2.5)
    # The broker dropped the retained message with the code's lifetime.
    assert read_code(BrokerURL.parse(mosquitto.url), PAUL, topics=topics, timeout=1) is None
