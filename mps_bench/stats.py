"""Latency figures: percentiles, summaries and ratios against a baseline."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, by nearest rank."""
    if not sorted_values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    """Latencies (seconds) of ``n`` requests answered in ``elapsed`` seconds."""

    n: int
    elapsed: float
    p50: float
    p90: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, latencies: Sequence[float], elapsed: float) -> Summary:
        values = sorted(latencies)
        return cls(n=len(values), elapsed=elapsed, p50=percentile(values, 50),
                   p90=percentile(values, 90), p99=percentile(values, 99),
                   mean=statistics.fmean(values) if values else math.nan,
                   max=values[-1] if values else math.nan)

    @property
    def per_s(self) -> float:
        return self.n / self.elapsed if self.elapsed > 0 else math.nan

    def to_json(self) -> dict[str, float]:
        return {"n": self.n, "p50_ms": ms(self.p50), "p90_ms": ms(self.p90),
                "p99_ms": ms(self.p99), "mean_ms": ms(self.mean), "max_ms": ms(self.max),
                "per_s": round(self.per_s, 1)}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def ratio(value: float, baseline: float) -> float:
    """``value / baseline`` rounded for reports; NaN when there is no baseline."""
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return math.nan
    return round(value / baseline, 3)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan
