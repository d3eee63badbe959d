"""FairRec-style knobs for CTR models: keep a sensitive attribute out of the user embedding.

FairRec (Wu et al., 2021) splits a user's representation into a bias-aware part, which predicts
the sensitive attribute, and a bias-free part kept orthogonal to it and unpredictive of it by an
adversary. Here the bias-aware direction is what a linear attribute head reads from the user_id
embedding; two regularisers act on the embedding through the trainer's extra-loss hook:

- `fair_adversary_weight` w_a: the head (trained on detached embeddings, so it keeps learning
  whatever the embeddings still reveal) is the adversary, and the embeddings are trained to
  leave its scores no spread: w_a * the batch variance of u . d_c over its class directions d_c
  (its weight rows minus their mean), divided by the batch's mean |u|^2.
- `fair_orthogonality_weight` w_o: w_o * mean cos^2(u, d_c): each embedding's component along
  the head's directions shrinks (FairRec's bias-aware / bias-free orthogonality).

Two textbook adversaries were measured first and dropped because they raised the leakage they
were meant to remove: confusion (cross-entropy of the frozen head against the uniform
distribution) took the gender-probe AUC of FM's user embeddings on ML-100K from 0.56 to 0.66 at
weight 1 and 0.80 at weight 10; a reversed gradient (maximising the head's loss) makes the
head confidently wrong, which leaks as much as right (on planted data the probe stayed at 1.0).
Adam's normalised steps overshoot the point of confusion and flip users across it. The spread
penalty has its minimum where the head cannot tell users apart, whatever its bias.

The head exists only while training (`attach` before, `detach` after), so the model's parameter
count, its saved state and its inference do not change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autorec.beyond_accuracy.evaluate import user_table
from autorec.data.attributes import ctr_user_groups
from autorec.data.features import CTRData
from autorec.errors import ConfigError

HEAD = "fairness_head"


class AttributeHead(nn.Module):
    """A linear attribute classifier on the user_id embedding and the two regularisers."""

    def __init__(
        self, table: nn.Embedding, groups: torch.Tensor, adversary: float, orthogonality: float
    ):
        super().__init__()
        self.classes = int(groups.max())
        self.classifier = nn.Linear(table.embedding_dim, self.classes)
        self.register_buffer("groups", groups.long())
        self.adversary, self.orthogonality = adversary, orthogonality
        self._seen: tuple[torch.Tensor, torch.Tensor] | None = None
        # A hook, not an attribute: the table stays the model's, and is not registered twice.
        self._hook = table.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if module.training:
            self._seen = (inputs[0], output)

    def extra_loss(self) -> torch.Tensor:
        if self._seen is None:
            return self.classifier.weight.sum() * 0.0
        ids, embeddings = self._seen
        self._seen = None
        groups = self.groups[ids.reshape(-1)]
        known = groups > 0
        u = embeddings.reshape(-1, embeddings.shape[-1])[known]
        if not len(u):
            return self.classifier.weight.sum() * 0.0
        target = groups[known] - 1
        loss = F.cross_entropy(self.classifier(u.detach()), target)  # the head learns
        weight = self.classifier.weight.detach()
        # The head's class directions (for two classes, one direction up to sign).
        directions = F.normalize(weight - weight.mean(dim=0), dim=1)
        if self.adversary:
            # Leave the head's scores no spread across the batch's users, relative to the
            # embeddings' own scale: what the head reads no longer tells users apart.
            scores = u @ directions.T
            spread = (scores - scores.mean(dim=0)).square().mean()
            loss = loss + self.adversary * spread / u.square().sum(dim=1).mean().clamp(min=1e-12)
        if self.orthogonality:
            cosine = F.normalize(u, dim=1) @ directions.T
            loss = loss + self.orthogonality * cosine.square().mean()
        return loss

    def remove(self) -> None:
        self._hook.remove()


def attach(model: nn.Module, data: CTRData, attribute: str, adversary: float, orthogonality: float):
    """Install the head on `model` (before the trainer collects its loss terms); None if off."""
    if not adversary and not orthogonality:
        return None
    groups = ctr_user_groups(data, attribute)
    if groups is None:
        raise ConfigError(
            f"fair_adversary_weight / fair_orthogonality_weight need a user attribute "
            f"'{attribute}'; dataset '{data.dataset}' has none"
        )
    table = user_table(model)
    if table is None:
        raise ConfigError(
            f"fair_adversary_weight / fair_orthogonality_weight need a model with a user_id "
            f"embedding; '{type(model).__name__}' has none"
        )
    head = AttributeHead(table, groups, adversary, orthogonality)
    model.add_module(HEAD, head)
    return head


def detach(model: nn.Module) -> None:
    """Remove the head and its hook after training."""
    head = getattr(model, HEAD, None)
    if head is not None:
        head.remove()
        delattr(model, HEAD)
