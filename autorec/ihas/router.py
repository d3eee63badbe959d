"""The router: sends each instance to its group's model at inference.

A row's group is the centroid nearest to its keep-probabilities, which the search model's
embeddings and gate network compute; with one group there is nothing to route and the search
model is not needed.
"""

from __future__ import annotations

import torch
from torch import nn

from autorec.data.features import TensorSplit
from autorec.ihas.cluster import assign
from autorec.ihas.gated_embedding import find_gates
from autorec.metrics import auc, logloss


class Router(nn.Module):
    def __init__(
        self, search_model: nn.Module | None, centroids: torch.Tensor, models: list[nn.Module]
    ):
        super().__init__()
        if len(models) != len(centroids):
            raise ValueError(f"{len(models)} group models for {len(centroids)} centroids")
        self.search_model = search_model if len(models) > 1 else None
        self.register_buffer("centroids", centroids.float().clone())
        self.models = nn.ModuleList(models)

    def group_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B] the group of every row."""
        rows = len(next(iter(batch.values())))
        if self.search_model is None:
            return torch.zeros(rows, dtype=torch.long)
        probabilities = find_gates(self.search_model).probabilities(batch)
        return assign(probabilities.cpu(), self.centroids.cpu())

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        groups = self.group_of(batch)
        rows = len(groups)
        logits = torch.zeros(rows, device=next(iter(batch.values())).device)
        for group, model in enumerate(self.models):
            index = torch.nonzero(groups == group).squeeze(1)
            if len(index):
                part = {name: column[index.to(column.device)] for name, column in batch.items()}
                logits[index.to(logits.device)] = model(part).to(logits.dtype)
        return logits

    def routing_params(self) -> int:
        """Parameters only the routing needs: the search model's tables and gate network."""
        if self.search_model is None:
            return 0
        return find_gates(self.search_model).parameter_count()


@torch.no_grad()
def score(module: nn.Module, split: TensorSplit, batch_size: int = 4096) -> dict[str, float]:
    """AUC and log loss of `module` (a router or one model) over a split, in eval mode."""
    module.eval()
    device = next(module.parameters()).device
    logits = [
        module({k: v.to(device) for k, v in split.batch(slice(b, b + batch_size)).items()}).cpu()
        for b in range(0, len(split), batch_size)
    ]
    if not logits:
        return {"auc": float("nan"), "logloss": float("nan")}
    joined = torch.cat(logits)
    return {"auc": auc(joined, split.label), "logloss": logloss(torch.sigmoid(joined.double()), split.label)}
