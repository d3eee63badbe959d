"""Shapes, inputs, tolerances and cost model of fm_interaction."""

from __future__ import annotations

import torch

from autorec.kernels.common import (
    DEFAULT_TOLERANCES,
    element_size,
    generator,
    randn,
    triton_builder,
)
from autorec.kernels.fm_interaction.reference import fm_interaction
from autorec.kernels.registry import OpSpec

KNOBS = {
    "BLOCK_B": (16, 32, 64, 8, 128),  # batch rows per program
    "num_warps": (4, 2, 8, 1),
    "num_stages": (2, 1, 3, 4),
}


def make_inputs(shape: dict, dtype: torch.dtype, device: torch.device, seed: int) -> dict:
    gen = generator(seed, device)
    return {"x": randn((shape["batch"], shape["fields"], shape["dim"]), dtype, device, gen)}


def bytes_moved(shape: dict, dtype: torch.dtype) -> int:
    b, f, d = shape["batch"], shape["fields"], shape["dim"]
    return (b * f * d + b) * element_size(dtype)


def flops(shape: dict, dtype: torch.dtype) -> int:
    b, f, d = shape["batch"], shape["fields"], shape["dim"]
    return 3 * b * f * d + 3 * b * d  # sum and sum of squares per element, then the square-diff


build = triton_builder("fm_interaction", KNOBS)

SPEC = OpSpec(
    name="fm_interaction",
    signature="def fm_interaction(x: Tensor) -> Tensor  # x [B, F, D] -> [B]",
    reference=fm_interaction,
    triton_default=build({}),
    knobs=KNOBS,
    build=build,
    make_inputs=make_inputs,
    grad_inputs=("x",),
    shapes={
        "interpreter": [
            {"batch": 5, "fields": 3, "dim": 4},
            {"batch": 33, "fields": 9, "dim": 16},
            {"batch": 1, "fields": 1, "dim": 7},
        ],
        # FM and DeepFM on ML-100K: 9 fields of width 16, training batches of 1024.
        "suite": [{"batch": 1024, "fields": 9, "dim": 16}, {"batch": 4096, "fields": 9, "dim": 16}],
        "production": [
            {"batch": 4096, "fields": 26, "dim": 16},
            {"batch": 4096, "fields": 39, "dim": 64},
            {"batch": 4096, "fields": 40, "dim": 128},
        ],
    },
    tolerances=dict(DEFAULT_TOLERANCES),
    memory_bound=True,
    bytes_moved=bytes_moved,
    flops=flops,
)
