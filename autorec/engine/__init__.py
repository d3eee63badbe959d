"""The search engine: a driver that owns the archive, and Ray Tune that runs the evaluations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autorec.engine.search import SearchOutcome, run_search

__all__ = ["SearchOutcome", "run_search"]


def __getattr__(name: str) -> Any:
    # Lazy: a Ray worker imports autorec.engine.worker, and with it this package; it must not pay
    # for the archive (sqlalchemy, sqlmodel) and the proposers it never uses.
    if name in __all__:
        from autorec.engine import search

        return getattr(search, name)
    raise AttributeError(f"module 'autorec.engine' has no attribute {name!r}")
