"""SASRec: causal self-attention over a user's item sequence (Kang & McAuley, ICDM 2018).

Item embeddings (scaled by sqrt(d)) plus learned position embeddings feed `num_blocks` blocks of
multi-head causal self-attention and a position-wise feed-forward layer (ReLU, width d, as in the
authors' code), each with a residual connection and LayerNorm; the output at each position is
scored against every item through the input embedding table (tied weights).

Training differs from the paper on purpose: the paper scores each target against one sampled
negative with binary cross-entropy; here every position takes a full softmax cross-entropy over
all items. Full softmax is markedly stronger under full-ranking evaluation (it is what later
SASRec reproductions use to reach their reported numbers), and with ML-100K's 1,682 items its
cost is one [positions x items] matrix product per batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from autorec.models.sequential.layers import (
    TiedSequenceModel,
    TransformerConfig,
    attention_mask,
    check_heads_divide,
)


class SASRecConfig(TransformerConfig):
    norm_first: bool = pydantic.Field(
        True,
        description="LayerNorm before attention and feed-forward (the authors' code) instead of after",
    )

    @pydantic.model_validator(mode="after")
    def _heads(self) -> SASRecConfig:
        check_heads_divide(self.hidden_dim, self.num_heads)
        return self


class SASRecBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float, norm_first: bool):
        super().__init__()
        self.num_heads, self.dropout, self.norm_first = num_heads, dropout, norm_first
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attention_out = nn.Linear(dim, dim)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim)
        )
        self.residual_dropout = nn.Dropout(dropout)

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = (
            t.view(batch, length, self.num_heads, -1).transpose(1, 2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(batch, length, dim)
        return self.residual_dropout(self.attention_out(out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.attend(self.attention_norm(x), mask)
            return x + self.residual_dropout(self.feed_forward(self.feed_forward_norm(x)))
        x = self.attention_norm(x + self.attend(x, mask))
        return self.feed_forward_norm(x + self.residual_dropout(self.feed_forward(x)))


class SASRec(TiedSequenceModel):
    """Self-attentive sequential recommendation, trained with full softmax cross-entropy."""

    name: ClassVar[str] = "sasrec"
    Config: ClassVar[type[SASRecConfig]] = SASRecConfig
    # As good as 1e-3 on ML-100K in about half the epochs.
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 3e-3}

    def __init__(self, num_items: int, max_len: int, config: SASRecConfig | None = None):
        super().__init__(num_items, max_len, config)
        c = self.config
        self.layers = nn.ModuleList(
            SASRecBlock(c.hidden_dim, c.num_heads, c.dropout, c.norm_first)
            for _ in range(c.num_blocks)
        )

    def blocks(self, hidden: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        mask = attention_mask(inputs)
        valid = (inputs != 0).unsqueeze(-1)
        for layer in self.layers:
            hidden = layer(hidden, mask) * valid  # padding rows stay zero, as in the authors' code
        return hidden
