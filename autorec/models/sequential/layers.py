"""What SASRec and HSTU share: item and position embeddings in, a tied full softmax out.

Both read a left-padded item sequence and return one hidden vector per position; the logit of item
i is that vector's inner product with item i's input embedding. Training is full softmax
cross-entropy over all items at every position whose target is not padding.

Positions are counted from the right (the newest item is position 0), so a history's outputs do
not depend on how much left padding it carries: padding keys are masked, padding inputs are zero.
"""

from __future__ import annotations

import abc
import math
from typing import Any, TypeVar

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from autorec.models.base import SequentialModel, SequentialModelConfig

ConfigT = TypeVar("ConfigT", bound=SequentialModelConfig)



def own_config(config_type: type[ConfigT], config: Any) -> ConfigT:
    """A sequential model's own config from None (its defaults) or another sequential config
    (every field carried over, then validated against the model's own fields)."""
    if config is None:
        return config_type()
    if isinstance(config, config_type):
        return config
    return config_type.model_validate(config.model_dump())


def check_item_ids(inputs: torch.Tensor, max_len: int) -> int:
    """The length L of a [B, L] batch of item ids, or a ValueError saying what is wrong."""
    if inputs.dim() != 2:
        raise ValueError(f"expected item ids of shape [B, L], got {tuple(inputs.shape)}")
    length = inputs.shape[1]
    if length > max_len:
        raise ValueError(
            f"sequence length {length} exceeds max_len {max_len}; keep the newest items"
        )
    return length

class TransformerConfig(SequentialModelConfig):
    """Settings every attention model here takes; each model adds its own."""

    num_blocks: int = pydantic.Field(2, ge=1, le=12, description="stacked attention blocks")
    num_heads: int = pydantic.Field(1, ge=1, le=64, description="attention heads per block")
    # ML-100K is small: 0.5 (the SASRec paper's value for sparse data) matched or beat 0.2 there.
    dropout: float = pydantic.Field(
        0.5, ge=0.0, lt=1.0, description="dropout on embeddings and inside every block"
    )


def check_heads_divide(hidden_dim: int, num_heads: int) -> None:
    """The shared width splits evenly into heads, or a message that says which values to change."""
    if hidden_dim % num_heads:
        raise ValueError(
            f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads}); "
            f"try num_heads in {{{', '.join(str(h) for h in _divisors(hidden_dim))}}}"
        )


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, min(n, 16) + 1) if n % d == 0]


def attention_mask(inputs: torch.Tensor) -> torch.Tensor:
    """Bool [B, 1, L, L], True where query i may attend to key j: j <= i and j is not padding.

    A padding query may always see itself, so no row is empty (an all-masked softmax row is NaN);
    what a padding position computes never reaches a real one, whose keys exclude padding.
    """
    length = inputs.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
    keys = (inputs != 0).unsqueeze(1)  # [B, 1, L]: the key axis
    diagonal = torch.eye(length, dtype=torch.bool, device=inputs.device)
    return ((causal & keys) | diagonal).unsqueeze(1)


class TiedSequenceModel(SequentialModel, abc.ABC):
    """Embeds items and right-aligned positions, runs `blocks`, scores items with the tied table."""

    Config = TransformerConfig

    def __init__(self, num_items: int, max_len: int, config: TransformerConfig | None = None):
        config = own_config(self.Config, config)
        super().__init__(num_items, max_len, config)
        dim = config.hidden_dim
        self.item_embedding = nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.final_norm = nn.LayerNorm(dim)
        nn.init.normal_(self.item_embedding.weight, std=1.0 / math.sqrt(dim))
        nn.init.normal_(self.position_embedding.weight, std=1.0 / math.sqrt(dim))
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    @abc.abstractmethod
    def blocks(self, hidden: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """[B, L, d] -> [B, L, d]; `inputs` [B, L] says which positions are padding (0)."""

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """One hidden vector per position, [B, L, d]; position t sees only items 0..t."""
        length = check_item_ids(inputs, self.max_len)
        valid = (inputs != 0).unsqueeze(-1)
        positions = torch.arange(length - 1, -1, -1, device=inputs.device)
        hidden = self.item_embedding(inputs) * math.sqrt(self.config.hidden_dim)
        hidden = (hidden + self.position_embedding(positions)) * valid
        hidden = self.blocks(self.embedding_dropout(hidden), inputs)
        return self.final_norm(hidden) * valid

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean softmax cross-entropy over items 1..num_items at positions whose target is not 0."""
        hidden = self.encode(inputs)
        real = targets != 0
        if not bool(real.any()):
            return hidden.sum() * 0.0  # keeps the graph, so a caller's backward() still works
        logits = hidden[real] @ self.item_embedding.weight[1:].T  # only the positions that count
        return F.cross_entropy(logits, targets[real] - 1)

    def score(self, history: torch.Tensor) -> torch.Tensor:
        hidden = self.encode(history)[:, -1]
        logits = hidden @ self.item_embedding.weight.T
        logits[:, 0] = float("-inf")
        return logits
