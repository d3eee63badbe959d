"""dcn_cross in Triton: one tiled matmul kernel whose epilogue fuses the cross layer.

Forward: z = x W^T + b and y = x0 * z + x in one pass over the output tiles (z is kept in fp32
for the backward). Backward, with g = dL/dy and dz = g * x0:
    dx0 = g * z                     (elementwise, fused with dz)
    dx  = g + dz W                  (matmul, epilogue adds g)
    dW  = dz^T x, db = sum_rows dz  (matmul over the batch; db is the row sum of dz^T's tiles)
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from autorec.kernels.common import launch_options, require_triton_device, upcast_dot_operands

PLAIN, ADD, CROSS = 0, 1, 2


@triton.jit
def _matmul(a_ptr, b_ptr, c_ptr, add_ptr, x0_ptr, bias_ptr, z_ptr, rowsum_ptr,
            M, N, K, s_am, s_ak, s_bk, s_bn,
            EPILOGUE: tl.constexpr, ROWSUM: tl.constexpr, PRECISION: tl.constexpr,
            UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
            BLOCK_K: tl.constexpr):
    """C [M, N] = A [M, K] @ B [K, N] (strided) then the epilogue; C, add, x0 and z are
    contiguous [M, N]. ROWSUM also writes sum_k A[m, k] from the programs of column block 0."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = rm < M
    n_mask = rn < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    rowsum = tl.zeros([BLOCK_M], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        k_mask = rk < K
        a = tl.load(a_ptr + rm[:, None] * s_am + rk[None, :] * s_ak,
                    mask=m_mask[:, None] & k_mask[None, :], other=0.0)
        b = tl.load(b_ptr + rk[:, None] * s_bk + rn[None, :] * s_bn,
                    mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        if ROWSUM:
            rowsum += tl.sum(a.to(tl.float32), axis=1)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc += tl.dot(a, b, input_precision=PRECISION)
    tile = rm[:, None] * N + rn[None, :]
    mask = m_mask[:, None] & n_mask[None, :]
    if EPILOGUE == 1:
        acc += tl.load(add_ptr + tile, mask=mask, other=0.0).to(tl.float32)
    if EPILOGUE == 2:
        z = acc + tl.load(bias_ptr + rn, mask=n_mask, other=0.0).to(tl.float32)[None, :]
        tl.store(z_ptr + tile, z, mask=mask)
        x0 = tl.load(x0_ptr + tile, mask=mask, other=0.0).to(tl.float32)
        acc = x0 * z + tl.load(add_ptr + tile, mask=mask, other=0.0).to(tl.float32)
    tl.store(c_ptr + tile, acc.to(c_ptr.dtype.element_ty), mask=mask)
    if ROWSUM:
        if pid_n == 0:
            tl.store(rowsum_ptr + rm, rowsum, mask=m_mask)


@triton.jit
def _cross_grads(grad_ptr, x0_ptr, z_ptr, dx0_ptr, dz_ptr, numel, BLOCK: tl.constexpr):
    """dx0 = g * z and dz = g * x0, elementwise over contiguous [B, N]."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + offsets, mask=mask, other=0.0)
    x0 = tl.load(x0_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    tl.store(dx0_ptr + offsets, (grad * z).to(dx0_ptr.dtype.element_ty), mask=mask)
    tl.store(dz_ptr + offsets, (grad * x0).to(dz_ptr.dtype.element_ty), mask=mask)


def _precision(knobs: dict[str, Any], dtype: torch.dtype) -> str:
    # input_precision only means something for fp32 operands; others multiply natively.
    return knobs["input_precision"] if dtype == torch.float32 else "ieee"


def _launch(a, b, c, m, n, k, knobs, epilogue=PLAIN, add=None, x0=None, bias=None, z=None,
            rowsum=None):
    grid = (triton.cdiv(m, knobs["BLOCK_M"]), triton.cdiv(n, knobs["BLOCK_N"]))
    dtype = a.dtype
    _matmul[grid](
        a, b, c, c if add is None else add, c if x0 is None else x0, c if bias is None else bias,
        c if z is None else z, c if rowsum is None else rowsum,
        m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
        EPILOGUE=epilogue, ROWSUM=rowsum is not None, PRECISION=_precision(knobs, dtype),
        UPCAST=upcast_dot_operands(dtype), BLOCK_M=knobs["BLOCK_M"], BLOCK_N=knobs["BLOCK_N"],
        BLOCK_K=knobs["BLOCK_K"], **launch_options(knobs),
    )


class DCNCross(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0, x, weight, bias, knobs: dict[str, Any]):
        require_triton_device(x0, x, weight, bias)
        x0, x, weight, bias = (t.contiguous() for t in (x0, x, weight, bias))
        batch, width = x.shape
        out = torch.empty_like(x)
        z = torch.empty(batch, width, dtype=torch.float32, device=x.device)
        if batch and width:
            # x W^T: B [K, N] is weight read transposed, weight[n, k] at n * width + k.
            _launch(x, weight.t(), out, batch, width, width, knobs, CROSS, add=x, x0=x0,
                    bias=bias, z=z)
        ctx.save_for_backward(x0, x, weight, z)
        ctx.knobs = knobs
        return out

    @staticmethod
    def backward(ctx, grad):
        x0, x, weight, z = ctx.saved_tensors
        knobs = ctx.knobs
        grad = grad.contiguous()
        batch, width = x.shape
        dx0, dz = torch.empty_like(x0), torch.empty_like(x)
        dx, dweight = torch.empty_like(x), torch.empty_like(weight)
        dbias = torch.empty(width, dtype=torch.float32, device=x.device)
        if batch and width:
            block = 1024
            _cross_grads[(triton.cdiv(batch * width, block),)](
                grad, x0, z, dx0, dz, batch * width, BLOCK=block
            )
            _launch(dz, weight, dx, batch, width, width, knobs, ADD, add=grad)
            _launch(dz.t(), x, dweight, width, width, batch, knobs, rowsum=dbias)
        else:
            dweight.zero_()
            dbias.zero_()
        return dx0, dx, dweight, dbias.to(weight.dtype), None


def dcn_cross(x0, x, weight, bias, *, knobs: dict[str, Any]):
    return DCNCross.apply(x0, x, weight, bias, knobs)
