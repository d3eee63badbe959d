"""Fairness between user groups, and how much of a sensitive attribute a representation leaks.

Group ids follow the dataset's vocabulary: 0 is unknown (left out), 1..C are the groups.

- quality gap: the largest minus the smallest per-group quality (AUC for CTR rows, HR@10 for
  sequential users) over the groups large enough to measure: at least `min_size` members and,
  for AUC, both labels. Fewer than two such groups: NaN. For a two-valued attribute (gender) it
  is |quality(a) - quality(b)|.
- leakage: the AUC with which a small probe (L2-regularised logistic regression) recovers the
  attribute from each user's representation, cross-fitted over two class-stratified folds of
  users (each fold scored by a probe fitted on the other; the two AUCs averaged). 0.5 is no
  leakage, 1.0 is full. A multi-valued attribute is probed as "the most frequent value or not".
"""

from __future__ import annotations

import math

import numpy as np
import torch

from autorec.metrics import auc

MIN_AUC_ROWS = 100  # rows a group needs for its AUC to count in a gap
MIN_HIT_USERS = 30  # users a group needs for its HR@10 to count in a gap
PROBE_MAX_DIM = 32  # wider representations are reduced by PCA first (few users, many columns)
PROBE_L2 = 1e-2


def quality_gap(per_group: dict[int, float]) -> float:
    values = [v for v in per_group.values() if math.isfinite(v)]
    return max(values) - min(values) if len(values) >= 2 else float("nan")


def auc_by_group(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, min_rows: int = MIN_AUC_ROWS
) -> dict[int, float]:
    out = {}
    for group in np.unique(groups):
        rows = groups == group
        if group > 0 and rows.sum() >= min_rows:
            out[int(group)] = auc(scores[rows], labels[rows])
    return out


def hit_rate_by_group(
    ranks: np.ndarray, groups: np.ndarray, k: int = 10, min_users: int = MIN_HIT_USERS
) -> dict[int, float]:
    out = {}
    for group in np.unique(groups):
        rows = groups == group
        if group > 0 and rows.sum() >= min_users:
            out[int(group)] = float((ranks[rows] < k).mean())
    return out


def probe_leakage(representation: torch.Tensor, groups: torch.Tensor, seed: int = 0) -> float:
    """Cross-fitted probe AUC of `groups` (0 = unknown, skipped) from one row per user."""
    known = groups > 0
    x, g = representation[known].double(), groups[known]
    if len(g) < 4:
        return float("nan")
    values, counts = torch.unique(g, return_counts=True)
    y = (g == values[counts.argmax()]).double()
    if y.min() == y.max():
        return float("nan")
    if x.shape[1] > PROBE_MAX_DIM:
        # Unsupervised, so it sees no label: fitting it on all users leaks nothing to the probe.
        centred = x - x.mean(dim=0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        x = centred @ v[:PROBE_MAX_DIM].T
    # Two folds stratified by class; AUC within each held-out fold, averaged (pooling the
    # folds' scores would mix two intercepts and bias a no-signal probe below 0.5).
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    folds = torch.empty(len(y), dtype=torch.long)
    for value in (0.0, 1.0):
        members = order[y[order] == value]
        folds[members] = torch.arange(len(members)) % 2
    scores = []
    for fold in (0, 1):
        train, held_out = folds != fold, folds == fold
        if y[train].min() == y[train].max() or y[held_out].min() == y[held_out].max():
            return float("nan")
        predicted = _logistic_probe(x[train], y[train], x[held_out])
        scores.append(auc(predicted.numpy(), y[held_out].numpy()))
    return float(np.mean(scores))


def _logistic_probe(x: torch.Tensor, y: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
    """Logits of an L2-regularised logistic regression fitted by L-BFGS on standardised x."""
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-9)
    x, x_new = (x - mean) / std, (x_new - mean) / std
    weight = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros((), dtype=x.dtype, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y)
        loss = loss + PROBE_L2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return (x_new @ weight + bias).detach()
