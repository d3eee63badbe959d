"""The op registry: every kernel op with its reference, its hand-written Triton template, its spec.

An op is a function with a fixed Python signature (`OpSpec.signature`). Every implementation of
it, the PyTorch reference, the hand-written Triton kernel built from knob values, or a kernel the
search proposes, is called the same way:

    inputs = spec.make_inputs(shape, dtype, device, seed)
    out = impl(**inputs)

`make_inputs` returns fresh tensors (float ones that are differentiable have requires_grad set;
their names are `grad_inputs`) and, where the signature has them, plain Python constants
(`mode="mean"`, `scale=0.02`). A harness clones or compares only the `torch.Tensor` values.

Importing this module imports no Triton kernel: a `triton.jit` function is compiled or
interpreted according to TRITON_INTERPRET at the moment its module is imported, so each op's
Triton module is loaded only when one of its implementations is first called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from autorec.errors import UnknownNameError

Shape = dict[str, Any]
Implementation = Callable[..., torch.Tensor]

# The ops in the order the docs list them; each lives in autorec.kernels.<name>.spec as SPEC.
OP_NAMES = (
    "embedding_pool", "fm_interaction", "dcn_cross", "hstu_attention", "hstu_attention_jagged"
)


@dataclass(frozen=True)
class OpSpec:
    name: str
    # The Python signature every implementation must have, e.g.
    # "def fm_interaction(x: Tensor) -> Tensor".
    signature: str
    # The PyTorch oracle; also the code path models run with the default `kernels` setting.
    reference: Implementation
    # The hand-written Triton kernel with its default knobs (builds lazily on first call).
    triton_default: Implementation
    # Template knob -> its allowed values; the first value of each is the default.
    knobs: dict[str, tuple]
    # An implementation from knob values (missing knobs take their default).
    build: Callable[[dict[str, Any]], Implementation]
    # (shape, dtype, device, seed) -> keyword arguments of a fresh call.
    make_inputs: Callable[[Shape, torch.dtype, torch.device, int], dict[str, Any]]
    # The keyword arguments whose gradients the backward must produce.
    grad_inputs: tuple[str, ...]
    # "interpreter" (small, for CPU tests under TRITON_INTERPRET=1), "suite" (the suite's models
    # on ML-100K) and "production" (batch 4096, 26-40 fields, widths 16-128, sequences 50-4096).
    shapes: dict[str, list[Shape]]
    # dtype -> (atol, rtol) for outputs and gradients against the reference; see `mismatch`.
    tolerances: dict[torch.dtype, tuple[float, float]]
    # True where the op's speed is set by memory traffic; judge it by achieved bandwidth.
    memory_bound: bool
    # (shape, dtype) -> bytes the forward must read and write at least (for achieved bandwidth).
    bytes_moved: Callable[[Shape, torch.dtype], int]
    # (shape, dtype) -> floating-point operations of the forward, or None where not meaningful.
    flops: Callable[[Shape, torch.dtype], int] | None

    @property
    def default_knobs(self) -> dict[str, Any]:
        return {knob: values[0] for knob, values in self.knobs.items()}

    def mismatch(
        self, actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype
    ) -> str | None:
        """None when `actual` matches `expected` within this op's tolerance for `dtype`, else one
        line saying where and by how much it does not.

        Close means |actual - expected| <= atol * max(1, max|expected|) + rtol * |expected| at
        every element. atol scales with the tensor's largest magnitude because a gradient summed
        over a batch carries rounding error in proportion to the sum's size, not to each element
        (torch's own bf16 dW of a 4096-row linear layer is off by 1.0 where the true value is 0).
        `expected` should be the reference evaluated in float32 on the same input values.
        """
        if actual.shape != expected.shape:
            return f"shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
        if actual.numel() == 0:
            return None
        atol, rtol = self.tolerances[dtype]
        actual, expected = actual.detach().double(), expected.detach().double()
        if not bool(torch.isfinite(actual).all()):
            return f"{int((~torch.isfinite(actual)).sum())} non-finite values"
        scale = max(1.0, float(expected.abs().max()))
        excess = (actual - expected).abs() - (atol * scale + rtol * expected.abs())
        worst = int(excess.argmax())
        if float(excess.view(-1)[worst]) <= 0:
            return None
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), expected.shape))
        bad = int((excess > 0).sum())
        return (
            f"{bad} of {expected.numel()} values off; worst at {where}: "
            f"{float(actual.view(-1)[worst]):.6g} vs {float(expected.view(-1)[worst]):.6g} "
            f"(atol {atol} x {scale:.3g}, rtol {rtol})"
        )


def _load() -> dict[str, OpSpec]:
    return {
        name: importlib.import_module(f"autorec.kernels.{name}.spec").SPEC for name in OP_NAMES
    }


OPS: dict[str, OpSpec] = _load()


def get_op(name: str) -> OpSpec:
    if name not in OPS:
        raise UnknownNameError("op", name, list(OPS))
    return OPS[name]
