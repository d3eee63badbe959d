"""hstu_attention in Triton, flash-attention style but with no softmax state to carry.

Each weight is SiLU(<q_i, k_j> + bias[i - j]) * scale on its own, so the forward is a plain
running sum of P V over the causal key blocks of one query block. The backward recomputes the
scores: one kernel per key block accumulates dK and dV over the query blocks that see it (and
scatter-adds the bias gradient per distance with atomics), one per query block accumulates dQ.

Rows are left-padded: row b's items are its last lengths[b] positions. Query i sees key j when
j <= i and j is an item, and always itself, as `reference.allowed_pairs` says.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from autorec.kernels.common import (
    launch_options,
    next_power_of_2,
    require_triton_device,
    upcast_dot_operands,
)


@triton.jit
def _scores(q, k, rm, rn, first, L, bias_ptr, UPCAST: tl.constexpr):
    """Scores [BM, BN] of queries rm against keys rn, and which of them are allowed."""
    if UPCAST:
        q = q.to(tl.float32)
        k = k.to(tl.float32)
    s = tl.dot(q, tl.trans(k), input_precision="ieee")
    distance = rm[:, None] - rn[None, :]
    causal = (distance >= 0) & (rn[None, :] >= first)
    allowed = (causal | (distance == 0)) & (rm[:, None] < L) & (rn[None, :] < L)
    s += tl.load(bias_ptr + distance, mask=allowed, other=0.0).to(tl.float32)
    return s, allowed, distance


@triton.jit
def _dot(a, b, UPCAST: tl.constexpr):
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _forward(q_ptr, k_ptr, v_ptr, bias_ptr, lengths_ptr, out_ptr, scale, L, H, DA, DL,
             sq_b, sq_l, sq_h, sk_b, sk_l, sk_h, sv_b, sv_l, sv_h, so_b, so_l, so_h, s_bias,
             UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
             BLOCK_DA: tl.constexpr, BLOCK_DL: tl.constexpr):
    pid_m = tl.program_id(0)
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    first = L - tl.load(lengths_ptr + b)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ra = tl.arange(0, BLOCK_DA)
    rl = tl.arange(0, BLOCK_DL)
    q = tl.load(q_ptr + b * sq_b + h * sq_h + rm[:, None] * sq_l + ra[None, :],
                mask=(rm[:, None] < L) & (ra[None, :] < DA), other=0.0)
    bias_row = bias_ptr + h * s_bias
    acc = tl.zeros([BLOCK_M, BLOCK_DL], dtype=tl.float32)
    # Keys before both the row's first item and this block's own queries are never seen.
    lo = (tl.minimum(pid_m * BLOCK_M, first) // BLOCK_N) * BLOCK_N
    hi = tl.minimum((pid_m + 1) * BLOCK_M, L)
    for n0 in range(lo, hi, BLOCK_N):
        rn = n0 + tl.arange(0, BLOCK_N)
        k = tl.load(k_ptr + b * sk_b + h * sk_h + rn[:, None] * sk_l + ra[None, :],
                    mask=(rn[:, None] < L) & (ra[None, :] < DA), other=0.0)
        v = tl.load(v_ptr + b * sv_b + h * sv_h + rn[:, None] * sv_l + rl[None, :],
                    mask=(rn[:, None] < L) & (rl[None, :] < DL), other=0.0)
        s, allowed, distance = _scores(q, k, rm, rn, first, L, bias_row, UPCAST)
        p = tl.where(allowed, s * tl.sigmoid(s) * scale, 0.0)
        acc += _dot(p.to(v.dtype), v, UPCAST)
    tl.store(out_ptr + b * so_b + h * so_h + rm[:, None] * so_l + rl[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=(rm[:, None] < L) & (rl[None, :] < DL))


@triton.jit
def _backward_kv(q_ptr, k_ptr, v_ptr, bias_ptr, lengths_ptr, do_ptr, dk_ptr, dv_ptr, dbias_ptr,
                 scale, L, H, DA, DL,
                 sq_b, sq_l, sq_h, sk_b, sk_l, sk_h, sv_b, sv_l, sv_h, so_b, so_l, so_h, s_bias,
                 sdk_b, sdk_l, sdk_h, sdv_b, sdv_l, sdv_h,
                 UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_DA: tl.constexpr, BLOCK_DL: tl.constexpr):
    """dK, dV of one key block and its share of d bias; do has the strides so_*."""
    pid_n = tl.program_id(0)
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    first = L - tl.load(lengths_ptr + b)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ra = tl.arange(0, BLOCK_DA)
    rl = tl.arange(0, BLOCK_DL)
    k = tl.load(k_ptr + b * sk_b + h * sk_h + rn[:, None] * sk_l + ra[None, :],
                mask=(rn[:, None] < L) & (ra[None, :] < DA), other=0.0)
    v = tl.load(v_ptr + b * sv_b + h * sv_h + rn[:, None] * sv_l + rl[None, :],
                mask=(rn[:, None] < L) & (rl[None, :] < DL), other=0.0)
    bias_row = bias_ptr + h * s_bias
    dk = tl.zeros([BLOCK_N, BLOCK_DA], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DL], dtype=tl.float32)
    # Queries from this block on see it; padding keys are seen by their own query only.
    lo = (pid_n * BLOCK_N // BLOCK_M) * BLOCK_M
    hi = tl.where(pid_n * BLOCK_N + BLOCK_N > first, L, tl.minimum(pid_n * BLOCK_N + BLOCK_N, L))
    for m0 in range(lo, hi, BLOCK_M):
        rm = m0 + tl.arange(0, BLOCK_M)
        q = tl.load(q_ptr + b * sq_b + h * sq_h + rm[:, None] * sq_l + ra[None, :],
                    mask=(rm[:, None] < L) & (ra[None, :] < DA), other=0.0)
        do = tl.load(do_ptr + b * so_b + h * so_h + rm[:, None] * so_l + rl[None, :],
                     mask=(rm[:, None] < L) & (rl[None, :] < DL), other=0.0)
        s, allowed, distance = _scores(q, k, rm, rn, first, L, bias_row, UPCAST)
        sig = tl.sigmoid(s)
        p = tl.where(allowed, s * sig * scale, 0.0)
        dv += _dot(tl.trans(p.to(do.dtype)), do, UPCAST)
        dp = _dot(do, tl.trans(v), UPCAST)
        ds = tl.where(allowed, dp * scale * sig * (1.0 + s * (1.0 - sig)), 0.0)
        dk += _dot(tl.trans(ds.to(q.dtype)), q, UPCAST)
        tl.atomic_add(dbias_ptr + h * L + distance, ds, mask=allowed)
    tl.store(dk_ptr + b * sdk_b + h * sdk_h + rn[:, None] * sdk_l + ra[None, :],
             dk.to(dk_ptr.dtype.element_ty), mask=(rn[:, None] < L) & (ra[None, :] < DA))
    tl.store(dv_ptr + b * sdv_b + h * sdv_h + rn[:, None] * sdv_l + rl[None, :],
             dv.to(dv_ptr.dtype.element_ty), mask=(rn[:, None] < L) & (rl[None, :] < DL))


@triton.jit
def _backward_q(q_ptr, k_ptr, v_ptr, bias_ptr, lengths_ptr, do_ptr, dq_ptr, scale, L, H, DA, DL,
                sq_b, sq_l, sq_h, sk_b, sk_l, sk_h, sv_b, sv_l, sv_h, so_b, so_l, so_h, s_bias,
                sdq_b, sdq_l, sdq_h,
                UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_DA: tl.constexpr, BLOCK_DL: tl.constexpr):
    """dQ of one query block."""
    pid_m = tl.program_id(0)
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    first = L - tl.load(lengths_ptr + b)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ra = tl.arange(0, BLOCK_DA)
    rl = tl.arange(0, BLOCK_DL)
    q = tl.load(q_ptr + b * sq_b + h * sq_h + rm[:, None] * sq_l + ra[None, :],
                mask=(rm[:, None] < L) & (ra[None, :] < DA), other=0.0)
    do = tl.load(do_ptr + b * so_b + h * so_h + rm[:, None] * so_l + rl[None, :],
                 mask=(rm[:, None] < L) & (rl[None, :] < DL), other=0.0)
    bias_row = bias_ptr + h * s_bias
    dq = tl.zeros([BLOCK_M, BLOCK_DA], dtype=tl.float32)
    lo = (tl.minimum(pid_m * BLOCK_M, first) // BLOCK_N) * BLOCK_N
    hi = tl.minimum((pid_m + 1) * BLOCK_M, L)
    for n0 in range(lo, hi, BLOCK_N):
        rn = n0 + tl.arange(0, BLOCK_N)
        k = tl.load(k_ptr + b * sk_b + h * sk_h + rn[:, None] * sk_l + ra[None, :],
                    mask=(rn[:, None] < L) & (ra[None, :] < DA), other=0.0)
        v = tl.load(v_ptr + b * sv_b + h * sv_h + rn[:, None] * sv_l + rl[None, :],
                    mask=(rn[:, None] < L) & (rl[None, :] < DL), other=0.0)
        s, allowed, distance = _scores(q, k, rm, rn, first, L, bias_row, UPCAST)
        sig = tl.sigmoid(s)
        dp = _dot(do, tl.trans(v), UPCAST)
        ds = tl.where(allowed, dp * scale * sig * (1.0 + s * (1.0 - sig)), 0.0)
        dq += _dot(ds.to(k.dtype), k, UPCAST)
    tl.store(dq_ptr + b * sdq_b + h * sdq_h + rm[:, None] * sdq_l + ra[None, :],
             dq.to(dq_ptr.dtype.element_ty), mask=(rm[:, None] < L) & (ra[None, :] < DA))


def _strides(*tensors: torch.Tensor) -> list[int]:
    return [s for t in tensors for s in t.stride()[:3]]


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


class HSTUAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, distance_bias, lengths, scale: float, knobs: dict[str, Any]):
        require_triton_device(q, k, v, distance_bias, lengths)
        q, k, v, distance_bias = (_unit_last(t) for t in (q, k, v, distance_bias))
        lengths = lengths.contiguous()
        batch, length, heads, da = q.shape
        dl = v.shape[-1]
        out = torch.empty(batch, length, heads, dl, dtype=q.dtype, device=q.device)
        meta = dict(
            UPCAST=upcast_dot_operands(q.dtype), BLOCK_M=knobs["BLOCK_M"],
            BLOCK_N=knobs["BLOCK_N"], BLOCK_DA=max(16, next_power_of_2(da)),
            BLOCK_DL=max(16, next_power_of_2(dl)), **launch_options(knobs),
        )
        if out.numel():
            _forward[(triton.cdiv(length, knobs["BLOCK_M"]), batch * heads)](
                q, k, v, distance_bias, lengths, out, scale, length, heads, da, dl,
                *_strides(q, k, v, out), distance_bias.stride(0), **meta,
            )
        ctx.save_for_backward(q, k, v, distance_bias, lengths)
        ctx.scale, ctx.meta = scale, meta
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, distance_bias, lengths = ctx.saved_tensors
        batch, length, heads, da = q.shape
        dl = v.shape[-1]
        grad = grad.contiguous()
        # Fresh contiguous gradients; q, k, v may be strided views of one projection.
        dq, dk, dv = (torch.empty(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v))
        dbias = torch.zeros(heads, length, dtype=torch.float32, device=q.device)
        meta = ctx.meta
        if grad.numel():
            shared = (ctx.scale, length, heads, da, dl, *_strides(q, k, v, grad),
                      distance_bias.stride(0))
            _backward_kv[(triton.cdiv(length, meta["BLOCK_N"]), batch * heads)](
                q, k, v, distance_bias, lengths, grad, dk, dv, dbias, *shared,
                *_strides(dk, dv), **meta,
            )
            _backward_q[(triton.cdiv(length, meta["BLOCK_M"]), batch * heads)](
                q, k, v, distance_bias, lengths, grad, dq, *shared, *_strides(dq), **meta,
            )
        else:
            dq.zero_(), dk.zero_(), dv.zero_()
        return dq, dk, dv, dbias.to(distance_bias.dtype), None, None, None


def hstu_attention(q, k, v, distance_bias, lengths, scale: float, *, knobs: dict[str, Any]):
    return HSTUAttention.apply(q, k, v, distance_bias, lengths, scale, knobs)
