"""Multi-fidelity evaluation: asynchronous successive halving (ASHA) over training epochs.

Trials report their validation metric every epoch. At the rung epochs `grace * eta**k` (1, 3, 9,
... by default) each evaluation's best value so far is entered into its suite member's rung; an
evaluation whose value is not among the best 1/eta of those already in that rung is stopped
there (once the rung holds at least `eta` values, so the first trials always run on). A stopped
evaluation keeps its partial metrics and the reason; its candidate gets no fitness and is never a
parent. Asynchronous rungs only grow, so a value that was behind can later rank among the best
1/eta again (weaker trials arrived after it): its candidate is then promoted, its stopped
evaluations run again in full.

The best value so far is the right yardstick because the trainer keeps the best validation epoch:
it is what the evaluation would report if it ended at that epoch. Rung values are stored with each
finished evaluation (metrics `asha.rung<E>`), so a resumed search rebuilds its rungs from the
archive.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

from autorec.space import Objective

RUNG_PREFIX = "asha.rung"


@dataclasses.dataclass
class Decision:
    stop: bool
    reason: str = ""


class SuccessiveHalving:
    def __init__(self, objective: Objective, grace: int = 1, eta: int = 3, max_epoch: int = 10_000):
        if grace < 1 or eta < 2:
            raise ValueError("successive halving needs grace >= 1 and eta >= 2")
        self.objective, self.grace, self.eta = objective, grace, eta
        self.rung_epochs: list[int] = []
        epoch = grace
        while epoch <= max_epoch:
            self.rung_epochs.append(epoch)
            epoch *= eta
        # member -> rung epoch -> evaluation id -> best value so far at that epoch
        self.rungs: dict[str, dict[int, dict[int, float]]] = {}
        self.best: dict[int, float] = {}  # running evaluation id -> best value so far

    @property
    def metric(self) -> str:
        return self.objective.name

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.objective.direction == "max" else a < b

    def start(self, evaluation_id: int) -> None:
        """A new attempt: forget the previous attempt's running best."""
        self.best.pop(evaluation_id, None)

    def report(self, member: str, evaluation_id: int, epoch: int, value: float) -> Decision:
        """One epoch's validation value of a running evaluation: go on, or stop here."""
        if not math.isfinite(value):
            return Decision(False)
        best = self.best.get(evaluation_id)
        if best is None or self._better(value, best):
            self.best[evaluation_id] = best = value
        if epoch not in self.rung_epochs:
            return Decision(False)
        rung = self.rungs.setdefault(member, {}).setdefault(epoch, {})
        rung[evaluation_id] = best
        if len(rung) < self.eta:
            return Decision(False)
        cutoff = self.cutoff(rung.values())
        if self._better(cutoff, best):
            return Decision(True, (
                f"stopped early at epoch {epoch}: {self.metric} {best:.4f} is behind the best "
                f"1/{self.eta} of the {len(rung)} evaluations at this rung (cutoff {cutoff:.4f})"
            ))
        return Decision(False)

    def cutoff(self, values: Iterable[float]) -> float:
        """The worst value still among the best 1/eta."""
        ranked = sorted(values, reverse=self.objective.direction == "max")
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
