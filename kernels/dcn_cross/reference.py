"""The PyTorch oracle, and what DCNv2's full-rank cross layers run by default."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dcn_cross(
    x0: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """x_{l+1} = x0 * (x W^T + b) + x for x0, x [B, N], weight [N, N], bias [N]: [B, N]."""
    return x0 * F.linear(x, weight, bias) + x
