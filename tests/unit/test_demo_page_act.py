"""The demo's consent page act where no browser can run: it says so and is skipped,
touching nothing else (the rest of the demo stands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mps_demo import browser
from mps_demo.page_act import PageActResult, PageCast, run_page_act, verify_page_act


def test_without_chromium_the_act_is_skipped_and_says_why(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    said: list[str] = []
    result = run_page_act("mqtt://127.0.0.1:1", str(tmp_path / "none.db"),
                          PageCast(contract="C-1", msisdn="+4915112345678"),
                          workdir=tmp_path, say=said.append)
    assert result.skipped is not None and "apt-get install chromium" in result.skipped
    assert said == [f"page        the consent page act is skipped: {result.skipped}"]
    assert verify_page_act(result) == []  # a skipped act is no failure of the demo
    assert list(tmp_path.iterdir()) == []  # no certificate, no page, nothing started


def test_without_the_driver_the_message_names_the_package(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", Path("/bin/sh"))
    monkeypatch.setattr(browser, "CHROMEDRIVER", tmp_path / "no-driver")
    assert "apt-get install chromium-driver" in (browser.missing() or "")
    with pytest.raises(browser.BrowserMissingError), \
            browser.headless_chromium(tmp_path / "cert.pem"):
        pass


def test_the_app_seeing_more_than_chosen_is_a_problem() -> None:
    from mps_wire.messages import ModelInfo
    from mps_wire.records import DeviceRecord

    seen = DeviceRecord("d" * 32, ("10.0.0.1",), ("lte",), ModelInfo("Q", "EC25", "r"), 1, 1)
    result = PageActResult(devices=["e1"], fields=["model", "capabilities"], seen=(seen,))
    assert verify_page_act(result) == ["the health app sees ip"]
