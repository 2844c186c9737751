"""Benchmarks, fault runs and long fuzzing of the whole system (``mps-bench``)."""
