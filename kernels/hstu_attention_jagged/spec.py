"""Shapes, inputs, tolerances and cost model of hstu_attention_jagged."""

from __future__ import annotations

import torch

from autorec.kernels.common import DEFAULT_TOLERANCES, element_size, generator, triton_builder
from autorec.kernels.hstu_attention.spec import KNOBS, attention_inputs
from autorec.kernels.hstu_attention_jagged.reference import hstu_attention_jagged
from autorec.kernels.registry import OpSpec


def make_inputs(shape: dict, dtype: torch.dtype, device: torch.device, seed: int) -> dict:
    """Row lengths drawn from 0..max_length (empty and full rows included)."""
    gen = generator(seed, device)
    b, n = shape["batch"], shape["max_length"]
    lengths = torch.randint(0, n + 1, (b,), generator=gen, device=device)
    offsets = torch.zeros(b + 1, dtype=torch.long, device=device)
    torch.cumsum(lengths, dim=0, out=offsets[1:])
    inputs = attention_inputs((int(offsets[-1]),), n, shape, dtype, device, gen)
    return {**inputs, "offsets": offsets}


def bytes_moved(shape: dict, dtype: torch.dtype) -> int:
    """At the expected token count, rows uniform in 0..max_length."""
    tokens = shape["batch"] * shape["max_length"] // 2
    h, da, dl = shape["heads"], shape["attention_dim"], shape["linear_dim"]
    return (tokens * h * (2 * da + 2 * dl) + h * shape["max_length"]) * element_size(dtype)


def flops(shape: dict, dtype: torch.dtype) -> int:
    """Two matmuls over each row's causal half: E[len^2] / 2 = max_length^2 / 6 pairs a row."""
    h, da, dl = shape["heads"], shape["attention_dim"], shape["linear_dim"]
    pairs = shape["batch"] * shape["max_length"] ** 2 // 6
    return pairs * h * 2 * (da + dl)


build = triton_builder("hstu_attention_jagged", KNOBS)

SPEC = OpSpec(
    name="hstu_attention_jagged",
    signature=(
        "def hstu_attention_jagged(q: Tensor, k: Tensor, v: Tensor, distance_bias: Tensor,"
        " offsets: Tensor, scale: float) -> Tensor  # q, k [T, H, da], v [T, H, dl],"
        " distance_bias [H, N] (N >= longest row), offsets [B + 1] int64 -> [T, H, dl]"
    ),
    reference=hstu_attention_jagged,
    triton_default=build({}),
    knobs=KNOBS,
    build=build,
    make_inputs=make_inputs,
    grad_inputs=("q", "k", "v", "distance_bias"),
    shapes={
        "interpreter": [
            {"batch": 3, "max_length": 9, "heads": 2, "attention_dim": 8, "linear_dim": 8},
            {"batch": 4, "max_length": 37, "heads": 1, "attention_dim": 16, "linear_dim": 12},
            {"batch": 2, "max_length": 1, "heads": 1, "attention_dim": 4, "linear_dim": 4},
        ],
        "suite": [
            {"batch": 128, "max_length": 50, "heads": 2, "attention_dim": 32, "linear_dim": 32}
        ],
        # Production histories are long and ragged: jagged rows skip the padding's work.
        "production": [
            {"batch": 256, "max_length": 200, "heads": 4, "attention_dim": 64, "linear_dim": 64},
            {"batch": 64, "max_length": 1024, "heads": 4, "attention_dim": 64, "linear_dim": 64},
            {"batch": 16, "max_length": 4096, "heads": 2, "attention_dim": 128, "linear_dim": 128},
        ],
    },
    tolerances=dict(DEFAULT_TOLERANCES),
    memory_bound=False,
    bytes_moved=bytes_moved,
    flops=flops,
)
