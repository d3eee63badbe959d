"""DCN-V2 (Wang et al., 2021): explicit feature crosses plus a deep MLP."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pydantic
import torch
from torch import nn

from autorec import kernels
from autorec.data.features import Feature
from autorec.models.base import CTRModel
from autorec.models.ctr.layers import MLPConfig, coerce_config, mlp, mlp_width, require_features
from autorec.models.embedding import FieldEmbedding


class DCNv2Config(MLPConfig):
    cross_layers: int = pydantic.Field(2, ge=0, le=8, description="number of cross layers")
    cross_rank: int | None = pydantic.Field(
        None,
        ge=1,
        le=1024,
        description="rank of each cross layer's weight (W = U V^T); None means full rank",
    )
    structure: Literal["stacked", "parallel"] = pydantic.Field(
        "parallel",
        description="stacked: cross network feeds the MLP; parallel: both read the embeddings "
        "and their outputs are concatenated",
    )


class CrossLayer(nn.Module):
    """x_{l+1} = x_0 * (W x_l + b) + x_l, with W full rank or factored as U V^T.

    A full-rank layer is the `dcn_cross` op (fused, selected by the `kernels` setting)."""

    def __init__(self, width: int, rank: int | None):
        super().__init__()
        if rank is None or rank >= width:
            self.weight: nn.Module = nn.Linear(width, width)
        else:
            self.weight = nn.Sequential(nn.Linear(width, rank, bias=False), nn.Linear(rank, width))

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.weight, nn.Linear):
            return kernels.op("dcn_cross")(x0, x, self.weight.weight, self.weight.bias)
        return x0 * self.weight(x) + x


class DCNv2(CTRModel):
    """The input is the concatenation of the raw per-field embeddings (each field keeps its own
    width; crosses act on the concatenated vector, so no alignment is needed). Multi-hot and
    sequence fields are mean-pooled. `cross_layers=0` leaves a plain embedding + MLP model."""

    name: ClassVar[str] = "dcnv2"
    Config: ClassVar[type[DCNv2Config]] = DCNv2Config

    def __init__(
        self, features: list[Feature], config: DCNv2Config | dict[str, Any] | None = None
    ):
        config = coerce_config(DCNv2Config, config)
        require_features(self.name, features)
        super().__init__(features, config)
        self.embedding = FieldEmbedding(features, config.embedding_dim, config.field_dims)
        width = sum(self.embedding.dims.values())
        self.cross = nn.ModuleList(
            CrossLayer(width, config.cross_rank) for _ in range(config.cross_layers)
        )
        self.mlp = mlp(width, config.hidden_units, config.dropout, config.batch_norm)
        deep_width = mlp_width(width, config.hidden_units)
        head_width = deep_width if config.structure == "stacked" else width + deep_width
        self.head = nn.Linear(head_width, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x0 = torch.cat(self.embedding.pooled(batch), dim=1)
        crossed = x0
        for layer in self.cross:
            crossed = layer(x0, crossed)
        if self.config.structure == "stacked":
            out = self.mlp(crossed)
        else:
            out = torch.cat([crossed, self.mlp(x0)], dim=1)
        return self.head(out).squeeze(-1)
