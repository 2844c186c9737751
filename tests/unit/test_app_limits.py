"""Each app's share: a token bucket per app; refusals answered sparingly, counted in sum."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_bridge.limits import TELL_RATE, AppLimiter
from mps_common.cli import EXIT_USAGE


def test_an_app_gets_its_burst_then_its_rate_and_others_are_not_touched() -> None:
    limiter = AppLimiter(rate=10, burst=5)
    assert [limiter.allow("flood", now=0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("steady", now=0.0)  # another app's share is its own
    assert not limiter.allow("flood", now=0.05)  # half a token
    assert limiter.allow("flood", now=0.1)  # one token a tenth of a second later
    assert limiter.allow("flood", now=10.0) and limiter.allow("flood", now=10.0)
    assert limiter.take_refused() == {"flood": 3}
    assert limiter.take_refused() == {}


def test_refusals_are_answered_a_few_a_second() -> None:
    limiter = AppLimiter(rate=1, burst=1)
    assert limiter.allow("flood", now=0.0)
    told = []
    for _ in range(600):
        assert not limiter.allow("flood", now=0.0)
        told.append(limiter.tell("flood", now=0.0))
    # The first TELL_RATE at once, then nothing until time passes.
    assert [i for i, t in enumerate(told) if t] == list(range(int(TELL_RATE)))
    assert not limiter.allow("flood", now=0.5)
    assert limiter.tell("flood", now=0.5)  # half a second: answers again
    assert limiter.tell("steady", now=0.0)  # another app's answers are its own


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError):
        AppLimiter(rate=0)
    with pytest.raises(ValueError):
        AppLimiter(burst=0.5)


@pytest.mark.parametrize(("flag", "value"), [("--app-rate", "0"), ("--app-burst", "0.5"),
                                             ("--app-rate", "lots"),
                                             ("--read-model-size", "-1"),
                                             ("--read-model-size", "1e5")])
def test_serve_refuses_a_bad_share_before_serving(
        flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from broker_bridge.cli import main

    code = main(["serve", "--db", str(tmp_path / "none.db"), "--broker",
                 "mqtt://127.0.0.1:1", flag, value])
    assert code == EXIT_USAGE
    assert flag.removeprefix("--").replace("-", "_") in capsys.readouterr().err
