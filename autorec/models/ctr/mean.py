"""The user-mean plus item-mean label scorer: the reference every learned CTR model must beat."""

from __future__ import annotations

from typing import Any, ClassVar

import pydantic
import torch

from autorec.data.features import CTRData, Feature, FeatureKind
from autorec.errors import ConfigError
from autorec.models.base import CTRModel, CTRModelConfig
from autorec.models.ctr.layers import coerce_config, require_features
from autorec.models.embedding import embeddable_fields

FIELDS = ("user_id", "item_id")


class MeanLabelConfig(CTRModelConfig):
    """`embedding_dim` and `field_dims` do not apply (there are no embeddings) and are ignored."""

    prior_count: float = pydantic.Field(
        5.0,
        ge=0.0,
        le=1000.0,
        description="pseudo-rows at the global mean added to every user and item, so ids seen "
        "once or twice do not get extreme means",
    )


class MeanLabel(CTRModel):
    """Scores a row by user_mean + item_mean - global_mean of the training labels.

    Means are shrunk toward the global mean by `prior_count` pseudo-rows; ids never seen in
    training (and id 0) get the global mean. A feature list without `user_id` or `item_id` just
    loses that term. Not trained: `prepare` fills buffers, and there are no parameters.
    """

    name: ClassVar[str] = "mean"
    Config: ClassVar[type[MeanLabelConfig]] = MeanLabelConfig
    trainable: ClassVar[bool] = False

    def __init__(
        self, features: list[Feature], config: MeanLabelConfig | dict[str, Any] | None = None
    ):
        config = coerce_config(MeanLabelConfig, config)
        require_features(self.name, features)
        super().__init__(features, config)
        unknown = sorted(set(config.field_dims) - set(embeddable_fields(features)))
        if unknown:
            raise ConfigError(f"field_dims names unknown field(s) {', '.join(unknown)}")
        by_name = {f.name: f for f in features}
        self.fields = [
            name
            for name in FIELDS
            if name in by_name and by_name[name].kind == FeatureKind.CATEGORICAL
        ]
        self.register_buffer("global_mean", torch.tensor(0.5))
        for name in self.fields:
            self.register_buffer(f"{name}_mean", torch.full((by_name[name].vocab_size,), 0.5))

    def prepare(self, data: CTRData) -> None:
        labels = data.train.label.float()
        global_mean = labels.mean() if len(labels) else torch.tensor(0.5)
        self.global_mean.copy_(global_mean)
        prior = self.config.prior_count
        for name in self.fields:
            ids = data.train.columns[name].long()
            table = getattr(self, f"{name}_mean")
            sums = torch.zeros_like(table).index_add_(0, ids, labels)
            counts = torch.zeros_like(table).index_add_(0, ids, torch.ones_like(labels))
            means = (sums + prior * global_mean) / (counts + prior)
            table.copy_(torch.where(counts > 0, means, global_mean))
            table[0] = global_mean

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        first = batch[next(iter(batch))]
        score = self.global_mean.expand(first.shape[0]).clone()
        for name in self.fields:
            table = getattr(self, f"{name}_mean")
            ids = batch[name].long()
            ids = torch.where((ids > 0) & (ids < table.shape[0]), ids, 0)
            score = score + table[ids] - self.global_mean
        return torch.logit(score.clamp(1e-4, 1 - 1e-4))
