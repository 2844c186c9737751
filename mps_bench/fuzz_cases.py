"""What every fuzzed edge shares: its failure, its result, and running its cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from mps_bench.errors import BenchError


class FuzzFailure(BenchError, AssertionError):
    """An edge broke its promise for some input (hypothesis shrinks it first)."""


@dataclass
class EdgeResult:
    """How one edge's run went."""

    name: str
    cases: int
    seconds: float
    status: str = "ok"  # ok, failed, skipped
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"edge": self.name, "cases": self.cases, "seconds": round(self.seconds, 3),
                "status": self.status, "detail": self.detail}


def run_cases(strategy: st.SearchStrategy[Any], check: Callable[[Any], object], cases: int, *,
              seed_value: int | None = None) -> int:
    """Feed ``cases`` examples of ``strategy`` to ``check``; return how many ran.

    Failures propagate after hypothesis shrank them to a small example.
    """
    ran = [0]

    def counted(value: Any) -> None:
        ran[0] += 1
        check(value)

    test = settings(max_examples=cases, deadline=None, database=None,
                    phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck))(given(strategy)(counted))
    if seed_value is not None:
        test = seed(seed_value)(test)
    test()
    return ran[0]
