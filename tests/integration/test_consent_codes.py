"""The consent page's sign-in code as the operator's text message on the user's MQTT
topic: retained until the code expires (MQTT 5.0 section 3.3.2.3.3, Message Expiry
Interval), read by the user agent (``mps-user consent code``) and shown to the operator
(``mps-consent-web codes NUMBER --broker``)."""

from __future__ import annotations

import json
import logging
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
from tests.integration.test_broker_config import Client as BrokerClient
from tests.integration.test_broker_config import deploy

CODE_TTL = 6


def test_the_code_reaches_the_user_agent_and_expires_with_the_code(
        mosquitto: Mosquitto, topics: Topics, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "registry.db"
    texts = MqttTexts(BrokerURL.parse(mosquitto.url), topics=topics)
    texts.start()
    try:
        with SqliteStore(db) as store:
            paul_and_apps(store, devices=1)
            # Long enough for the reads below on a busy machine; the wait at the end is
            # measured from here.
            sent = time.monotonic()
            SignIn(store, texts.send, policy=SignInPolicy(code_ttl=CODE_TTL)).request_code(
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
    time.sleep(max(0.0, sent + CODE_TTL + 0.5 - time.monotonic()))
    # The broker dropped the retained message with the code's lifetime.
    assert read_code(BrokerURL.parse(mosquitto.url), PAUL, topics=topics, timeout=1) is None


def test_only_the_user_reads_the_code_on_a_secured_broker(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The broker's ACL (dynamic security, as mps-bridge broker-config writes it): the
    # page, with a bridge identity, may publish on users/+/sign-in; Paul's user agent
    # reads his own; Lena's is refused the subscription (MQTT v5 3.9.3, reason 0x87).
    for dep in deploy(tmp_path):
        texts = MqttTexts(dep.url("bridge"))
        texts.start()
        try:
            SignIn(dep.store, texts.send).request_code(PAUL_MSISDN, "127.0.0.1")
        finally:
            texts.stop()
        message = read_code(dep.url("paul"), PAUL, timeout=5)
        assert message is not None and message.msisdn == PAUL_MSISDN
        lena = BrokerClient(dep.url("lena"))
        try:
            assert lena.subscribe(Topics().user_sign_in(PAUL)) == 0x87
        finally:
            lena.close()
        # A page given the wrong identity (a user's) is refused, and says so in its log.
        wrong = MqttTexts(dep.url("lena"))
        wrong.start()
        with caplog.at_level(logging.ERROR, logger="consent_web.sms"):
            wrong.send(PAUL, PAUL_MSISDN, "123456", int(time.time() * 1000) + 60_000)
            deadline = time.monotonic() + 5
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.05)
        wrong.stop()
        assert "refused a sign-in code" in caplog.text
