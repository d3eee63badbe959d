"""What the built-in spaces share: their candidates are trained and scored by autorec's trainer."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import pydantic

from autorec.errors import ConfigError
from autorec.space import SearchSpace, SpaceOptions


class TrainedModelSpace(SearchSpace):
    """A space whose Candidate schema is built per instance and whose evaluations train models.

    Subclasses build their schema in `candidate_class()` (it depends on the dataset or the task)
    and list in RUN_SETTINGS the space settings that pass straight to the trainer.
    """

    RUN_SETTINGS: ClassVar[tuple[str, ...]] = ("threads", "seed", "patience", "max_seconds")
    DEFAULT_DATASET: ClassVar[str] = "ml-100k"
    needs_dataset: ClassVar[bool] = True
    settings: dict[str, Any]

    def __init__(self, options: SpaceOptions | None = None):
        super().__init__(options)
        if self.options.dataset is None:
            self.options = self.options.model_copy(update={"dataset": self.DEFAULT_DATASET})

    @abc.abstractmethod
    def candidate_class(self) -> type[pydantic.BaseModel]:
        """This instance's Candidate schema."""

    def metric_names(self) -> list[str]:
        """What `training_metrics` returns for this task: quality metrics on both splits, size
        and speed once, and the extra metrics the trainer computes for this dataset."""
        task = getattr(self, "task", None) or self.options.task or "ctr"
        quality = list(REPORTED_METRICS[task]) + extra_metric_names(task, self)
        return [*quality, *(f"valid_{m}" for m in quality), *SPLIT_FREE_METRICS]

    def selection_metric(self, name: str) -> str:
        """A quality metric is selected on its validation version; size and speed have one."""
        if name in SPLIT_FREE_METRICS or name.startswith("valid_"):
            return name
        return f"valid_{name}"

    def known_settings(self, settings: dict[str, Any], known: dict[str, str]) -> dict[str, Any]:
        """A copy of `settings`, or a ConfigError naming the keys this space does not know."""
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ConfigError(
                f"{self.name} space: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(known)}"
            )
        return dict(settings)

    def run_settings(self) -> dict[str, Any]:
        """The trainer settings the user fixed for every evaluation (threads, seed, ...)."""
        return {key: self.settings[key] for key in self.RUN_SETTINGS if key in self.settings}

    # Spaces travel to Ray workers: the per-instance Candidate class is rebuilt, not pickled.

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("Candidate", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.Candidate = self.candidate_class()


# What a trained candidate is chosen by (validation) and what is only reported (test), per task.
REPORTED_METRICS = {
    "ctr": ["auc", "logloss"],
    "sequential": ["ndcg@10", "hr@10", "mrr@10"],
}


# Metrics of a trained model that do not depend on a split.
SPLIT_FREE_METRICS = ("params", "embedding_params", "train_seconds", "latency_ms_per_1k",
                      "epochs_run", "best_epoch")


def objectives_line(space: Any) -> str:
    """'valid_auc (maximise, weight 1), params (minimise, weight 0.01)', and the constraints:
    what the LLM is told must match what the fitness computes."""
    parts = [f"{o.name} ({'maximise' if o.direction == 'max' else 'minimise'}, weight {o.weight:g})"
             for o in space.objectives]
    text = ", ".join(parts)
    if space.constraints:
        text += "; constraints every model must meet: " + ", ".join(
            c.text() for c in space.constraints)
    return text


def extra_metric_names(task: str, space: Any) -> list[str]:
    """Beyond-accuracy metrics (diversity, fairness, cold start) the trainer computes, where
    that module is installed; none otherwise."""
    try:
        from autorec.metrics_extra import metric_names
    except ImportError:
        return []
    features = getattr(space, "features", None)
    return list(metric_names(task, features))


def training_metrics(result: Any) -> dict[str, float]:
    """A TrainResult as the flat metrics an evaluation returns: test metrics, size, speed,
    and the validation metrics prefixed `valid_`."""
    metrics = {k: float(v) for k, v in result.metrics.items()}
    metrics.update(
        params=float(result.params),
        embedding_params=float(result.embedding_params),
        train_seconds=float(result.train_seconds),
        latency_ms_per_1k=float(result.latency_ms_per_1k),
        epochs_run=float(result.epochs_run),
        best_epoch=float(result.best_epoch),
    )
    metrics.update({f"valid_{k}": float(v) for k, v in result.valid_metrics.items()})
    return metrics
