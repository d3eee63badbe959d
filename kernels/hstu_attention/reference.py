"""The PyTorch oracle, and what HSTU's layers run by default."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def allowed_pairs(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """Bool [B, L, L]: query i may see key j when j <= i and j is one of the row's last
    lengths[b] positions (its items; the rest is left padding), and always itself, so a padding
    query has one key (its output is discarded by the model)."""
    positions = torch.arange(length, device=lengths.device)
    causal = positions.unsqueeze(1) >= positions.unsqueeze(0)
    keys = positions.unsqueeze(0) >= (length - lengths).unsqueeze(1)  # [B, L]
    diagonal = torch.eye(length, dtype=torch.bool, device=lengths.device)
    return (causal & keys.unsqueeze(1)) | diagonal


def hstu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    distance_bias: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """out[b, i, h] = sum_j allowed(i, j) * SiLU(<q_bih, k_bjh> + distance_bias[h, i - j]) * scale
    * v[b, j, h]: [B, L, H, dl] from q, k [B, L, H, da], v [B, L, H, dl], distance_bias [H, L]
    (the bias of distance 0..L-1), lengths [B] (items per row, left-padded) and scale (1/max_len
    in HSTU: the weights are not normalised, so they keep how much history there is)."""
    length = q.shape[1]
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, d]
    positions = torch.arange(length, device=q.device)
    distance = (positions.unsqueeze(1) - positions.unsqueeze(0)).clamp(min=0)
    bias = distance_bias[:, distance]  # [H, L, L]
    weights = F.silu(qh @ kh.transpose(-1, -2) + bias) * scale
    weights = weights * allowed_pairs(lengths, length).unsqueeze(1)
    return (weights @ vh).transpose(1, 2)
