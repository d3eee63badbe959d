"""fm_interaction in Triton: one program per block of batch rows, one pass over the fields.

The forward keeps the per-row field sum s [B, D] (fp32) for the backward, where
d out_b / d x_bfd = s_bd - x_bfd, so the backward is one more streaming pass over x.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from autorec.kernels.common import launch_options, next_power_of_2, require_triton_device


@triton.jit
def _forward(x_ptr, out_ptr, sum_ptr, B, F, D, stride_b, stride_f,
             BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows < B)[:, None] & (cols < D)[None, :]
    base = x_ptr + rows[:, None] * stride_b + cols[None, :]
    total = tl.zeros([BLOCK_B, BLOCK_D], dtype=tl.float32)
    squares = tl.zeros([BLOCK_B, BLOCK_D], dtype=tl.float32)
    for f in range(0, F):
        v = tl.load(base + f * stride_f, mask=mask, other=0.0).to(tl.float32)
        total += v
        squares += v * v
    out = 0.5 * tl.sum(total * total - squares, axis=1)
    tl.store(out_ptr + rows, out.to(out_ptr.dtype.element_ty), mask=rows < B)
    tl.store(sum_ptr + rows[:, None] * D + cols[None, :], total, mask=mask)


@triton.jit
def _backward(x_ptr, sum_ptr, grad_ptr, dx_ptr, B, F, D, stride_b, stride_f,
              BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows < B)[:, None] & (cols < D)[None, :]
    total = tl.load(sum_ptr + rows[:, None] * D + cols[None, :], mask=mask, other=0.0)
    grad = tl.load(grad_ptr + rows, mask=rows < B, other=0.0).to(tl.float32)[:, None]
    offsets = rows[:, None] * stride_b + cols[None, :]
    for f in range(0, F):
        v = tl.load(x_ptr + offsets + f * stride_f, mask=mask, other=0.0).to(tl.float32)
        dx = grad * (total - v)
        tl.store(dx_ptr + offsets + f * stride_f, dx.to(dx_ptr.dtype.element_ty), mask=mask)


class FMInteraction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, knobs: dict[str, Any]) -> torch.Tensor:
        require_triton_device(x)
        x = x.contiguous()
        batch, fields, dim = x.shape
        out = torch.empty(batch, dtype=x.dtype, device=x.device)
        total = torch.empty(batch, dim, dtype=torch.float32, device=x.device)
        block_b, block_d = knobs["BLOCK_B"], next_power_of_2(dim)
        if batch:
            _forward[(triton.cdiv(batch, block_b),)](
                x, out, total, batch, fields, dim, x.stride(0), x.stride(1),
                BLOCK_B=block_b, BLOCK_D=block_d, **launch_options(knobs),
            )
        ctx.save_for_backward(x, total)
        ctx.knobs = knobs
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, total = ctx.saved_tensors
        knobs = ctx.knobs
        grad = grad.contiguous()
        batch, fields, dim = x.shape
        dx = torch.empty_like(x)
        if batch:
            _backward[(triton.cdiv(batch, knobs["BLOCK_B"]),)](
                x, total, grad, dx, batch, fields, dim, x.stride(0), x.stride(1),
                BLOCK_B=knobs["BLOCK_B"], BLOCK_D=next_power_of_2(dim), **launch_options(knobs),
            )
        return dx, None


def fm_interaction(x: torch.Tensor, *, knobs: dict[str, Any]) -> torch.Tensor:
    return FMInteraction.apply(x, knobs)
