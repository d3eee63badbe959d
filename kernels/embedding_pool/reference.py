"""The PyTorch oracle, and what the models' multi-hot and history pooling runs by default."""

from __future__ import annotations

import torch


def embedding_pool(
    weight: torch.Tensor, values: torch.Tensor, offsets: torch.Tensor, mode: str = "mean"
) -> torch.Tensor:
    """Bag b pools the rows weight[values[offsets[b]:offsets[b + 1]]]: [B, D].

    `offsets` holds B + 1 non-decreasing positions into `values`, starting at 0. An empty bag
    pools to zeros in both modes. The backward scatter-adds each bag's gradient into the rows of
    `weight` its ids name.
    """
    if mode not in ("sum", "mean"):
        raise ValueError(f"embedding_pool mode must be 'sum' or 'mean', got {mode!r}")
    lengths = offsets[1:] - offsets[:-1]
    bags = torch.repeat_interleave(torch.arange(len(lengths), device=values.device), lengths)
    pooled = torch.zeros(len(lengths), weight.shape[1], dtype=torch.float32, device=weight.device)
    pooled = pooled.index_add(0, bags, weight[values].float())
    if mode == "mean":
        pooled = pooled / lengths.clamp(min=1).unsqueeze(1)
    return pooled.to(weight.dtype)


def jagged_ids(padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids [B, L] (0 is padding) -> (values, offsets) of the non-zero ids of each row."""
    mask = padded != 0
    lengths = mask.sum(dim=1)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long, device=padded.device)
    torch.cumsum(lengths, dim=0, out=offsets[1:])
    return padded[mask], offsets
