"""Most-popular baseline: every user gets the same ranking, by training-set item counts.

The floor every sequential model must clear; on ML-100K under full ranking with history excluded
it scores about 0.09 HR@10.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from autorec.data.features import SequentialData
from autorec.errors import ConfigError
from autorec.models.base import SequentialModel, SequentialModelConfig


class Popularity(SequentialModel):
    """Scores item i by log(1 + its count in the training sequences); no parameters to train.

    `hidden_dim` in its config is accepted (every sequential config has it) and unused.
    """

    name: ClassVar[str] = "popularity"
    trainable: ClassVar[bool] = False

    def __init__(self, num_items: int, max_len: int, config: SequentialModelConfig | None = None):
        super().__init__(num_items, max_len, SequentialModelConfig() if config is None else config)
        self.register_buffer("counts", torch.zeros(num_items + 1))

    def prepare(self, data: SequentialData) -> None:
        if data.num_items != self.num_items:
            raise ConfigError(
                f"popularity was built for {self.num_items} items but {data.dataset} has "
                f"{data.num_items}"
            )
        counts = torch.zeros(self.num_items + 1)
        for sequence in data.train:
            counts += torch.bincount(sequence.long(), minlength=self.num_items + 1)[
                : self.num_items + 1
            ].float()
        counts[0] = 0.0
        self.counts.copy_(counts)

    def score(self, history: torch.Tensor) -> torch.Tensor:
        logits = self.counts.log1p().expand(history.shape[0], -1).clone()
        logits[:, 0] = float("-inf")
        return logits

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the add-one-smoothed item frequencies (softmax of log(1 + count))."""
        real = targets[targets != 0]
        if real.numel() == 0:
            return torch.zeros(())
        logits = self.counts[1:].log1p().expand(real.shape[0], -1)
        return F.cross_entropy(logits, real - 1)
