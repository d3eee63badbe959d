"""hstu_attention in Triton, flash-attention style but with no softmax state to carry.

Each weight is SiLU(<q_i, k_j> + bias[i - j]) * scale on its own, so the forward is a plain
running sum of P V over the causal key blocks of one query block. The backward recomputes the
scores: one kernel per key block accumulates dK and dV over the query blocks that see it (and
scatter-adds the bias gradient per distance with atomics), one per query block accumulates dQ.

Padded rows are left-padded: row b's items are its last lengths[b] positions. Query i sees key j
when j <= i and j is an item, and always itself, as `reference.allowed_pairs` says. Jagged rows
(hstu_attention_jagged) are all items; the kernels differ only in how `_row` addresses a row.
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
def _row(rows_ptr, b, N, JAGGED: tl.constexpr):
    """(first token of row b in its tensor, the row's length, its first item position).

    Padded: rows_ptr holds lengths; row b is positions 0..N-1 of slice b, its items last.
    Jagged: rows_ptr holds offsets; row b is tokens offsets[b]..offsets[b+1]-1, all items.
    """
    if JAGGED:
        start = tl.load(rows_ptr + b)
        length = tl.load(rows_ptr + b + 1) - start
        first = length * 0
    else:
        start = tl.load(rows_ptr + b) * 0
        length = start + N
        first = N - tl.load(rows_ptr + b)
    return start, length, first


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
def _score_grad(dp, s, sig, allowed, scale):
    """d loss / d score from d loss / d weight: the derivative of SiLU(s) * scale."""
    return tl.where(allowed, dp * scale * sig * (1.0 + s * (1.0 - sig)), 0.0)


@triton.jit
def _head(ptr, b, h, start, s_b, s_l, s_h):
    """Where position 0 of row b, head h lives."""
    return ptr + b * s_b + start * s_l + h * s_h


@triton.jit
def _load(ptr, rows, cols, n_rows, n_cols, s_row):
    """Tile [rows, cols] of an [n_rows, n_cols] slice with row stride s_row; zeros outside."""
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    return tl.load(ptr + rows[:, None] * s_row + cols[None, :], mask=mask, other=0.0)


@triton.jit
def _store(ptr, value, rows, cols, n_rows, n_cols, s_row):
    mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    tl.store(ptr + rows[:, None] * s_row + cols[None, :], value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _forward(q_ptr, k_ptr, v_ptr, bias_ptr, rows_ptr, out_ptr, scale, N, H, DA, DL,
             sq_b, sq_l, sq_h, sk_b, sk_l, sk_h, sv_b, sv_l, sv_h, so_b, so_l, so_h, s_bias,
             JAGGED: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
             BLOCK_N: tl.constexpr, BLOCK_DA: tl.constexpr, BLOCK_DL: tl.constexpr):
    pid_m = tl.program_id(0)
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    start, L, first = _row(rows_ptr, b, N, JAGGED)
    q_ptr = _head(q_ptr, b, h, start, sq_b, sq_l, sq_h)
    k_ptr = _head(k_ptr, b, h, start, sk_b, sk_l, sk_h)
    v_ptr = _head(v_ptr, b, h, start, sv_b, sv_l, sv_h)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ra = tl.arange(0, BLOCK_DA)
    rl = tl.arange(0, BLOCK_DL)
    q = _load(q_ptr, rm, ra, L, DA, sq_l)
    bias_row = bias_ptr + h * s_bias
    acc = tl.zeros([BLOCK_M, BLOCK_DL], dtype=tl.float32)
    # Keys before both the row's first item and this block's own queries are never seen.
    lo = (tl.minimum(pid_m * BLOCK_M, first) // BLOCK_N) * BLOCK_N
    hi = tl.minimum((pid_m + 1) * BLOCK_M, L)
    for n0 in range(lo, hi, BLOCK_N):
        rn = n0 + tl.arange(0, BLOCK_N)
        k = _load(k_ptr, rn, ra, L, DA, sk_l)
        v = _load(v_ptr, rn, rl, L, DL, sv_l)
        s, allowed, distance = _scores(q, k, rm, rn, first, L, bias_row, UPCAST)
        p = tl.where(allowed, s * tl.sigmoid(s) * scale, 0.0)
        acc += _dot(p.to(v.dtype), v, UPCAST)
    _store(_head(out_ptr, b, h, start, so_b, so_l, so_h), acc, rm, rl, L, DL, so_l)


@triton.jit
def _backward_kv(q_ptr, k_ptr, v_ptr, bias_ptr, rows_ptr, do_ptr, dk_ptr, dv_ptr, dbias_ptr,
                 scale, N, H, DA, DL,
                 sq_b, sq_l, sq_h, sk_b, sk_l, sk_h, sv_b, sv_l, sv_h, so_b, so_l, so_h, s_bias,
                 sdk_b, sdk_l, sdk_h, sdv_b, sdv_l, sdv_h, s_dbias,
                 JAGGED: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_DA: tl.constexpr, BLOCK_DL: tl.constexpr):
    """dK, dV of one key block and its share of d bias; do has the strides so_*."""
    pid_n = tl.program_id(0)
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    start, L, first = _row(rows_ptr, b, N, JAGGED)
    q_ptr = _head(q_ptr, b, h, start, sq_b, sq_l, sq_h)
    do_ptr = _head(do_ptr, b, h, start, so_b, so_l, so_h)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ra = tl.arange(0, BLOCK_DA)
    rl = tl.arange(0, BLOCK_DL)
    k = _load(_head(k_ptr, b, h, start, sk_b, sk_l, sk_h), rn, ra, L, DA, sk_l)
    v = _load(_head(v_ptr, b, h, start, sv_b, sv_l, sv_h), rn, rl, L, DL, sv_l)
    bias_row = bias_ptr + h * s_bias
    dk = tl.zeros([BLOCK_N, BLOCK_DA], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DL], dtype=tl.float32)
    # Queries from this block on see it; padding keys are seen by their own query only.
    lo = (pid_n * BLOCK_N // BLOCK_M) * BLOCK_M
    hi = tl.where(pid_n * BLOCK_N + BLOCK_N > first, L, tl.minimum(pid_n * BLOCK_N + BLOCK_N, L))
    for m0 in range(lo, hi, BLOCK_M):
        rm = m0 + tl.arange(0, BLOCK_M)
        q = _load(q_ptr, rm, ra, L, DA, sq_l)
        do = _load(do_ptr, rm, rl, L, DL, so_l)
        s, allowed, distance = _scores(q, k, rm, rn, first, L, bias_row, UPCAST)
        sig = tl.sigmoid(s)
        p = tl.where(allowed, s * sig * scale, 0.0)
        dv += _dot(tl.trans(p.to(do.dtype)), do, UPCAST)
        ds = _score_grad(_dot(do, tl.trans(v), UPCAST), s, sig, allowed, scale)
        dk += _dot(tl.trans(ds.to(q.dtype)), q, UPCAST)
        tl.atomic_add(dbias_ptr + h * s_dbias + distance, ds, mask=allowed)
    _store(_head(dk_ptr, b, h, start, sdk_b, sdk_l, sdk_h), dk, rn, ra, L, DA, sdk_l)
    _store(_head(dv_ptr, b, h, start, sdv_b, sdv_l, sdv_h), dv, rn, rl, L, DL, sdv_l)


@triton.jit
def _backward_q(q_ptr, k_ptr, v_ptr, bias_ptr, rows_ptr, do_ptr, dq_ptr, scale, N, H, DA, DL,
                sq_b, sq_l, sq_h, sk_b, sk_l, sk_h, sv_b, sv_l, sv_h, so_b, so_l, so_h, s_bias,
                sdq_b, sdq_l, sdq_h,
                JAGGED: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_DA: tl.constexpr, BLOCK_DL: tl.constexpr):
    """dQ of one query block."""
    pid_m = tl.program_id(0)
    b = tl.program_id(1) // H
    h = tl.program_id(1) % H
    start, L, first = _row(rows_ptr, b, N, JAGGED)
    k_ptr = _head(k_ptr, b, h, start, sk_b, sk_l, sk_h)
    v_ptr = _head(v_ptr, b, h, start, sv_b, sv_l, sv_h)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ra = tl.arange(0, BLOCK_DA)
    rl = tl.arange(0, BLOCK_DL)
    q = _load(_head(q_ptr, b, h, start, sq_b, sq_l, sq_h), rm, ra, L, DA, sq_l)
    do = _load(_head(do_ptr, b, h, start, so_b, so_l, so_h), rm, rl, L, DL, so_l)
    bias_row = bias_ptr + h * s_bias
    dq = tl.zeros([BLOCK_M, BLOCK_DA], dtype=tl.float32)
    lo = (tl.minimum(pid_m * BLOCK_M, first) // BLOCK_N) * BLOCK_N
    hi = tl.minimum((pid_m + 1) * BLOCK_M, L)
    for n0 in range(lo, hi, BLOCK_N):
        rn = n0 + tl.arange(0, BLOCK_N)
        k = _load(k_ptr, rn, ra, L, DA, sk_l)
        v = _load(v_ptr, rn, rl, L, DL, sv_l)
        s, allowed, distance = _scores(q, k, rm, rn, first, L, bias_row, UPCAST)
        ds = _score_grad(_dot(do, tl.trans(v), UPCAST), s, tl.sigmoid(s), allowed, scale)
        dq += _dot(ds.to(k.dtype), k, UPCAST)
    _store(_head(dq_ptr, b, h, start, sdq_b, sdq_l, sdq_h), dq, rm, ra, L, DA, sdq_l)


def _strides(*tensors: torch.Tensor, jagged: bool) -> list[int]:
    """(batch, position, head) strides of [B, L, H, d] tensors; jagged ones are [1, T, H, d]
    whose rows start at their offsets instead of at b * stride(0)."""
    return [s for t in tensors for s in (0 if jagged else t.stride(0), t.stride(1), t.stride(2))]


def _unit_last(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


class HSTUAttention(torch.autograd.Function):
    """Both layouts: padded q, k, v [B, L, H, d] with `rows` = lengths [B], or jagged
    [T, H, d] with `rows` = offsets [B + 1]."""

    @staticmethod
    def forward(ctx, q, k, v, distance_bias, rows, scale: float, jagged: bool,
                knobs: dict[str, Any]):
        require_triton_device(q, k, v, distance_bias, rows)
        q, k, v, distance_bias = (_unit_last(t) for t in (q, k, v, distance_bias))
        rows = rows.contiguous()
        if jagged:
            q, k, v = (t.unsqueeze(0) for t in (q, k, v))
            batch, bound = len(rows) - 1, distance_bias.shape[1]
            longest = int((rows[1:] - rows[:-1]).max()) if batch else 0
            if longest > bound:
                raise ValueError(
                    f"hstu_attention_jagged: a row of {longest} items needs distance_bias of "
                    f"at least {longest} distances, got {bound}"
                )
        else:
            batch, bound = q.shape[0], q.shape[1]
        heads, da, dl = q.shape[2], q.shape[3], v.shape[3]
        out = torch.empty(*q.shape[:3], dl, dtype=q.dtype, device=q.device)
        meta = dict(
            JAGGED=jagged, UPCAST=upcast_dot_operands(q.dtype), BLOCK_M=knobs["BLOCK_M"],
            BLOCK_N=knobs["BLOCK_N"], BLOCK_DA=max(16, next_power_of_2(da)),
            BLOCK_DL=max(16, next_power_of_2(dl)), **launch_options(knobs),
        )
        if out.numel() and batch:
            _forward[(triton.cdiv(bound, knobs["BLOCK_M"]), batch * heads)](
                q, k, v, distance_bias, rows, out, scale, bound, heads, da, dl,
                *_strides(q, k, v, out, jagged=jagged), distance_bias.stride(0), **meta,
            )
        ctx.save_for_backward(q, k, v, distance_bias, rows)
        ctx.scale, ctx.jagged, ctx.batch, ctx.bound, ctx.meta = scale, jagged, batch, bound, meta
        return out.squeeze(0) if jagged else out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, distance_bias, rows = ctx.saved_tensors
        jagged, batch, bound, meta = ctx.jagged, ctx.batch, ctx.bound, ctx.meta
        heads, da, dl = q.shape[2], q.shape[3], v.shape[3]
        grad = (grad.unsqueeze(0) if jagged else grad).contiguous()
        # Fresh contiguous gradients; q, k, v may be strided views of one projection.
        dq, dk, dv = (torch.zeros(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v))
        dbias = torch.zeros(distance_bias.shape, dtype=torch.float32, device=q.device)
        if grad.numel() and batch:
            shared = (ctx.scale, bound, heads, da, dl, *_strides(q, k, v, grad, jagged=jagged),
                      distance_bias.stride(0))
            _backward_kv[(triton.cdiv(bound, meta["BLOCK_N"]), batch * heads)](
                q, k, v, distance_bias, rows, grad, dk, dv, dbias, *shared,
                *_strides(dk, dv, jagged=jagged), dbias.stride(0), **meta,
            )
            _backward_q[(triton.cdiv(bound, meta["BLOCK_M"]), batch * heads)](
                q, k, v, distance_bias, rows, grad, dq, *shared, *_strides(dq, jagged=jagged),
                **meta,
            )
        if jagged:
            dq, dk, dv = (t.squeeze(0) for t in (dq, dk, dv))
        return dq, dk, dv, dbias.to(distance_bias.dtype), None, None, None, None


def hstu_attention(q, k, v, distance_bias, lengths, scale: float, *, knobs: dict[str, Any]):
    return HSTUAttention.apply(q, k, v, distance_bias, lengths, scale, False, knobs)


def hstu_attention_jagged(q, k, v, distance_bias, offsets, scale: float, *,
                          knobs: dict[str, Any]):
    return HSTUAttention.apply(q, k, v, distance_bias, offsets, scale, True, knobs)
