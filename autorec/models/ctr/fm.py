"""Factorization machine (Rendle, 2010): a bias, a weight per id, pairwise field interactions."""

from __future__ import annotations

from typing import Any, ClassVar

import pydantic
import torch
from torch import nn

from autorec import kernels
from autorec.data.features import Feature
from autorec.kernels.fm_interaction.reference import fm_interaction as pairwise_interactions
from autorec.models.base import CTRModel, CTRModelConfig
from autorec.models.ctr.layers import coerce_config, require_features
from autorec.models.ctr.lr import LinearTerm
from autorec.models.embedding import FieldAligner, FieldEmbedding


class FMConfig(CTRModelConfig):
    interaction_dim: int | None = pydantic.Field(
        None,
        ge=1,
        le=1024,
        description="shared width the fields are projected to for their inner products; "
        "None means embedding_dim (fields of that width are not projected)",
    )

    @property
    def aligned_dim(self) -> int:
        return self.interaction_dim or self.embedding_dim


class FMBlock(nn.Module):
    """The whole FM logit; DeepFM adds its MLP beside it over the same embeddings.

    The pairwise term is the `fm_interaction` op (`pairwise_interactions` is its reference).
    Every field, whatever its kind, is one FM variable: multi-hot and sequence fields enter as the
    mean of their ids' vectors, numeric fields as value * vector.
    """

    def __init__(self, features: list[Feature], embedding: FieldEmbedding, interaction_dim: int):
        super().__init__()
        self.embedding = embedding
        self.aligner = FieldAligner(embedding.dims, embedding.names, interaction_dim)
        self.linear = LinearTerm(features)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(
        self, batch: dict[str, torch.Tensor], pooled: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        pooled = self.embedding.pooled(batch) if pooled is None else pooled
        interactions = kernels.op("fm_interaction")(self.aligner(pooled))
        return self.bias + self.linear(batch) + interactions


class FM(CTRModel):
    """With nothing but inner products between id embeddings, FM overfits ML-100K within a few
    epochs; an L2 penalty (Adam weight decay 3e-4, the trainer's default for this model, which a
    user's `weight_decay` setting overrides) is worth about +0.003 test AUC there."""

    name: ClassVar[str] = "fm"
    Config: ClassVar[type[FMConfig]] = FMConfig
    train_defaults: ClassVar[dict[str, Any]] = {"weight_decay": 3e-4}

    def __init__(self, features: list[Feature], config: FMConfig | dict[str, Any] | None = None):
        config = coerce_config(FMConfig, config)
        require_features(self.name, features)
        super().__init__(features, config)
        self.embedding = FieldEmbedding(features, config.embedding_dim, config.field_dims)
        self.fm = FMBlock(features, self.embedding, config.aligned_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fm(batch)
