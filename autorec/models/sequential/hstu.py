"""HSTU: hierarchical sequential transduction units ("Actions Speak Louder than Words",
Zhai et al., ICML 2024).

Each layer computes, from its input X,

    U, V, Q, K = split(SiLU(f1(LayerNorm(X))))
    A = SiLU(Q K^T + rab) / n           pointwise, causal, padding masked; n = max_len
                                        (the `hstu_attention` kernel op computes A V)
    Y = X + f2(dropout(U * LayerNorm(A V)))

The attention is not a softmax: every allowed (query, key) pair contributes SiLU of its score,
divided by the sequence length n, so the weights need not sum to one and the model can express
how much history there is. `rab` is a learned relative attention bias per layer and head, looked
up by the bucketed distance i - j between query and key (exact for near items, log-spaced for far
ones). The paper's bias also has a bucketed time-gap term; `SequentialData` carries no
timestamps, so that term is omitted.

Input and output follow SASRec here (item plus position embeddings in, tied full softmax
cross-entropy out; see `autorec.models.sequential.layers`); the paper's sampled softmax over
L2-normalised embeddings is a device for billions of items that ML-100K does not need.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from autorec import kernels
from autorec.models.sequential.layers import (
    TiedSequenceModel,
    TransformerConfig,
    check_heads_divide,
)


class HSTUConfig(TransformerConfig):
    num_heads: int = pydantic.Field(2, ge=1, le=64, description="attention heads per block")
    linear_dim: int | None = pydantic.Field(
        None, ge=1, le=1024, description="per-head width of U and V; None: hidden_dim // num_heads"
    )
    attention_dim: int | None = pydantic.Field(
        None, ge=1, le=1024, description="per-head width of Q and K; None: hidden_dim // num_heads"
    )
    position_buckets: int = pydantic.Field(
        32, ge=2, le=512, description="buckets of the relative-position bias"
    )

    @pydantic.model_validator(mode="after")
    def _heads(self) -> HSTUConfig:
        if self.linear_dim is None or self.attention_dim is None:
            check_heads_divide(self.hidden_dim, self.num_heads)
        return self

    @property
    def head_dims(self) -> tuple[int, int]:
        """(linear_dim, attention_dim) with the defaults filled in."""
        default = self.hidden_dim // self.num_heads
        return self.linear_dim or default, self.attention_dim or default


def relative_position_buckets(length: int, num_buckets: int) -> torch.Tensor:
    """LongTensor [L, L]: the bucket of distance i - j (0 where j > i, which the mask hides).

    Distances below num_buckets // 2 get a bucket each; longer ones share log-spaced buckets up
    to distance L - 1, so a bias table of fixed size covers any max_len.
    """
    rows = torch.arange(length)
    distance = (rows.unsqueeze(1) - rows.unsqueeze(0)).clamp(min=0)
    exact = max(num_buckets // 2, 1)
    if length <= num_buckets:
        return distance
    far = exact + (
        torch.log(distance.clamp(min=exact).float() / exact)
        / math.log(max(length - 1, exact + 1) / exact)
        * (num_buckets - 1 - exact)
    ).round().long()
    return torch.where(distance < exact, distance, far.clamp(max=num_buckets - 1))


class HSTULayer(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        linear_dim: int,
        attention_dim: int,
        max_len: int,
        num_buckets: int,
        dropout: float,
    ):
        super().__init__()
        self.num_heads, self.linear_dim, self.attention_dim = num_heads, linear_dim, attention_dim
        self.max_len = max_len
        self.input_norm = nn.LayerNorm(dim)
        self.uvqk = nn.Linear(dim, num_heads * (2 * linear_dim + 2 * attention_dim))
        self.output = nn.Linear(num_heads * linear_dim, dim)
        self.dropout = nn.Dropout(dropout)
        # A parameter, not an nn.Embedding: it is a bias table, not an id embedding.
        self.position_bias = nn.Parameter(torch.zeros(num_buckets, num_heads))
        self.register_buffer(
            "buckets", relative_position_buckets(max_len, num_buckets), persistent=False
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x [B, L, dim] of left-padded rows holding lengths [B] items each."""
        batch, length, _ = x.shape
        h, dl, da = self.num_heads, self.linear_dim, self.attention_dim
        u, v, q, k = F.silu(self.uvqk(self.input_norm(x))).split(
            [h * dl, h * dl, h * da, h * da], dim=-1
        )
        v, q, k = (t.view(batch, length, h, -1) for t in (v, q, k))
        # The bias depends on the distance i - j only: column 0 of the bucket table holds the
        # bucket of every distance 0..max_len-1.
        distance_bias = self.position_bias[self.buckets[:length, 0]].t()  # [H, L]
        attended = kernels.op("hstu_attention")(q, k, v, distance_bias, lengths, 1.0 / self.max_len)
        attended = F.layer_norm(attended.reshape(batch, length, h * dl), (h * dl,))
        return x + self.output(self.dropout(u * attended))


class HSTU(TiedSequenceModel):
    """HSTU encoder (pointwise SiLU attention, relative-position bias), tied full softmax."""

    name: ClassVar[str] = "hstu"
    Config: ClassVar[type[HSTUConfig]] = HSTUConfig
    # As good as 1e-3 on ML-100K in about half the epochs.
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 3e-3}

    def __init__(self, num_items: int, max_len: int, config: HSTUConfig | None = None):
        super().__init__(num_items, max_len, config)
        c = self.config
        linear_dim, attention_dim = c.head_dims
        self.layers = nn.ModuleList(
            HSTULayer(
                c.hidden_dim,
                c.num_heads,
                linear_dim,
                attention_dim,
                max_len,
                c.position_buckets,
                c.dropout,
            )
            for _ in range(c.num_blocks)
        )

    def blocks(self, hidden: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        # Left-padded rows: each row's items are its last `lengths` positions.
        lengths = (inputs != 0).sum(dim=1)
        valid = (inputs != 0).unsqueeze(-1)
        for layer in self.layers:
            hidden = layer(hidden, lengths) * valid
        return hidden
