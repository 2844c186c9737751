"""Each app's share: a token bucket per app; refusals answered sparingly, counted in sum."""

from __future__ import annotations

import pytest

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
