"""Non-dominated sorting over raw objective values (quality vs parameters vs latency)."""

from __future__ import annotations

from collections.abc import Sequence

DIRECTIONS = ("max", "min")


def non_dominated(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the points no other point dominates, best first on the first objective.

    A point dominates another when it is at least as good on every objective and better on one.
    Equal points do not dominate each other, so duplicates on the front are all kept.
    """
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"objective direction must be 'max' or 'min', not {d!r}")
    signs = [1.0 if d == "max" else -1.0 for d in directions]
    # Everything as maximisation. After a descending lexicographic sort no point can dominate one
    # before it, and a point dominated by anything is dominated by a front point: so each point
    # only needs comparing with the front found so far.
    keyed = sorted(
        ((tuple(s * v for s, v in zip(signs, p, strict=True)), i) for i, p in enumerate(points)),
        key=lambda kv: (tuple(-v for v in kv[0]), kv[1]),
    )
    front: list[tuple[tuple[float, ...], int]] = []
    for values, index in keyed:
        if not any(_dominates(f, values) for f, _ in front):
            front.append((values, index))
    return [index for _, index in front]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))
