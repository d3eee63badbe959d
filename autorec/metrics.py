"""Evaluation metrics: AUC and log loss for CTR, HR/NDCG/MRR@k for full-ranking next-item."""

from __future__ import annotations

import numpy as np
import torch


def auc(scores: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties share their average rank)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel() > 0.5
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    average = (starts + ends + 1) / 2.0  # 1-based mean rank of each run
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def logloss(probabilities: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64).ravel()
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def target_ranks(
    logits: torch.Tensor, targets: torch.Tensor, exclude: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """0-based rank of each target among all items (column 0, padding, never competes).

    `exclude[i]` lists items removed from row i's candidates (its earlier items); the target
    itself is never removed. A tie counts against the target, so a constant model ranks last.
    """
    logits = logits.detach().float().clone()
    logits[:, 0] = float("-inf")
    rows = torch.arange(len(targets))
    target_scores = logits[rows, targets]
    if exclude is not None:
        for row, items in enumerate(exclude):
            if len(items):
                logits[row, items] = float("-inf")
    logits[rows, targets] = float("-inf")
    return (logits >= target_scores.unsqueeze(1)).sum(dim=1)


def ranking_metrics(ranks: torch.Tensor, k: int = 10) -> dict[str, float]:
    ranks = ranks.double()
    hit = ranks < k
    return {
        f"hr@{k}": hit.double().mean().item(),
        f"ndcg@{k}": torch.where(hit, 1.0 / torch.log2(ranks + 2.0), 0.0).mean().item(),
        f"mrr@{k}": torch.where(hit, 1.0 / (ranks + 1.0), 0.0).mean().item(),
    }
