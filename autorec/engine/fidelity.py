"""Multi-fidelity evaluation: asynchronous successive halving (ASHA) over training epochs.

Trials report their validation metric every epoch. At the rung epochs `grace * eta**k` (1, 3, 9,
... by default) each evaluation's best value so far is entered into its suite member's rung; an
evaluation whose value is not among the best 1/eta of those already in that rung is stopped
there (once the rung holds at least `eta` values, so the first trials always run on). A stopped
evaluation keeps its partial metrics and the reason; its candidate gets no fitness and is never a
parent. Asynchronous rungs only grow, so a value that was behind can later rank among the best
1/eta again (weaker trials arrived after it): its candidate is then promoted, its stopped
evaluations run again in full.

The yardstick is what the evaluation would score if it ended at that epoch: the trainer keeps the
best validation epoch, so its metrics are those of the best epoch so far (by the first
objective). Given a `score` (the driver passes the partial fitness: every objective against the
reference), rungs rank that score, so a small model that is slightly behind on AUC is not stopped
when its size makes up for it (on the ML-100K architecture space the params term is worth as
much as the AUC differences between good candidates); without one, the first objective's value.
Rung values are stored with each finished evaluation (metrics `asha.rung<E>`), so a resumed
search rebuilds its rungs from the archive.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Mapping

from autorec.space import Objective

RUNG_PREFIX = "asha.rung"


# score(member, metrics of the best epoch so far) -> higher is better, or None while it cannot be
# computed (the reference it is measured against is not in yet).
Score = Callable[[str, Mapping[str, float]], "float | None"]


@dataclasses.dataclass
class Decision:
    stop: bool
    reason: str = ""
    value: float | None = None  # what was entered into the rung, when it was a rung epoch


class SuccessiveHalving:
    def __init__(self, objective: Objective, grace: int = 1, eta: int = 3, max_epoch: int = 10_000,
                 score: Score | None = None):
        if grace < 1 or eta < 2:
            raise ValueError("successive halving needs grace >= 1 and eta >= 2")
        self.objective, self.grace, self.eta, self.score = objective, grace, eta, score
        self.direction = "max" if score is not None else objective.direction
        self.ranked_by = "fitness" if score is not None else objective.name
        self.rung_epochs: list[int] = []
        epoch = grace
        while epoch <= max_epoch:
            self.rung_epochs.append(epoch)
            epoch *= eta
        # member -> rung epoch -> evaluation id -> best value so far at that epoch
        self.rungs: dict[str, dict[int, dict[int, float]]] = {}
        # running evaluation id -> metrics of its best epoch so far (by the first objective)
        self.best: dict[int, dict[str, float]] = {}

    @property
    def metric(self) -> str:
        return self.objective.name

    def _better(self, a: float, b: float) -> bool:
        """a ranks above b in a rung."""
        return a > b if self.direction == "max" else a < b

    def _ahead(self, a: float, b: float) -> bool:
        """Epoch value a beats b on the first objective (the trainer's best-epoch rule)."""
        return a > b if self.objective.direction == "max" else a < b

    def start(self, evaluation_id: int) -> None:
        """A new attempt: forget the previous attempt's running best."""
        self.best.pop(evaluation_id, None)

    def report(self, member: str, evaluation_id: int, epoch: int,
               metrics: Mapping[str, float]) -> Decision:
        """One epoch's validation metrics of a running evaluation: go on, or stop here."""
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return Decision(False)
        best = self.best.get(evaluation_id)
        if best is None or self._ahead(value, best[self.metric]):
            self.best[evaluation_id] = best = dict(metrics)
        if epoch not in self.rung_epochs:
            return Decision(False)
        standing = best[self.metric] if self.score is None else self.score(member, best)
        if standing is None or not math.isfinite(standing):
            return Decision(False)  # nothing to rank it by yet: it runs on
        rung = self.rungs.setdefault(member, {}).setdefault(epoch, {})
        rung[evaluation_id] = standing
        if len(rung) < self.eta:
            return Decision(False, value=standing)
        cutoff = self.cutoff(rung.values())
        if self._better(cutoff, standing):
            return Decision(True, (
                f"stopped early at epoch {epoch}: {self.ranked_by} {standing:.4f} is behind the "
                f"best 1/{self.eta} of the {len(rung)} evaluations at this rung "
                f"(cutoff {cutoff:.4f})"
            ), standing)
        return Decision(False, value=standing)

    def cutoff(self, values: Iterable[float]) -> float:
        """The worst value still among the best 1/eta."""
        ranked = sorted(values, reverse=self.direction == "max")
        keep = max(1, len(ranked) // self.eta)
        return ranked[keep - 1]

    def promotable(self, member: str, epoch: int, stopped: dict[int, float]) -> list[int]:
        """Of the evaluations stopped at this rung (id -> value), those now among its best."""
        rung = self.rungs.get(member, {}).get(epoch, {})
        if len(rung) < self.eta:
            return []
        cutoff = self.cutoff(rung.values())
        return [e for e, v in stopped.items() if not self._better(cutoff, v)]

    def rung_metrics(self, member: str, evaluation_id: int) -> dict[str, float]:
        """What an evaluation entered into its rungs, to be stored with it."""
        return {
            f"{RUNG_PREFIX}{epoch}": values[evaluation_id]
            for epoch, values in self.rungs.get(member, {}).items()
            if evaluation_id in values
        }

    def restore(self, member: str, evaluation_id: int, metrics: dict[str, float]) -> None:
        """Re-enter a finished evaluation's stored rung values (a resumed search)."""
        for key, value in metrics.items():
            if key.startswith(RUNG_PREFIX):
                epoch = int(key[len(RUNG_PREFIX):])
                self.rungs.setdefault(member, {}).setdefault(epoch, {})[evaluation_id] = value
