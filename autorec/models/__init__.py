"""The model suite: one registry for every CTR and sequential model."""

from __future__ import annotations

import importlib
from typing import NamedTuple

from autorec.errors import UnknownNameError
from autorec.models.base import (
    CTRModel,
    CTRModelConfig,
    ModelConfig,
    SequentialModel,
    SequentialModelConfig,
)


class ModelEntry(NamedTuple):
    module: str
    cls: str
    task: str  # "ctr" or "sequential"
    summary: str


# Imported lazily so `autorec --help` stays fast and one broken model cannot hide the others.
MODELS: dict[str, ModelEntry] = {
    "lr": ModelEntry("autorec.models.ctr.lr", "LogisticRegression", "ctr", "logistic regression"),
    "mean": ModelEntry(
        "autorec.models.ctr.mean", "MeanLabel", "ctr", "user-mean plus item-mean label scorer"
    ),
    "fm": ModelEntry("autorec.models.ctr.fm", "FM", "ctr", "factorization machine"),
    "deepfm": ModelEntry("autorec.models.ctr.deepfm", "DeepFM", "ctr", "FM plus an MLP"),
    "dcnv2": ModelEntry("autorec.models.ctr.dcnv2", "DCNv2", "ctr", "deep & cross network v2"),
    "din": ModelEntry(
        "autorec.models.ctr.din", "DIN", "ctr", "target attention over the user's history"
    ),
    "dare": ModelEntry(
        "autorec.models.ctr.dare", "DARE", "ctr", "DIN with decoupled attention/representation"
    ),
    "llm_ranker": ModelEntry(
        "autorec.models.llm_ranker", "LLMRanker", "ctr",
        "a small causal LM scoring P(yes) vs P(no) from a prompt template",
    ),
    "popularity": ModelEntry(
        "autorec.models.sequential.popularity", "Popularity", "sequential", "most popular items"
    ),
    "sasrec": ModelEntry(
        "autorec.models.sequential.sasrec", "SASRec", "sequential", "self-attentive sequential"
    ),
    "hstu": ModelEntry(
        "autorec.models.sequential.hstu", "HSTU", "sequential", "pointwise SiLU attention"
    ),
}


def model_names(task: str | None = None) -> list[str]:
    return [name for name, entry in MODELS.items() if task is None or entry.task == task]


def model_class(name: str) -> type[CTRModel] | type[SequentialModel]:
    if name not in MODELS:
        raise UnknownNameError("model", name, list(MODELS))
    entry = MODELS[name]
    return getattr(importlib.import_module(entry.module), entry.cls)


__all__ = [
    "CTRModel",
    "CTRModelConfig",
    "MODELS",
    "ModelConfig",
    "SequentialModel",
    "SequentialModelConfig",
    "model_class",
    "model_names",
]
