"""Fit and score an llm_ranker on bounded, seeded row samples: what a search can afford on CPU.

`autorec train --model llm_ranker` goes through the common trainer and scores every validation
and test row. A search scores many candidates, so `fit_and_score` scores at most
`max_eval_rows` rows of each split, drawn by `eval_seed` alone (stratified by label): every
candidate of a search (and every benchmark line) sees the same rows and is comparable. It
returns the trainer's metric names: `valid_auc`, `valid_logloss` for selection, `auc` and
`logloss` (test) for the report.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pydantic
import torch

from autorec.data.features import CTRData
from autorec.errors import ConfigError, describe_validation_error
from autorec.metrics import auc, logloss
from autorec.models.llm_ranker.config import LLMRankerConfig
from autorec.models.llm_ranker.model import LLMRanker

DEFAULT_MAX_EVAL_ROWS = 200
DEFAULT_EVAL_SEED = 0


def eval_rows(labels: torch.Tensor, max_rows: int | None, seed: int = DEFAULT_EVAL_SEED) -> torch.Tensor:
    """Sorted indices of at most `max_rows` rows, the same for a given seed and split.

    Stratified by label: positives and negatives are drawn apart in the split's proportion,
    at least one of each where the split has both, so AUC is defined even for a small sample.
    """
    rows = len(labels)
    if max_rows is None or max_rows >= rows:
        return torch.arange(rows)
    generator = torch.Generator().manual_seed(seed)
    positive = torch.nonzero(labels > 0.5).flatten()
    negative = torch.nonzero(labels <= 0.5).flatten()
    take = round(max_rows * len(positive) / rows)
    take = min(max(take, 1 if len(positive) else 0), len(positive), max_rows - (1 if len(negative) else 0))
    chosen = [
        group[torch.randperm(len(group), generator=generator)[:count]]
        for group, count in ((positive, take), (negative, max_rows - take))
    ]
    return torch.cat(chosen).sort().values


def ranker_config(settings: dict[str, Any]) -> LLMRankerConfig:
    try:
        return LLMRankerConfig.model_validate(settings)
    except pydantic.ValidationError as err:
        raise ConfigError(f"invalid llm_ranker config: {describe_validation_error(err)}") from None


def fit_and_score(
    data: CTRData,
    settings: dict[str, Any],
    max_eval_rows: int | None = DEFAULT_MAX_EVAL_ROWS,
    eval_seed: int = DEFAULT_EVAL_SEED,
    report: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Prepare (LoRA when asked) and score the sampled validation and test rows."""
    model = LLMRanker(data.features, ranker_config(settings))
    start = time.perf_counter()
    model.prepare(data)
    from autorec.trainer import resolve_device

    model.to(resolve_device("auto"))  # scores on the GPU when there is one, as the trainer does
    metrics: dict[str, float] = {
        "train_seconds": time.perf_counter() - start,
        "params": float(sum(p.numel() for p in model.parameters())),
        "lora_steps": float(len(model.lora_losses)),
    }
    if model.lora_losses:
        head = model.lora_losses[: max(1, len(model.lora_losses) // 4)]
        tail = model.lora_losses[-max(1, len(model.lora_losses) // 4) :]
        metrics["lora_loss_first"] = sum(head) / len(head)
        metrics["lora_loss_last"] = sum(tail) / len(tail)
    for split_name, prefix in (("valid", "valid_"), ("test", "")):
        split = getattr(data, split_name)
        rows = eval_rows(split.label, max_eval_rows, eval_seed)
        begin = time.perf_counter()
        logits = model(split.batch(rows)).double().cpu()
        seconds = time.perf_counter() - begin
        labels = split.label[rows]
        metrics[f"{prefix}auc"] = auc(logits, labels)
        metrics[f"{prefix}logloss"] = logloss(torch.sigmoid(logits), labels)
        if split_name == "valid":
            metrics["prompt_tokens"] = sum(model.prompt_tokens) / max(len(model.prompt_tokens), 1)
            metrics["rows_per_second"] = len(rows) / max(seconds, 1e-9)
            metrics["eval_rows"] = float(len(rows))
            if report is not None:
                report({k: v for k, v in metrics.items() if not k.startswith(("auc", "logloss"))})
    return metrics
