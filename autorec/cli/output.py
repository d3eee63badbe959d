"""Printing helpers shared by the commands: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

console = Console()


def print_json(payload: Any) -> None:
    """One JSON object on stdout; NaN and infinities become null so any JSON parser reads it."""
    print(json.dumps(_finite(payload), indent=2, default=str))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def table(title: str | None, columns: list[str], rows: Iterable[Iterable[Any]]) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*[fmt(v) for v in row])
    return out


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)
