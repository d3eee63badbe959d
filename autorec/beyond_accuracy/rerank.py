"""The re-ranking step of sequential evaluation: a model's scores -> the top-10 list a user sees.

With a re-ranker on (`rerank_mmr_weight` or `rerank_target_genres`), HR/NDCG/MRR@10 (the
filtered ones, which selection reads) and the diversity metrics are read from the re-ranked
list, in every evaluation including early stopping's. The `_unfiltered` variants stay the
model's own ranking. Definitions: autorec.beyond_accuracy.lists.
"""

from __future__ import annotations

import dataclasses

import torch

from autorec.beyond_accuracy import lists
from autorec.data.features import SequentialData
from autorec.errors import ConfigError

K = 10


@dataclasses.dataclass
class Reranker:
    item_genres: torch.Tensor
    mmr_weight: float = 0.0
    target_genres: int = 0

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        if self.target_genres:
            return lists.target_genres_rerank(scores, self.item_genres, self.target_genres, K)
        return lists.mmr_rerank(scores, self.item_genres, self.mmr_weight, K)


def from_settings(task: str, data, config) -> Reranker | None:
    """The re-ranker the train config asks for, None when off; bad combinations are ConfigErrors."""
    if not config.rerank_mmr_weight and not config.rerank_target_genres:
        return None
    if task != "sequential":
        raise ConfigError("rerank_mmr_weight and rerank_target_genres apply to sequential models")
    assert isinstance(data, SequentialData)
    if data.item_genres is None:
        raise ConfigError(
            f"re-ranking over genres needs item genres; dataset '{data.dataset}' has no "
            "multi_hot 'genres' item column"
        )
    return Reranker(data.item_genres, config.rerank_mmr_weight, config.rerank_target_genres)


def masked_scores(
    logits: torch.Tensor, targets: torch.Tensor, seen: list[torch.Tensor]
) -> torch.Tensor:
    """Scores a list is drawn from: padding and each user's seen items at -inf, the target kept
    (as filtered ranking keeps it)."""
    scores = logits.detach().float().clone()
    rows = torch.arange(len(targets))
    target_scores = scores[rows, targets]
    scores[:, 0] = float("-inf")
    for row, items in enumerate(seen):
        if len(items):
            scores[row, items] = float("-inf")
    scores[rows, targets] = target_scores
    return scores
