"""The PyTorch oracle, and what FM and DeepFM run with the default `kernels` setting."""

from __future__ import annotations

import torch


def fm_interaction(x: torch.Tensor) -> torch.Tensor:
    """Sum over field pairs of <v_i, v_j> for fields [B, F, D], in O(F D): shape [B].

    sum_{i<j} <v_i, v_j> = 0.5 * sum_d ((sum_i v_id)^2 - sum_i v_id^2).
    """
    square_of_sum = x.sum(dim=1).pow(2)
    sum_of_squares = x.pow(2).sum(dim=1)
    return 0.5 * (square_of_sum - sum_of_squares).sum(dim=1)
