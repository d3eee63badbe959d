"""Logistic regression: one weight per id (and per numeric field) plus a bias."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from autorec.data.features import Feature
from autorec.models.base import CTRModel, CTRModelConfig
from autorec.models.ctr.layers import coerce_config, require_features
from autorec.models.embedding import FieldEmbedding


class LRConfig(CTRModelConfig):
    """Logistic regression has no embedding width: `embedding_dim` and `field_dims` are accepted
    (so one search space can cover every model) and ignored, though `field_dims` must still name
    real fields."""


class LinearTerm(nn.Module):
    """Sum over fields of a scalar weight per id; multi-hot and sequence fields contribute the mean
    weight of their ids, numeric fields value * weight. Shared tables follow the declaration."""

    def __init__(self, features: list[Feature]):
        super().__init__()
        self.weights = FieldEmbedding(features, 1, init_std=0.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(self.weights.pooled(batch), dim=1).sum(dim=1)


class LogisticRegression(CTRModel):
    name: ClassVar[str] = "lr"
    Config: ClassVar[type[LRConfig]] = LRConfig

    def __init__(self, features: list[Feature], config: LRConfig | dict[str, Any] | None = None):
        config = coerce_config(LRConfig, config)
        require_features(self.name, features)
        super().__init__(features, config)
        # Widths are ignored, but a misspelt field name is still the user's error to hear about.
        FieldEmbedding(features, 1, {name: 1 for name in config.field_dims})
        self.linear = LinearTerm(features)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(batch) + self.bias
