"""The demo's eSIM act on the consent page: one of Paul's devices still holds an old,
disabled profile; the operator asks to delete it; nothing happens until Paul approves on
the page; then the device's own daemon receives the registry's signed order and carries
it out on its card (SGP.22 ES10c DeleteProfile).

The device's daemon (``mps-agent run --daemon``) is started here for the act with the
registry's order key in its credentials (the operator hands it over with the device's
credentials), and stopped at the end.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from broker_bridge.registry import Registry
from broker_bridge.storage import Store
from lpa_emulator.euicc.state import CardState, ProfileRecord
from mps_demo.browser import BrowserError, arrive
from mps_testbed.stack.procs import console_script

#: Seconds to wait for the daemon to come online and for each order's result.
WAIT = 30.0


class EsimActError(RuntimeError):
    """The eSIM act did not go as told."""


@dataclass(frozen=True)
class EsimTarget:
    """The device whose profile goes: its identity, files and environment."""

    name: str
    eid: str
    profile: Path  # the agent's firmware profile
    state_dir: Path  # the agent's state directory
    card_state: Path  # the emulated card's state file
    env: dict[str, str]


def _wait(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise EsimActError(f"{what} did not happen within {timeout:g} s")


def hand_over_order_key(registry: Registry, target: EsimTarget) -> Path:
    """Put the registry's public order key where the device's agent looks for it."""
    public = registry.order_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = target.state_dir / "credentials" / "registry-key.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(public)
    return path


def start_daemon(target: EsimTarget, log: Path) -> subprocess.Popen[bytes]:
    """The device's agent as a daemon (orders are run once per round of 1 s)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([*console_script("mps-agent"), "run", "--daemon",
                                 "--profile", str(target.profile), "--interval", "1"],
                                env=target.env, stdout=out, stderr=subprocess.STDOUT)


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def online(store: Store, contract: str, eid: str) -> bool:
    presence = store.presences(contract).get(eid)
    return presence is not None and presence.online


def request_state(store: Store, request_id: str) -> str:
    found = store.esim_request(request_id)
    return "" if found is None else found.state.value


def finished(store: Store, request_id: str) -> str:
    """The request's final state, or "" while it is still under way."""
    state = request_state(store, request_id)
    return state if state in ("done", "failed", "refused", "expired") else ""


def on_card(target: EsimTarget, iccid: str) -> bool:
    """Whether the profile ``iccid`` is on the device's card."""
    return any(p.iccid == iccid for p in CardState.load(target.card_state).profiles)


def old_profile(target: EsimTarget) -> str:
    """Put an old, disabled profile on the device's (emulated) card; its ICCID. The
    daemon is not running yet: nothing else holds the card's state."""
    state = CardState.load(target.card_state)
    old = ProfileRecord.generate(slot=len(state.profiles), enabled=False,
                                 name="previous owner's profile")
    state.profiles.append(old)
    state.save(target.card_state)
    return old.iccid


def approve_on_page(driver: Any, url: str, request_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "esim")
    driver.find_element(By.CSS_SELECTOR, f"#esim-{request_id} button.approve").click()
    try:
        arrive(driver, "/esim?done=esim-approved")
    except BrowserError as exc:
        raise EsimActError(f"approving eSIM request {request_id} failed: {exc}") from exc


def run_esim_act(driver: Any, url: str, store: Store, contract: str, target: EsimTarget, *,
                 say: Callable[[str], None], shot: Callable[[str], None], logs: Path
                 ) -> str:
    """Play the act; the delete request's final state (``done`` when it worked)."""
    registry = Registry(store)
    iccid = old_profile(target)
    hand_over_order_key(registry, target)
    daemon = start_daemon(target, logs / f"{target.name}-daemon.log")
    try:
        _wait(lambda: online(store, contract, target.eid), f"{target.name} online")
        say(f"device      {target.name}'s daemon is online (retained state, Last Will) "
            "and holds the registry's order key")
        request = registry.request_esim(target.eid, "delete", iccid, actor="operator:demo")
        say(f"operator    asks to delete the old disabled profile {iccid} on {target.name}: "
            f"{request_state(store, request.id)}; nothing happens yet")
        time.sleep(1.5)  # a round of the daemon: the card is untouched so far
        if not on_card(target, iccid):
            raise EsimActError("the profile went before the user's word")
        driver.get(url + "esim")
        shot("4-esim-waiting")
        approve_on_page(driver, url, request.id)
        say("user        approves the delete on the page")
        state = _wait(partial(finished, store, request.id), "the delete order's result")
        say(f"device      {target.name}'s daemon checks the registry's signature, EID, "
            f"expiry and counter and deletes the profile on its eUICC: {state}")
        driver.get(url + "esim")
        shot("5-esim-done")
        gone = not on_card(target, iccid)
        say(f"device      profile {iccid} is {'gone from' if gone else 'STILL on'} "
            f"{target.name}'s eUICC")
        return state if gone else "failed"
    finally:
        stop_daemon(daemon)
