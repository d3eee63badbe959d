"""The PyTorch oracle: the padded op's reference on the rows laid out left-padded."""

from __future__ import annotations

import torch

from autorec.kernels.hstu_attention.reference import hstu_attention


def hstu_attention_jagged(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    distance_bias: torch.Tensor,
    offsets: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """HSTU attention of jagged rows: q, k [T, H, da], v [T, H, dl], row b is tokens
    offsets[b]..offsets[b+1]-1, oldest first, each sees itself and the earlier tokens of its row.
    distance_bias [H, N] covers distances 0..N-1, N at least the longest row. Returns [T, H, dl].

    The same numbers as `hstu_attention` on the rows left-padded to N, which is how it is computed
    here: the oracle is the padded reference, not a second derivation.
    """
    lengths = offsets[1:] - offsets[:-1]
    bound = distance_bias.shape[1]
    rows = torch.repeat_interleave(torch.arange(len(lengths), device=q.device), lengths)
    # Token t of row b sits at slot bound - len_b + (t - offsets[b]) of the left-padded row.
    slots = bound - lengths[rows] + torch.arange(q.shape[0], device=q.device) - offsets[rows]

    def padded(t: torch.Tensor) -> torch.Tensor:
        empty = t.new_zeros(len(lengths), bound, *t.shape[1:])
        return empty.index_put((rows, slots), t)

    dense = hstu_attention(padded(q), padded(k), padded(v), distance_bias, lengths, scale)
    return dense[rows, slots]
