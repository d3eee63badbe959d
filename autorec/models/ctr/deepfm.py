"""DeepFM (Guo et al., 2017): an FM and an MLP side by side over the same field embeddings."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from autorec.data.features import Feature
from autorec.models.base import CTRModel
from autorec.models.ctr.fm import FMBlock, FMConfig
from autorec.models.ctr.layers import MLPConfig, coerce_config, mlp, mlp_width, require_features
from autorec.models.embedding import FieldEmbedding


class DeepFMConfig(MLPConfig, FMConfig):
    """The MLP settings plus FM's `interaction_dim`."""


class DeepFM(CTRModel):
    """The FM part sees fields aligned to `interaction_dim`; the MLP sees the concatenation of the
    raw per-field embeddings, so each field keeps its own width there."""

    name: ClassVar[str] = "deepfm"
    Config: ClassVar[type[DeepFMConfig]] = DeepFMConfig

    def __init__(
        self, features: list[Feature], config: DeepFMConfig | dict[str, Any] | None = None
    ):
        config = coerce_config(DeepFMConfig, config)
        require_features(self.name, features)
        super().__init__(features, config)
        self.embedding = FieldEmbedding(features, config.embedding_dim, config.field_dims)
        self.fm = FMBlock(features, self.embedding, config.aligned_dim)
        width = sum(self.embedding.dims.values())
        self.mlp = mlp(width, config.hidden_units, config.dropout, config.batch_norm)
        self.head = nn.Linear(mlp_width(width, config.hidden_units), 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = self.embedding.pooled(batch)
        deep = self.head(self.mlp(torch.cat(pooled, dim=1))).squeeze(-1)
        return self.fm(batch, pooled) + deep
