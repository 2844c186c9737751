"""The demo's act on the consent page: Paul, in a headless browser, signs in with the
code sent to his number, chooses which of his devices and which fields the health app
sees, and the app (over MQTT, through the SDK) sees exactly that.

The page runs in this process over the rig's registry file beside the rig's bridge; the
browser is the system's chromium (see :mod:`mps_demo.browser`). Without it the act is
skipped with a clear note and the rest of the demo stands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker_bridge.registry import Registry
from broker_bridge.storage import Store, store_for
from consent_web.server import Listen, PageServer
from consent_web.signin import SignIn
from consent_web.sms import MqttTexts, read_code
from consent_web.tlsfiles import self_signed
from mps_demo import browser
from mps_demo.esim_act import EsimActError, EsimTarget, run_esim_act
from mps_mqtt.client import BrokerURL
from mps_sdk.client import PairingClient
from mps_wire.messages import EventKind
from mps_wire.records import DeviceRecord

#: The fields Paul lets the health app see, in order of preference (three are chosen).
WANTED_FIELDS = ("model", "capabilities", "presence", "ip")
SHOW_FIELDS = ("ip", "capabilities", "model")


class PageActError(RuntimeError):
    """The page act did not go as told."""


@dataclass
class PageActResult:
    """What the act showed: the page's address, Paul's choice and what the app saw."""

    url: str = ""
    skipped: str | None = None
    devices: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    seen: tuple[DeviceRecord, ...] = ()
    lines: list[str] = field(default_factory=list)
    esim: str | None = None


@dataclass(frozen=True)
class PageCast:
    """Who acts: the user's contract and number, the app and its purpose."""

    contract: str
    msisdn: str
    app: str = "health-app"
    purpose: str = "health-monitoring"


@contextmanager
def consent_page(db: str, broker: str, workdir: Path
                 ) -> Iterator[tuple[PageServer, Path, Store]]:
    """The consent page over ``db``, sending codes through ``broker``; its certificate."""
    cert, key = self_signed(workdir / "page-tls")
    with ExitStack() as stack:
        store = store_for(db, create=False)
        store.open()
        stack.callback(store.close)
        texts = MqttTexts(BrokerURL.parse(broker))
        texts.start()
        stack.callback(texts.stop)
        page = PageServer(Registry(store), SignIn(store, texts.send),
                          Listen(cert=cert, key=key, port=0))
        page.start()
        stack.callback(page.stop)
        yield page, cert, store


class _Act:
    def __init__(self, driver: Any, page: PageServer, broker: str, cast: PageCast,
                 say: Callable[[str], None], shots: Path | None) -> None:
        self.driver, self.page, self.broker, self.cast = driver, page, broker, cast
        self._say, self.shots = say, shots
        self.result = PageActResult(url=page.url)

    def say(self, line: str) -> None:
        self.result.lines.append(line)
        self._say(line)

    def shot(self, name: str) -> None:
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def arrive(self, suffix: str) -> None:
        try:
            browser.arrive(self.driver, suffix)
        except browser.BrowserError as exc:
            raise PageActError(str(exc)) from exc

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def sign_in(self) -> None:
        self.driver.get(self.page.url + "sign-in")
        self.find("#number").send_keys(self.cast.msisdn)
        self.find("#send-code").click()
        message = read_code(BrokerURL.parse(self.broker), self.cast.contract, timeout=10)
        if message is None:
            raise PageActError("no sign-in code arrived on the user's topic")
        self.say(f"operator    texts a one-time code to {self.cast.msisdn} (on his MQTT "
                 "topic); the page keeps only its hash")
        self.find("#code").send_keys(message.code)
        self.find("#sign-in").click()
        self.arrive("/prompts")
        self.say("user        signs in with it")
        self.shot("1-signed-in")

    def end_earlier_pairing(self, health: PairingClient) -> None:
        """The story paired the app over MQTT for every device: Paul ends that first."""
        self.driver.get(self.page.url + "apps")
        for section in self.find_all(f'section[data-app="{self.cast.app}"]'):
            pairing = str(section.get_attribute("id")).removeprefix("pairing-")
            since = health.fetch_events(0, limit=1).last
            section.find_element("css selector", "button.end").click()
            self.arrive("/apps?done=ended")
            ended = health.wait_for_decision(pairing, since=since, timeout=15)
            self.say(f"user        ends the health app's earlier pairing (all devices) on "
                     f"the page; the app gets {ended.kind.value}")

    def approve_choice(self, health: PairingClient) -> None:
        start = health.fetch_events(0, limit=1).last
        asked = health.pair(self.cast.msisdn, self.cast.purpose)
        if asked.state != "pending":
            raise PageActError(f"the health app was not asked about: {asked.state}")
        self.say(f"app         {self.cast.app} asks to pair again: pending")
        self.driver.get(self.page.url + "prompts")
        section = self.find(f'section[data-app="{self.cast.app}"]')
        boxes = section.find_elements("css selector", 'input[name="device"]')
        for box in boxes[:2]:
            box.click()
            self.result.devices.append(str(box.get_attribute("value")))
        offered = [b for b in section.find_elements("css selector", 'input[name="field"]')]
        by_name = {str(b.get_attribute("value")): b for b in offered}
        for name in [f for f in WANTED_FIELDS if f in by_name][:3]:
            by_name[name].click()
            self.result.fields.append(name)
        self.say(f"user        on the page: {self.cast.app} (verified) may see "
                 f"{len(self.result.devices)} of his {len(boxes)} devices and "
                 f"{', '.join(self.result.fields)} (offered: {', '.join(sorted(by_name))})")
        self.shot("2-choice")
        section.find_element("css selector", "button.approve").click()
        self.arrive("/apps?done=approved")
        self.shot("3-approved")
        decision = health.wait_for_decision(asked.pairing, since=start, timeout=15)
        if decision.kind is not EventKind.PAIRING_GRANTED:
            raise PageActError(f"the pairing was not granted: {decision.kind}")
        self.result.seen = decision.devices
        self.say(f"app         {self.cast.app} paired: sees {len(decision.devices)} devices "
                 f"with {_shown(decision.devices)}")


def _shown(records: tuple[DeviceRecord, ...]) -> str:
    if not records:
        return "nothing"
    first = records[0]
    shown = [name for name in ("ip", "capabilities") if getattr(first, name)]
    if first.model.model:
        shown.append("model")
    if first.presence is not None:
        shown.append(f"presence ({first.presence.state})")
    return "device id, " + ", ".join(shown)


def run_page_act(broker: str, db: str, cast: PageCast, *, workdir: Path,
                 say: Callable[[str], None] = print, shots: Path | None = None,
                 esim: EsimTarget | None = None) -> PageActResult:
    """Play the act (and, given ``esim``, the eSIM act on that device); a result with
    ``skipped`` set when no browser can run here."""
    problem = browser.missing()
    if problem is not None:
        say(f"page        the consent page act is skipped: {problem}")
        return PageActResult(skipped=problem)
    with consent_page(db, broker, workdir) as (page, cert, store):
        say(f"page        consent page at {page.url} (HTTPS; headless chromium drives it)")
        with browser.headless_chromium(cert) as driver, \
                PairingClient(broker, cast.app, timeout=10) as health:
            act = _Act(driver, page, broker, cast, say, shots)
            act.sign_in()
            act.end_earlier_pairing(health)
            act.approve_choice(health)
            if esim is not None:
                try:
                    act.result.esim = run_esim_act(driver, page.url, store, cast.contract,
                                                   esim, say=act.say, shot=act.shot,
                                                   logs=workdir / "logs")
                except EsimActError as exc:
                    raise PageActError(str(exc)) from exc
            return act.result


def verify_page_act(result: PageActResult) -> list[str]:
    """Problems with the act: the app must see exactly Paul's choice."""
    if result.skipped is not None:
        return []
    problems = []
    if result.esim not in (None, "done"):
        problems.append("the device did not carry out the approved profile delete")
    if len(result.seen) != len(result.devices):
        problems.append(f"the health app saw {len(result.seen)} devices, not the "
                        f"{len(result.devices)} Paul chose")
    for record in result.seen:
        for name in SHOW_FIELDS:
            chosen, value = name in result.fields, getattr(record, name)
            if name == "model":
                value = record.model.model
            if bool(value) != chosen:
                problems.append(f"the health app {'lacks' if chosen else 'sees'} {name}")
                break
    return problems
