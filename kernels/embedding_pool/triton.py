"""embedding_pool in Triton: one program per (bag, block of columns) gathers the bag's rows.

The backward scatter-adds each bag's gradient (divided by its length for the mean) into an fp32
copy of the table's gradient with atomics, since several bags may name the same id; the result
is cast to the table's dtype once at the end.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from autorec.kernels.common import launch_options, next_power_of_2, require_triton_device

MAX_BLOCK_D = 128


@triton.jit
def _forward(weight_ptr, values_ptr, offsets_ptr, out_ptr, D, stride_w,
             MEAN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    bag = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    start = tl.load(offsets_ptr + bag)
    end = tl.load(offsets_ptr + bag + 1)
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for first in range(start, end, BLOCK_N):
        index = first + tl.arange(0, BLOCK_N)
        present = index < end
        ids = tl.load(values_ptr + index, mask=present, other=0)
        rows = tl.load(weight_ptr + ids[:, None] * stride_w + cols[None, :],
                       mask=present[:, None] & col_mask[None, :], other=0.0)
        acc += tl.sum(rows.to(tl.float32), axis=0)
    if MEAN:
        acc = acc / tl.maximum(end - start, 1).to(tl.float32)
    tl.store(out_ptr + bag * D + cols, acc.to(out_ptr.dtype.element_ty), mask=col_mask)


@triton.jit
def _backward(grad_ptr, values_ptr, offsets_ptr, dweight_ptr, D, stride_g,
              MEAN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    bag = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    col_mask = cols < D
    start = tl.load(offsets_ptr + bag)
    end = tl.load(offsets_ptr + bag + 1)
    grad = tl.load(grad_ptr + bag * stride_g + cols, mask=col_mask, other=0.0).to(tl.float32)
    if MEAN:
        grad = grad / tl.maximum(end - start, 1).to(tl.float32)
    for first in range(start, end, BLOCK_N):
        index = first + tl.arange(0, BLOCK_N)
        present = index < end
        ids = tl.load(values_ptr + index, mask=present, other=0)
        tile = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32) + grad[None, :]
        tl.atomic_add(dweight_ptr + ids[:, None] * D + cols[None, :], tile,
                      mask=present[:, None] & col_mask[None, :])


def _grid(bags: int, dim: int) -> tuple[tuple[int, int], int]:
    block_d = min(next_power_of_2(dim), MAX_BLOCK_D)
    return (bags, triton.cdiv(dim, block_d)), block_d


class EmbeddingPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, values, offsets, mode: str, knobs: dict[str, Any]):
        if mode not in ("sum", "mean"):
            raise ValueError(f"embedding_pool mode must be 'sum' or 'mean', got {mode!r}")
        require_triton_device(weight, values, offsets)
        if weight.stride(1) != 1:
            weight = weight.contiguous()
        values, offsets = values.contiguous(), offsets.contiguous()
        bags, dim = len(offsets) - 1, weight.shape[1]
        out = torch.empty(bags, dim, dtype=weight.dtype, device=weight.device)
        grid, block_d = _grid(bags, dim)
        if bags and dim:
            _forward[grid](
                weight, values, offsets, out, dim, weight.stride(0), MEAN=mode == "mean",
                BLOCK_N=knobs["BLOCK_N"], BLOCK_D=block_d, **launch_options(knobs),
            )
        ctx.save_for_backward(values, offsets)
        ctx.table, ctx.mode, ctx.knobs = (weight.shape, weight.dtype), mode, knobs
        return out

    @staticmethod
    def backward(ctx, grad):
        values, offsets = ctx.saved_tensors
        (rows, dim), dtype = ctx.table
        dweight = torch.zeros(rows, dim, dtype=torch.float32, device=grad.device)
        grid, block_d = _grid(len(offsets) - 1, dim)
        if grid[0] and dim:
            grad = grad if grad.stride(1) == 1 else grad.contiguous()
            _backward[grid](
                grad, values, offsets, dweight, dim, grad.stride(0), MEAN=ctx.mode == "mean",
                BLOCK_N=ctx.knobs["BLOCK_N"], BLOCK_D=block_d, **launch_options(ctx.knobs),
            )
        return dweight.to(dtype), None, None, None, None


def embedding_pool(weight, values, offsets, mode: str = "mean", *, knobs: dict[str, Any]):
    return EmbeddingPool.apply(weight, values, offsets, mode, knobs)
