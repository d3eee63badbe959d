"""FairRec-style knobs for CTR models: keep a sensitive attribute out of the user embedding.

FairRec (Wu et al., 2021) splits a user's representation into a bias-aware part, which predicts
the sensitive attribute, and a bias-free part kept orthogonal to it and unpredictive of it by an
adversary. Here the bias-aware direction is what a linear attribute head reads from the user_id
embedding; two regularisers act on the embedding through the trainer's extra-loss hook:

- `fair_adversary_weight` w_a: the head (trained on detached embeddings, so it is a probe that
  always keeps up) is frozen and the embeddings are pushed to make its prediction uniform:
  w_a * cross-entropy(head(u), uniform). Confusion, unlike a reversed gradient, is bounded.
- `fair_orthogonality_weight` w_o: w_o * mean cos^2(u, d_c) over the head's class directions
  d_c (its weight rows minus their mean): the bias-aware component of each embedding shrinks.

A linear adversary is easy to dodge: the embedding moves the attribute to a direction the head
does not read yet, and a probe fitted afterwards still finds it (Elazar & Goldberg, 2018, saw
the same). On planted data (tests/metrics/test_knobs.py) the orthogonality term removes the
leakage and the adversary needs a weight near 100 to dent it; docs/beyond_accuracy.md has the
figures. A reversed gradient (maximising the head's loss) did no better: a confidently wrong
head leaks as much as a right one.

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
        weight, bias = self.classifier.weight.detach(), self.classifier.bias.detach()
        if self.adversary:
            log_p = F.log_softmax(F.linear(u, weight, bias), dim=1)
            loss = loss - self.adversary * log_p.mean(dim=1).mean()  # CE against uniform
        if self.orthogonality:
            directions = F.normalize(weight - weight.mean(dim=0), dim=1)
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
