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
    "reloop2": ModelEntry(
        "autorec.models.ctr.reloop2", "ReLoop2", "ctr",
        "any CTR model corrected by the errors of similar recent rows (error memory)",
    ),
    "llm_ranker": ModelEntry(
        "autorec.models.llm_ranker", "LLMRanker", "ctr",
        "a small causal LM scoring P(yes) vs P(no) from a prompt template",
    ),
    "llm_hybrid": ModelEntry(
        "autorec.models.ctr.llm_hybrid", "LLMHybrid", "ctr",
        "DeepFM with the llm_ranker's zero-shot score as one more input feature",
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
    "semantic_ids": ModelEntry(
        "autorec.models.sequential.semantic_ids", "SemanticIds", "sequential",
        "generates the next item's semantic ID (residual k-means codes of its text); beam search",
    ),
    "sra_cl": ModelEntry(
        "autorec.models.sequential.sra_cl", "SRACL", "sequential",
        "SASRec plus contrastive views that swap items for their item-text neighbours",
    ),
    "bm3": ModelEntry(
        "autorec.models.sequential.bm3", "BM3", "sequential",
        "bootstrapped graph and item-text latents, no negatives; ignores order",
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
