"""Kernel sources written against fm_interaction's signature, as the LLM operator would send them:
one correct kernel and variations that each break one rule of the gate or the sandbox."""

CORRECT = '''
import torch
import triton
import triton.language as tl


@triton.jit
def fm_forward_kernel(x_ptr, out_ptr, F, D, BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr):
    row = tl.program_id(0)
    f = tl.arange(0, BLOCK_F)[:, None]
    d = tl.arange(0, BLOCK_D)[None, :]
    mask = (f < F) & (d < D)
    x = tl.load(x_ptr + row * F * D + f * D + d, mask=mask, other=0.0).to(tl.float32)
    total = tl.sum(x, axis=0)
    squares = tl.sum(x * x, axis=0)
    tl.store(out_ptr + row, 0.5 * tl.sum(total * total - squares, axis=0))


@triton.jit
def fm_backward_kernel(x_ptr, grad_ptr, dx_ptr, F, D, BLOCK_F: tl.constexpr,
                       BLOCK_D: tl.constexpr):
    row = tl.program_id(0)
    f = tl.arange(0, BLOCK_F)[:, None]
    d = tl.arange(0, BLOCK_D)[None, :]
    mask = (f < F) & (d < D)
    x = tl.load(x_ptr + row * F * D + f * D + d, mask=mask, other=0.0).to(tl.float32)
    total = tl.sum(x, axis=0)
    g = tl.load(grad_ptr + row).to(tl.float32)
    dx = g * (total[None, :] - x)
    tl.store(dx_ptr + row * F * D + f * D + d, dx, mask=mask)


def _blocks(x):
    return triton.next_power_of_2(max(x.shape[1], 1)), triton.next_power_of_2(max(x.shape[2], 1))


class FM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
        bf, bd = _blocks(x)
        fm_forward_kernel[(x.shape[0],)](x, out, x.shape[1], x.shape[2], BLOCK_F=bf, BLOCK_D=bd)
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        dx = torch.empty_like(x)
        bf, bd = _blocks(x)
        fm_backward_kernel[(x.shape[0],)](x, grad.contiguous(), dx, x.shape[1], x.shape[2],
                                          BLOCK_F=bf, BLOCK_D=bd)
        return dx


def fm_interaction(x):
    return FM.apply(x)
'''


def replace(old: str, new: str, source: str = CORRECT) -> str:
    assert old in source, old
    return source.replace(old, new, 1)
