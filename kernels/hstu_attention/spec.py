"""Shapes, inputs, tolerances and cost model of hstu_attention."""

from __future__ import annotations

import torch

from autorec.kernels.common import (
    DEFAULT_TOLERANCES,
    element_size,
    generator,
    randn,
    triton_builder,
)
from autorec.kernels.hstu_attention.reference import hstu_attention
from autorec.kernels.registry import OpSpec

KNOBS = {
    "BLOCK_M": (32, 16, 64, 128),  # queries per program
    "BLOCK_N": (32, 16, 64, 128),  # keys per inner step
    "num_warps": (4, 2, 8),
    "num_stages": (2, 1, 3),
}


def attention_inputs(leading: tuple[int, ...], distances: int, shape: dict, dtype: torch.dtype,
                     device: torch.device, gen: torch.Generator) -> dict:
    """q, k, v of shape leading + (heads, width), a bias for `distances` distances, scale 1/that."""
    h, da, dl = shape["heads"], shape["attention_dim"], shape["linear_dim"]
    qk_scale = da**-0.25  # so that <q, k> is O(1) at every width
    return {
        "q": randn((*leading, h, da), dtype, device, gen, scale=qk_scale),
        "k": randn((*leading, h, da), dtype, device, gen, scale=qk_scale),
        "v": randn((*leading, h, dl), dtype, device, gen),
        "distance_bias": randn((h, distances), dtype, device, gen, scale=0.5),
        "scale": 1.0 / distances,  # HSTU divides by max_len
    }


def make_inputs(shape: dict, dtype: torch.dtype, device: torch.device, seed: int) -> dict:
    """Row lengths drawn from 0..L, empty and full rows included."""
    gen = generator(seed, device)
    b, n = shape["batch"], shape["length"]
    inputs = attention_inputs((b, n), n, shape, dtype, device, gen)
    inputs["lengths"] = torch.randint(0, n + 1, (b,), generator=gen, device=device)
    return inputs


def bytes_moved(shape: dict, dtype: torch.dtype) -> int:
    b, n, h = shape["batch"], shape["length"], shape["heads"]
    da, dl = shape["attention_dim"], shape["linear_dim"]
    return (b * n * h * (2 * da + 2 * dl) + h * n) * element_size(dtype) + b * 8


def flops(shape: dict, dtype: torch.dtype) -> int:
    """Two matmuls over the causal half of the L x L scores."""
    b, n, h = shape["batch"], shape["length"], shape["heads"]
    da, dl = shape["attention_dim"], shape["linear_dim"]
    return b * h * n * (n + 1) // 2 * 2 * (da + dl)


build = triton_builder("hstu_attention", KNOBS)

SPEC = OpSpec(
    name="hstu_attention",
    signature=(
        "def hstu_attention(q: Tensor, k: Tensor, v: Tensor, distance_bias: Tensor,"
        " lengths: Tensor, scale: float) -> Tensor  # q, k [B, L, H, da], v [B, L, H, dl],"
        " distance_bias [H, L], lengths [B] int64 (left-padded rows) -> [B, L, H, dl]"
    ),
    reference=hstu_attention,
    triton_default=build({}),
    knobs=KNOBS,
    build=build,
    make_inputs=make_inputs,
    grad_inputs=("q", "k", "v", "distance_bias"),
    shapes={
        "interpreter": [
            {"batch": 2, "length": 9, "heads": 2, "attention_dim": 8, "linear_dim": 8},
            {"batch": 3, "length": 37, "heads": 1, "attention_dim": 16, "linear_dim": 12},
            {"batch": 1, "length": 1, "heads": 1, "attention_dim": 4, "linear_dim": 4},
        ],
        # HSTU on ML-100K: max_len 50, hidden 64 in 2 heads, batches of 128 sequences.
        "suite": [{"batch": 128, "length": 50, "heads": 2, "attention_dim": 32, "linear_dim": 32}],
        "production": [
            {"batch": 256, "length": 200, "heads": 4, "attention_dim": 64, "linear_dim": 64},
            {"batch": 32, "length": 1024, "heads": 4, "attention_dim": 64, "linear_dim": 64},
            {"batch": 4, "length": 4096, "heads": 2, "attention_dim": 128, "linear_dim": 128},
        ],
    },
    tolerances=dict(DEFAULT_TOLERANCES),
    memory_bound=False,
    bytes_moved=bytes_moved,
    flops=flops,
)
