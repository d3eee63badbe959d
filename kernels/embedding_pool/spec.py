"""Shapes, inputs, tolerances and cost model of embedding_pool."""

from __future__ import annotations

import torch

from autorec.kernels.common import (
    DEFAULT_TOLERANCES,
    element_size,
    generator,
    randn,
    triton_builder,
)
from autorec.kernels.embedding_pool.reference import embedding_pool
from autorec.kernels.registry import OpSpec

KNOBS = {
    "BLOCK_N": (16, 8, 32, 64),  # ids of one bag gathered per step
    "num_warps": (4, 1, 2, 8),
    "num_stages": (2, 1, 3),
}


def make_inputs(shape: dict, dtype: torch.dtype, device: torch.device, seed: int) -> dict:
    """Bag lengths drawn uniformly from 0..max_bag (so some bags are empty), ids from 0..rows-1."""
    gen = generator(seed, device)
    batch, max_bag = shape["batch"], shape["max_bag"]
    lengths = torch.randint(0, max_bag + 1, (batch,), generator=gen, device=device)
    offsets = torch.zeros(batch + 1, dtype=torch.long, device=device)
    torch.cumsum(lengths, dim=0, out=offsets[1:])
    total = int(offsets[-1])
    values = torch.randint(0, shape["rows"], (total,), generator=gen, device=device)
    weight = randn((shape["rows"], shape["dim"]), dtype, device, gen)
    return {"weight": weight, "values": values, "offsets": offsets, "mode": shape["mode"]}


def _ids(shape: dict) -> int:
    return shape["batch"] * shape["max_bag"] // 2  # the expected number of ids


def bytes_moved(shape: dict, dtype: torch.dtype) -> int:
    """Each id's row is read once, each bag written once, ids and offsets read once."""
    size = element_size(dtype)
    return (_ids(shape) * shape["dim"] + shape["batch"] * shape["dim"]) * size + (
        _ids(shape) + shape["batch"] + 1
    ) * 8


def flops(shape: dict, dtype: torch.dtype) -> int:
    return _ids(shape) * shape["dim"]


build = triton_builder("embedding_pool", KNOBS)

SPEC = OpSpec(
    name="embedding_pool",
    signature=(
        "def embedding_pool(weight: Tensor, values: Tensor, offsets: Tensor, mode: str = 'mean')"
        " -> Tensor  # weight [V, D], values [N] int64, offsets [B + 1] int64 -> [B, D]"
    ),
    reference=embedding_pool,
    triton_default=build({}),
    knobs=KNOBS,
    build=build,
    make_inputs=make_inputs,
    grad_inputs=("weight",),
    shapes={
        "interpreter": [
            {"batch": 6, "max_bag": 4, "rows": 10, "dim": 8, "mode": "mean"},
            {"batch": 9, "max_bag": 21, "rows": 30, "dim": 16, "mode": "sum"},
            {"batch": 3, "max_bag": 0, "rows": 5, "dim": 4, "mode": "mean"},
        ],
        # ML-100K: genres (19 ids, up to 6 per item) and hist_items (1683 items, 20 per row).
        "suite": [
            {"batch": 1024, "max_bag": 6, "rows": 20, "dim": 16, "mode": "mean"},
            {"batch": 1024, "max_bag": 20, "rows": 1683, "dim": 16, "mode": "mean"},
        ],
        "production": [
            {"batch": 4096, "max_bag": 50, "rows": 1_000_000, "dim": 64, "mode": "sum"},
            {"batch": 4096, "max_bag": 200, "rows": 1_000_000, "dim": 128, "mode": "mean"},
            {"batch": 4096, "max_bag": 20, "rows": 100_000, "dim": 16, "mode": "mean"},
        ],
    },
    tolerances=dict(DEFAULT_TOLERANCES),
    memory_bound=True,
    bytes_moved=bytes_moved,
    flops=flops,
)
