"""The bench's exceptions: one root for loads, fault runs and fuzzing."""

from __future__ import annotations


class BenchError(Exception):
    """Root of every error the bench raises."""
