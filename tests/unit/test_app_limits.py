"""Each app's share: a token bucket per app; refusals answered sparingly, counted in sum."""

from __future__ import annotations

import pytest

from broker_bridge.cli import main
from broker_bridge.limits import AppLimiter


def test_an_app_gets_its_burst_then_its_rate_and_others_are_not_touched() -> None:
    limiter = AppLimiter(rate=10, burst=5)
    assert [limiter.allow("flood", now=0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow("steady", now=0.0)  # another app's share is its own
    assert not limiter.allow("flood", now=0.05)  # half a token
    assert limiter.allow("flood", now=0.1)  # one token a tenth of a second later
    assert limiter.allow("flood", now=10.0) and limiter.allow("flood", now=10.0)
    assert limiter.take_refused() == {"flood": 3}
    assert limiter.take_refused() == {}


def test_refusals_are_answered_first_and_then_every_256th() -> None:
    limiter = AppLimiter(rate=1, burst=1)
    assert limiter.allow("flood", now=0.0)
    told = []
    for _ in range(600):
        assert not limiter.allow("flood", now=0.0)
        told.append(limiter.tell("flood"))
    assert [i + 1 for i, t in enumerate(told) if t] == [1, 257, 513]


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError):
        AppLimiter(rate=0)
    with pytest.raises(ValueError):
        AppLimiter(burst=0.5)


@pytest.mark.parametrize(("argv", "message"), [
    (["--app-rate", "0"], "app_rate from --app-rate: expected a positive number"),
    (["--app-rate", "fast"], "app_rate from --app-rate"),
    (["--app-burst", "0.5"], "app_burst from --app-burst: expected a number of at least 1"),
])
def test_serve_refuses_a_share_that_is_no_share(argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before anything is opened or connected: neither the database nor the
    # broker exists.
    assert main(["serve", "--db", "/nonexistent/registry.sqlite", "--broker",
                 "mqtt://127.0.0.1:1", *argv]) == 2
    assert message in capsys.readouterr().err
