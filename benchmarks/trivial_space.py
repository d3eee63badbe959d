"""A trivial search space for the engine benchmarks: no data, no model, a constant score.

Load it by path: ``--space benchmarks/trivial_space.py:TrivialSpace``. Settings:

- ``work``: what one evaluation does before it returns: ``sleep`` (default: wall time without
  CPU), ``spin`` (a busy Python loop: one core's worth of CPU for ``work_ms``), or ``torch`` (a
  fixed amount of single-threaded matrix multiplication: ``torch_reps`` products of two
  ``torch_n`` x ``torch_n`` float32 matrices, so contention shows up as a longer evaluation).
- ``work_ms``: milliseconds of ``sleep`` or ``spin`` (default 0).
- ``torch_n`` / ``torch_reps``: the size and count of the ``torch`` products (default 256 x 1).

The score is constant, so every candidate has fitness 0: what a search over this space costs is
the engine's own overhead plus the planted work. `do_work` is also what the bare Ray Tune
trainable of benchmarks/engine_overhead.py runs, so both sides do exactly the same work.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
import pydantic

from autorec.space import Objective, SearchSpace, SuiteMember


def do_work(settings: dict[str, Any]) -> float:
    """The planted work of one evaluation; returns its wall seconds."""
    start = time.perf_counter()
    work = settings.get("work", "sleep")
    seconds = float(settings.get("work_ms", 0)) / 1000.0
    if work == "sleep":
        if seconds > 0:
            time.sleep(seconds)
    elif work == "spin":
        end = start + seconds
        while time.perf_counter() < end:
            pass
    elif work == "torch":
        import torch

        n, reps = int(settings.get("torch_n", 256)), int(settings.get("torch_reps", 1))
        generator = torch.Generator().manual_seed(0)
        a = torch.rand(n, n, generator=generator)
        b = torch.rand(n, n, generator=generator)
        for _ in range(reps):
            a = torch.mm(a, b)
            a = a / a.abs().max()  # keep the values finite
    else:
        raise ValueError(f"unknown work {work!r}: sleep, spin or torch")
    return time.perf_counter() - start


class TrivialCandidate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    # A float, so random draws never repeat (no duplicates to skip).
    x: float = pydantic.Field(0.5, ge=0.0, le=1.0)


class TrivialSpace(SearchSpace):
    name = "trivial"
    version = "1"
    Candidate = TrivialCandidate
    objectives = [Objective(name="score", direction="max")]

    def describe(self) -> str:
        return "Benchmark space: one float x in [0, 1]; every candidate scores the same."

    def reference(self) -> TrivialCandidate:
        return TrivialCandidate()

    def sample(self, trial: optuna.Trial) -> TrivialCandidate:
        return TrivialCandidate(x=trial.suggest_float("x", 0.0, 1.0))

    def suite(self) -> list[SuiteMember]:
        return [SuiteMember("trivial", self.options.dataset, "none")]

    def evaluate(self, candidate, member, report) -> dict[str, float]:
        seconds = do_work(self.options.settings)
        return {"score": 1.0, "work_seconds": seconds}
