"""The hidden states RecSAE reads: a sequential model's representation of a history.

For the attention models (SASRec, HSTU and their subclasses) the representation is the last
position's output of `encode`, and the model's logits are its inner products with the item table
(`TiedSequenceModel.score`). A model may instead define `represent(history) -> [B, d]` and
`score_hidden(hidden) -> [B, num_items + 1]`; a model with neither has no state to explain.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from autorec.data.features import SequentialData, pad_left
from autorec.explain.errors import ExplainError


class HiddenStateProbe:
    """Reads a trained sequential model's last hidden state and scores items from one."""

    def __init__(self, model: nn.Module, name: str):
        self.model, self.name = model, name
        self._represent = getattr(model, "represent", None)
        self._score_hidden = getattr(model, "score_hidden", None)
        if self._represent is None and callable(getattr(model, "encode", None)):
            self._represent = lambda history: model.encode(history)[:, -1]
        if self._score_hidden is None and isinstance(
            getattr(model, "item_embedding", None), nn.Embedding
        ):
            self._score_hidden = self._tied_scores
        if self._represent is None:
            raise ExplainError(
                f"model '{name}' exposes no hidden state (it has neither `encode` nor "
                "`represent`); autorec explain reads attention models such as sasrec and hstu"
            )

    def _tied_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden @ self.model.item_embedding.weight.T
        logits[:, 0] = float("-inf")
        return logits

    @torch.no_grad()
    def represent(self, histories: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """[N, d] last hidden states of left-padded histories [N, L], on the CPU."""
        self.model.eval()
        device = next(self.model.parameters()).device
        return torch.cat([
            self._represent(histories[b : b + batch_size].to(device)).float().cpu()
            for b in range(0, len(histories), batch_size)
        ]) if len(histories) else torch.empty(0)

    @torch.no_grad()
    def scores_from_hidden(self, hidden: torch.Tensor, check: torch.Tensor | None = None):
        """Item logits computed from hidden states, or None when this model's `score` is not
        a function of the state alone (checked against `score` on the histories `check`)."""
        if self._score_hidden is None:
            return None
        self.model.eval()
        device = next(self.model.parameters()).device
        if check is not None and len(check):
            sample = check[:64].to(device)
            direct = self.model.score(sample).float()
            rebuilt = self._score_hidden(self._represent(sample)).float()
            if not torch.allclose(direct, rebuilt, rtol=1e-4, atol=1e-4, equal_nan=True):
                return None  # e.g. a subclass that re-ranks or adds a bias in `score`
        return self._score_hidden(hidden.to(device)).float().cpu()


@dataclasses.dataclass
class Histories:
    """The sequences explained: prefixes of each user's history, as the model reads them."""

    inputs: torch.Tensor  # [N, max_len] left-padded item ids
    users: np.ndarray  # [N] index of the user (row of SequentialData) each prefix belongs to


def user_prefixes(
    data: SequentialData, min_length: int, max_sequences: int, seed: int
) -> Histories:
    """Every prefix of at least `min_length` items of each user's history before the test item
    (train items and the validation item), a seeded uniform sample of `max_sequences` when
    there are more. A prefix is what the model would read to recommend the item after it."""
    full = [
        np.append(train.numpy(), int(target))
        for train, target in zip(data.train, data.valid_target)
    ]
    pairs = [(u, end) for u, seq in enumerate(full) for end in range(min_length, len(seq) + 1)]
    if not pairs:
        raise ExplainError(f"{data.dataset}: no user has {min_length} items before the test item")
    if len(pairs) > max_sequences:
        chosen = np.random.default_rng(seed).choice(len(pairs), max_sequences, replace=False)
        pairs = [pairs[i] for i in np.sort(chosen)]
    inputs = pad_left([full[u][:end] for u, end in pairs], data.max_len)
    return Histories(inputs, np.array([u for u, _ in pairs], dtype=np.int64))
