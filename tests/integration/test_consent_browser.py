"""The consent page in a real browser: Debian's chromium, headless, driven by Selenium
through chromedriver, against a real bridge on a real Mosquitto.

Paul signs in with the code the operator sends to his number (read from his MQTT topic),
approves the health app for some devices and fields, and the app, over MQTT, sees
exactly that; then he ends the pairing and the app is told. The pages need no script:
every step is a plain form. Screenshots go to ``out/browser/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_bridge.registry import Registry
from broker_bridge.storage import SqliteStore
from consent_web.server import PageServer
from consent_web.sms import MqttTexts, read_code
from mps_demo.browser import arrive, headless_chromium, missing
from mps_mqtt.client import BrokerURL
from mps_sdk.client import PairingClient
from mps_testbed.stack import Mosquitto
from mps_wire.messages import EventKind
from mps_wire.records import Event
from mps_wire.topics import Topics
from tests.consent_support import running_page
from tests.helpers import (
    PAUL,
    PAUL_MSISDN,
    iccid_for,
    make_device,
    paul_and_apps,
    running_bridge,
)

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "browser"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "registry.db"
    with SqliteStore(path) as s:
        paul_and_apps(s, devices=0)
        registry = Registry(s)
        for n in (1, 2, 3):  # through the registry's rules: the history records them
            registry.register(make_device(n))
    return path


@pytest.fixture
def page(db: Path, mosquitto: Mosquitto, topics: Topics, tmp_path: Path
         ) -> Iterator[PageServer]:
    texts = MqttTexts(BrokerURL.parse(mosquitto.url), topics=topics)
    texts.start()
    with SqliteStore(db) as store, running_page(store, texts.send, tmp_path) as p:
        yield p
    texts.stop()


@pytest.fixture
def bridge(db: Path, mosquitto: Mosquitto, topics: Topics) -> Iterator[None]:
    with SqliteStore(db) as store, running_bridge(store, mosquitto.url, topics):
        yield


@pytest.fixture
def browser(page: PageServer, tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "tls" / "cert.pem") as driver:
        yield driver


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def sign_in(driver: Any, page: PageServer, mosquitto: Mosquitto, topics: Topics) -> None:
    from selenium.webdriver.common.by import By

    driver.get(page.url + "sign-in")
    driver.find_element(By.ID, "number").send_keys(PAUL_MSISDN)
    driver.find_element(By.ID, "send-code").click()
    message = read_code(BrokerURL.parse(mosquitto.url), PAUL, topics=topics, timeout=10)
    assert message is not None, "no code on the user's topic"
    assert message.msisdn == PAUL_MSISDN and message.code in message.text
    driver.find_element(By.ID, "code").send_keys(message.code)
    shot(driver, "1-code")
    driver.find_element(By.ID, "sign-in").click()
    arrive(driver, "/prompts")


def _next_event(health: PairingClient, since: int) -> Event:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        page = health.fetch_events(since, limit=1)
        if page.events:
            return page.events[0]
        time.sleep(0.1)
    raise AssertionError("no event within 10 s")


def tick(driver: Any, section: str, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR,
                              f'#{section} input[name="{name}"][value="{value}"]')
    if not box.is_selected():
        box.click()


@pytest.mark.usefixtures("bridge")
def test_paul_approves_a_choice_and_ends_the_pairing(
        browser: Any, page: PageServer, mosquitto: Mosquitto, topics: Topics) -> None:
    from selenium.webdriver.common.by import By

    two = [make_device(1).eid, make_device(2).eid]
    with PairingClient(mosquitto.url, "health", topics=topics, timeout=10) as health:
        start = health.fetch_events(0, limit=1).last
        asked = health.pair(PAUL_MSISDN, "health-monitoring")
        assert asked.state == "pending"
        sign_in(browser, page, mosquitto, topics)
        section = browser.find_element(By.CSS_SELECTOR, "section.card")
        prompt = section.get_attribute("id")
        assert "Health Monitor" in section.text and "verified" in section.text
        offered = {b.get_attribute("value") for b in section.find_elements(
            By.CSS_SELECTOR, 'input[name="field"]')}
        assert {"ip", "model", "capabilities"} <= offered
        assert not offered & {"eid", "imei", "iccid", "imsi"}  # never more than its trust
        for eid in two:
            tick(browser, prompt, "device", eid)
        for field in ("model", "capabilities"):
            tick(browser, prompt, "field", field)
        shot(browser, "2-choice")
        section.find_element(By.CSS_SELECTOR, "button.approve").click()
        arrive(browser, "/apps?done=approved")
        shot(browser, "3-paired")
        decision = health.wait_for_decision(asked.pairing, since=start, timeout=10)
        assert decision.kind is EventKind.PAIRING_GRANTED
        assert len(decision.devices) == 2
        for device in decision.devices:
            assert device.model.model and device.capabilities  # chosen
            assert device.ip == () and device.eid is None  # not chosen / not allowed
        # Narrow: one device less, and the address too; the app is told at once.
        card = f"pairing-{asked.pairing}"
        tick(browser, card, "field", "ip")
        browser.find_element(By.CSS_SELECTOR,
                             f'#{card} input[name="device"][value="{two[1]}"]').click()
        browser.find_element(By.CSS_SELECTOR, f"#{card} button.change").click()
        arrive(browser, "/apps?done=changed")
        sees = browser.find_element(By.CSS_SELECTOR, f"#{card} p.sees").text
        assert sees == "Sees: 1 device(s); capabilities, ip, model"
        changed = _next_event(health, decision.seq)
        assert changed.kind is EventKind.VIEW_CHANGED
        assert health.devices(PAUL_MSISDN)[0].ip  # the address is now shown
        assert len(health.devices(PAUL_MSISDN)) == 1
        browser.find_element(By.CSS_SELECTOR,
                             f"#pairing-{asked.pairing} button.end").click()
        arrive(browser, "/apps?done=ended")
        shot(browser, "4-ended")
        ended = health.wait_for_decision(asked.pairing, since=changed.seq, timeout=10)
        assert ended.kind is EventKind.PAIRING_ENDED
        browser.get(page.url + "devices")
        rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 3 and make_device(1).eid in browser.page_source
        browser.find_element(By.CSS_SELECTOR, f'a[href="/devices/{two[0]}"]').click()
        assert "registration" in browser.find_element(By.ID, "history").text
        shot(browser, "5-history")
        browser.find_element(By.ID, "sign-out").click()
        arrive(browser, "/sign-in")
        browser.get(page.url + "apps")
        arrive(browser, "/sign-in")


@pytest.mark.usefixtures("bridge")
def test_paul_approves_an_esim_delete_and_refuses_another(
        browser: Any, page: PageServer, mosquitto: Mosquitto, topics: Topics,
        db: Path) -> None:
    from selenium.webdriver.common.by import By

    with SqliteStore(db) as store:
        registry = Registry(store)
        delete = registry.request_esim(make_device(2).eid, "delete", iccid_for(2),
                                       actor="operator:test")
        disable = registry.request_esim(make_device(3).eid, "disable", iccid_for(3),
                                        actor="operator:test")
    sign_in(browser, page, mosquitto, topics)
    browser.get(page.url + "esim")
    section = browser.find_element(By.ID, f"esim-{delete.id}")
    assert "delete" in section.text and iccid_for(2) in section.text
    shot(browser, "6-esim-waiting")
    section.find_element(By.CSS_SELECTOR, "button.approve").click()
    arrive(browser, "/esim?done=esim-approved")
    browser.find_element(By.CSS_SELECTOR, f"#esim-{disable.id} button.deny").click()
    shot(browser, "7-esim-decided")
    assert browser.find_element(By.ID, "no-esim")  # nothing waits any more
    with SqliteStore(db) as store:
        states = {r.id: r.state.value for r in store.esim_requests(contract_id=PAUL)}
    assert states[disable.id] == "refused"
    assert states[delete.id] in ("approved", "sent", "done")  # the bridge takes it on
