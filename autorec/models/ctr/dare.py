"""DARE (Feng et al., 2024, "Long-Sequence Recommendation Models Need Decoupled Embeddings").

DIN-style target attention in which the history's items have two embeddings: an ATTENTION
embedding, used only to score history items against the target, and a REPRESENTATION
embedding, used only for what the pooled history says. One table trained for both jobs lets
gradients of the one interfere with the other; decoupling them also lets the attention table be
narrow (`attention_dim`) at little cost.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pydantic
import torch
from torch import nn

from autorec.data.features import Feature
from autorec.models.base import CTRModel
from autorec.models.ctr.layers import (
    MLPConfig,
    coerce_config,
    masked_softmax,
    mlp,
    mlp_width,
    require_features,
    target_sequences,
)
from autorec.models.embedding import FieldEmbedding


class DAREConfig(MLPConfig):
    attention_dim: int = pydantic.Field(
        16, ge=1, le=1024, description="width of the separate attention embedding table"
    )
    target_aware: bool = pydantic.Field(
        True,
        description="also feed the MLP the target-aware representation: the attended history "
        "times the target's representation embedding, elementwise (the paper's TR)",
    )


class DARE(CTRModel):
    """For every sequence that shares a categorical field's table (hist_items -> item_id):

    - attention: softmax over history of <a_target, a_item> / sqrt(attention_dim), where `a` rows
      come from an attention table of width `attention_dim` owned by the target field
      (`attention_tables[target]`), separate from the representation table;
    - representation: the attention-weighted sum of the items' representation embeddings (the
      ordinary `FieldEmbedding` table, width `field_dims[target]`), and, with `target_aware`,
      that sum times the target's representation embedding elementwise;
    - the MLP reads the other fields, these pooled vectors and the target.

    With no such sequence (categorical fields only) there is no attention term and DARE is a plain
    embedding + MLP model with no attention tables; sequences without a target are mean-pooled.
    """

    name: ClassVar[str] = "dare"
    Config: ClassVar[type[DAREConfig]] = DAREConfig

    def __init__(self, features: list[Feature], config: DAREConfig | dict[str, Any] | None = None):
        config = coerce_config(DAREConfig, config)
        require_features(self.name, features)
        super().__init__(features, config)
        self.embedding = FieldEmbedding(features, config.embedding_dim, config.field_dims)
        self.targets = target_sequences(features)
        self.plain = [f.name for f in features if f.name not in self.targets]
        by_name = {f.name: f for f in features}
        self.attention_tables = nn.ModuleDict()
        for target in sorted(set(self.targets.values())):
            table = nn.Embedding(by_name[target].vocab_size, config.attention_dim, padding_idx=0)
            nn.init.normal_(table.weight, std=0.05)
            with torch.no_grad():
                table.weight[0].zero_()
            self.attention_tables[target] = table
        self.scale = 1.0 / math.sqrt(config.attention_dim)
        copies = 2 if config.target_aware else 1
        width = sum(self.embedding.dims[n] for n in self.plain) + copies * sum(
            self.embedding.dims[s] for s in self.targets
        )
        self.mlp = mlp(width, config.hidden_units, config.dropout, config.batch_norm)
        self.head = nn.Linear(mlp_width(width, config.hidden_units), 1)

    def attention_weights(self, batch: dict[str, torch.Tensor], seq: str) -> torch.Tensor:
        """Softmax weights [B, L] of `seq`'s items for its target; zero on padding."""
        table = self.attention_tables[self.targets[seq]]
        query = table(batch[self.targets[seq]])  # [B, a]
        keys = table(batch[seq])  # [B, L, a]
        scores = torch.einsum("ba,bla->bl", query, keys) * self.scale
        return masked_softmax(scores, batch[seq] != 0)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = self.embedding.pooled(batch, self.plain)
        vectors = dict(zip(self.plain, pooled))
        parts = list(pooled)
        for seq, target in self.targets.items():
            weights = self.attention_weights(batch, seq)
            history = torch.einsum("bl,bld->bd", weights, self.embedding.lookup(batch, seq))
            parts.append(history)
            if self.config.target_aware:
                parts.append(history * vectors[target])
        return self.head(self.mlp(torch.cat(parts, dim=1))).squeeze(-1)
