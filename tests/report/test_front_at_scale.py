"""The Pareto front of a large run: the vectorised prefilter that large runs take drops only
dominated points, so the front is exactly the brute-force one (ties and duplicates included)."""

from __future__ import annotations

import random

import pytest

from autorec.archive.pareto import PREFILTER_ABOVE, non_dominated


def _brute_force(points, directions):
    signs = [1 if d == "max" else -1 for d in directions]
    gains = [[s * v for s, v in zip(signs, p)] for p in points]

    def dominates(a, b):
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return {i for i, g in enumerate(gains) if not any(dominates(h, g) for h in gains)}


@pytest.mark.parametrize("directions", [["max", "min"], ["max", "max", "min"]])
def test_large_fronts_match_brute_force(directions):
    rng = random.Random(len(directions))
    # Coarse values: many ties and exact duplicates, the cases a prefilter gets wrong first.
    points = [[rng.randrange(40) / 4 for _ in directions] for _ in range(3 * PREFILTER_ABOVE)]
    points += [points[0]] * 3
    front = non_dominated(points, directions)
    assert len(points) > PREFILTER_ABOVE and len(front) == len(set(front))
    assert set(front) == _brute_force(points, directions)
    small = non_dominated(points[:PREFILTER_ABOVE], directions)  # the plain sweep, same order rule
    assert set(small) == _brute_force(points[:PREFILTER_ABOVE], directions)
    firsts = [points[i][0] * (1 if directions[0] == "max" else -1) for i in front]
    assert firsts == sorted(firsts, reverse=True)  # best first on the first objective
