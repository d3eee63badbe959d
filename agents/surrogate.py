"""A cheap surrogate that ranks a proposal before it costs an evaluation.

The portfolio asks it one question: is this proposal (from the LLM or from mutation) at least as
promising as the candidate TPE would draw instead? Only then is it evaluated (LLAMBO's candidate
filtering, with the archive as the model). That makes a weak operator nearly free: its bad ideas
cost an LLM call, not an evaluation, and the evaluation goes to TPE's draw.

The score is TPE's own criterion, the density ratio log l(x) - log g(x), estimated over the run's
archive instead of over one sampler's trials: the best `gamma` fraction of finished candidates
form the "good" density l, everything else (worse candidates, failures, early-stopped ones) the
"bad" density g. Both are Gaussian kernel densities over `graph.distance`, the normalised
per-field distance the agent already uses for neighbours, so the surrogate works for any space,
conditional knobs and free text included, without a vector encoding. The kernel width follows the
archive: half the median distance from each observed candidate to its nearest other one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from autorec.agents.base import CandidateSummary
from autorec.agents.graph import FAILED, FieldRange, distance, is_selectable

MIN_WIDTH = 0.02  # a kernel narrower than this only recognises exact repeats
BAD_STATUSES = (*FAILED, "stopped")


class ArchiveSurrogate:
    """Density-ratio scores from one snapshot of the archive."""

    def __init__(
        self,
        archive: Iterable[CandidateSummary],
        ranges: dict[str, FieldRange],
        gamma: float = 0.2,
    ):
        self.ranges = ranges
        done = sorted(
            (n for n in archive if is_selectable(n)), key=lambda n: (-float(n.fitness), n.id)
        )
        n_good = min(len(done), max(1, math.ceil(gamma * len(done))))
        self.good = [n.params for n in done[:n_good]]
        bad_nodes = [n for n in archive if n.status in BAD_STATUSES and isinstance(n.params, dict)]
        self.bad = [n.params for n in done[n_good:]] + [n.params for n in bad_nodes]
        self.observed = len(done)
        self.width = self._width([*self.good, *self.bad])

    def _width(self, points: list[dict[str, Any]]) -> float:
        nearest = []
        for i, a in enumerate(points):
            gaps = [distance(a, b, self.ranges) for j, b in enumerate(points) if j != i]
            gaps = [g for g in gaps if g > 0]
            if gaps:
                nearest.append(min(gaps))
        return max(MIN_WIDTH, 0.5 * statistics.median(nearest)) if nearest else 0.25

    def _log_density(self, params: dict[str, Any], points: list[dict[str, Any]]) -> float:
        """log of the mean Gaussian kernel; an empty set is a flat floor (log of a tiny mass)."""
        if not points:
            return math.log(1e-12)
        terms = [-((distance(params, p, self.ranges) / self.width) ** 2) for p in points]
        top = max(terms)
        mass = sum(math.exp(t - top) for t in terms) / len(points)
        return top + math.log(mass + 1e-300)

    def score(self, params: dict[str, Any]) -> float:
        """log l(x) - log g(x): higher means more like the best candidates seen so far."""
        return self._log_density(params, self.good) - self._log_density(params, self.bad)
