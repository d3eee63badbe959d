"""Per-field embedding tables, each with its own dimension.

The embedding-dimension search gives every field its own width, so every CTR model builds its
inputs through `FieldEmbedding`; models whose interaction needs one shared width (FM's inner
products, cross layers, attention across fields) add a `FieldAligner`.
"""

from __future__ import annotations

import torch
from torch import nn

from autorec import kernels
from autorec.data.features import Feature, FeatureKind
from autorec.errors import ConfigError
from autorec.kernels.embedding_pool.reference import jagged_ids


def embeddable_fields(features: list[Feature]) -> list[str]:
    """Names of the fields that own an embedding table: the keys `field_dims` accepts."""
    return [f.name for f in features if f.owns_table]


class FieldEmbedding(nn.Module):
    def __init__(
        self,
        features: list[Feature],
        embedding_dim: int,
        field_dims: dict[str, int] | None = None,
        init_std: float = 0.01,
    ):
        super().__init__()
        field_dims = dict(field_dims or {})
        owners = embeddable_fields(features)
        unknown = sorted(set(field_dims) - set(owners))
        if unknown:
            raise ConfigError(
                f"field_dims names unknown field(s) {', '.join(unknown)}; fields: {', '.join(owners)}"
            )
        self.features = {f.name: f for f in features}
        self.dims: dict[str, int] = {}
        self.tables = nn.ModuleDict()
        for feature in features:
            if "." in feature.name:
                # nn.ModuleDict keys cannot hold dots; say so instead of failing deep in torch.
                raise ConfigError(f"field name '{feature.name}' contains '.'; rename the column")
            if not feature.owns_table:
                continue
            dim = field_dims.get(feature.name, embedding_dim)
            rows = 1 if feature.kind == FeatureKind.NUMERIC else feature.vocab_size
            padding = None if feature.kind == FeatureKind.NUMERIC else 0
            table = nn.Embedding(rows, dim, padding_idx=padding)
            nn.init.normal_(table.weight, std=init_std)
            if padding is not None:
                with torch.no_grad():
                    table.weight[0].zero_()
            self.tables[feature.name] = table
            self.dims[feature.name] = dim
        for feature in features:
            if not feature.owns_table:
                owner = feature.shares_embedding_with
                if owner not in self.tables:
                    raise ConfigError(f"field '{feature.name}' shares the table of unknown '{owner}'")
                self.dims[feature.name] = self.dims[owner]

    @property
    def names(self) -> list[str]:
        return list(self.features)

    def table(self, name: str) -> nn.Embedding:
        feature = self.features[name]
        return self.tables[feature.shares_embedding_with or name]

    def lookup(self, batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        """One field: [B, d] for categorical, multi-hot (mean) and numeric; [B, L, d] for sequences."""
        feature = self.features[name]
        values = batch[name]
        table = self.table(name)
        if feature.kind == FeatureKind.NUMERIC:
            return values.float().unsqueeze(-1) * table.weight[0]
        if feature.kind == FeatureKind.MULTI_HOT:
            return mean_pool(table, values)
        return table(values)

    def pooled(self, batch: dict[str, torch.Tensor], names: list[str] | None = None) -> list[torch.Tensor]:
        """One [B, d_f] vector per field; sequences are mean-pooled over their non-padding items."""
        out = []
        for name in self.names if names is None else names:
            if self.features[name].kind == FeatureKind.SEQUENCE:
                out.append(mean_pool(self.table(name), batch[name]))
            else:
                out.append(self.lookup(batch, name))
        return out

    def parameter_count(self) -> int:
        return sum(t.weight.numel() for t in self.tables.values())


class FieldAligner(nn.Module):
    """Projects each field's vector to one shared width; fields already that wide pass through."""

    def __init__(self, dims: dict[str, int], names: list[str], out_dim: int):
        super().__init__()
        self.names = list(names)
        self.out_dim = out_dim
        self.projections = nn.ModuleDict(
            {n: nn.Linear(dims[n], out_dim, bias=False) for n in self.names if dims[n] != out_dim}
        )

    def forward(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        """[B, F, out_dim] from F vectors of widths d_f."""
        aligned = [
            self.projections[n](v) if n in self.projections else v for n, v in zip(self.names, vectors)
        ]
        return torch.stack(aligned, dim=1)


def mean_pool(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """Mean of the vectors of each row's non-zero ids in padded ids [B, L]: [B, d], zero where a
    row has none. Runs the `embedding_pool` op the `kernels` setting selects."""
    values, offsets = jagged_ids(ids)
    return kernels.op("embedding_pool")(table.weight, values, offsets, mode="mean")
