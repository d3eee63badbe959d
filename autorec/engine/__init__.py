"""The search engine: a driver that owns the archive, and Ray Tune that runs the evaluations."""

from autorec.engine.search import SearchOutcome, run_search

__all__ = ["SearchOutcome", "run_search"]
