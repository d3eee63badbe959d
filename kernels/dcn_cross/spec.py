"""Shapes, inputs, tolerances and cost model of dcn_cross."""

from __future__ import annotations

import math

import torch

from autorec.kernels.common import (
    DEFAULT_TOLERANCES,
    element_size,
    generator,
    randn,
    triton_builder,
)
from autorec.kernels.dcn_cross.reference import dcn_cross
from autorec.kernels.registry import OpSpec

KNOBS = {
    "BLOCK_M": (32, 16, 64, 128),  # batch rows per tile
    "BLOCK_N": (32, 16, 64, 128),  # output columns per tile
    "BLOCK_K": (32, 16, 64),  # reduction step
    "num_warps": (4, 2, 8),
    "num_stages": (2, 1, 3, 4),
    # "ieee" keeps fp32 products exact; "tf32" is faster on GPUs and may fail the fp32 gate.
    "input_precision": ("ieee", "tf32"),
}


def make_inputs(shape: dict, dtype: torch.dtype, device: torch.device, seed: int) -> dict:
    gen = generator(seed, device)
    b, n = shape["batch"], shape["width"]
    return {
        "x0": randn((b, n), dtype, device, gen),
        "x": randn((b, n), dtype, device, gen),
        # nn.Linear's scale, so x W^T stays O(1) at every width.
        "weight": randn((n, n), dtype, device, gen, scale=1 / math.sqrt(n)),
        "bias": randn((n,), dtype, device, gen),
    }


def bytes_moved(shape: dict, dtype: torch.dtype) -> int:
    b, n = shape["batch"], shape["width"]
    return (3 * b * n + n * n + n) * element_size(dtype)


def flops(shape: dict, dtype: torch.dtype) -> int:
    b, n = shape["batch"], shape["width"]
    return 2 * b * n * n + 3 * b * n


build = triton_builder("dcn_cross", KNOBS)

SPEC = OpSpec(
    name="dcn_cross",
    signature=(
        "def dcn_cross(x0: Tensor, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor"
        "  # x0, x [B, N], weight [N, N], bias [N] -> x0 * (x @ weight.T + bias) + x, [B, N]"
    ),
    reference=dcn_cross,
    triton_default=build({}),
    knobs=KNOBS,
    build=build,
    make_inputs=make_inputs,
    grad_inputs=("x0", "x", "weight", "bias"),
    shapes={
        "interpreter": [
            {"batch": 7, "width": 12},
            {"batch": 40, "width": 36},
            {"batch": 1, "width": 5},
        ],
        # DCNv2 on ML-100K: 9 fields of width 16 concatenated, training batches of 1024.
        "suite": [{"batch": 1024, "width": 144}, {"batch": 4096, "width": 144}],
        "production": [
            {"batch": 4096, "width": 26 * 16},
            {"batch": 4096, "width": 39 * 32},
            {"batch": 4096, "width": 40 * 64},
        ],
    },
    tolerances=dict(DEFAULT_TOLERANCES),
    memory_bound=False,
    bytes_moved=bytes_moved,
    flops=flops,
)
