"""What every op's spec and Triton module share: lazy Triton implementations, seeded inputs,
the device check, and launch helpers."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import torch

from autorec.errors import ConfigError

# Per-dtype (atol, rtol), as `OpSpec.mismatch` applies them: fp32 kernels accumulate in another
# order than torch; bf16 ones round their inputs, outputs and stored intermediates to 8 bits.
DEFAULT_TOLERANCES = {torch.float32: (1e-4, 1e-4), torch.bfloat16: (2e-2, 2e-2)}


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def require_triton_device(*tensors: torch.Tensor) -> None:
    """Triton runs on CUDA tensors, or on CPU tensors only under TRITON_INTERPRET=1."""
    for tensor in tensors:
        if tensor.device.type != "cuda" and not interpreting():
            raise ConfigError(
                f"a Triton kernel got a tensor on {tensor.device.type}: Triton kernels run on a "
                "CUDA device, or on CPU with TRITON_INTERPRET=1 (slowly, for tests)"
            )


class TritonImplementation:
    """An op's hand-written Triton kernel with fixed knob values.

    The op's Triton module is imported at the first call, not when the registry loads, so that
    TRITON_INTERPRET set by a test or a sandboxed runner before that call decides how it runs.
    """

    def __init__(self, op: str, knobs: dict[str, Any]):
        self.op, self.knobs = op, dict(knobs)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Checked before the import: a module imported where Triton cannot run would stay
        # compiled for the GPU even after TRITON_INTERPRET is set.
        require_triton_device(
            *(a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
        )
        module = importlib.import_module(f"autorec.kernels.{self.op}.triton")
        return getattr(module, self.op)(*args, knobs=self.knobs, **kwargs)

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"<triton {self.op} {knobs}>"


def triton_builder(
    op: str, knobs: dict[str, tuple]
) -> Callable[[dict[str, Any]], TritonImplementation]:
    """The `build` of an OpSpec: knob values (checked, defaults filled in) -> implementation."""

    def build(values: dict[str, Any]) -> TritonImplementation:
        unknown = sorted(set(values) - set(knobs))
        if unknown:
            raise ConfigError(
                f"op '{op}' has no knob {', '.join(unknown)}; knobs: {', '.join(knobs)}"
            )
        for knob, value in values.items():
            if value not in knobs[knob]:
                allowed = ", ".join(str(v) for v in knobs[knob])
                raise ConfigError(f"op '{op}': {knob}={value} is not one of {allowed}")
        return TritonImplementation(op, {**{k: v[0] for k, v in knobs.items()}, **values})

    return build


def generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def randn(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, gen: torch.Generator,
          scale: float = 1.0, grad: bool = True) -> torch.Tensor:
    """Seeded normal values drawn in fp32 (so every dtype sees the same numbers), then cast."""
    values = torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * scale
    return values.to(dtype).requires_grad_(grad)


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def next_power_of_2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def launch_options(knobs: dict[str, Any]) -> dict[str, int]:
    """The knobs Triton's launcher takes itself rather than the kernel."""
    return {"num_warps": knobs["num_warps"], "num_stages": knobs["num_stages"]}


def upcast_dot_operands(dtype: torch.dtype) -> bool:
    """Whether kernels should feed tl.dot fp32 operands instead of `dtype` ones.

    Triton 3.9's interpreter returns garbage from tl.dot on bf16 operands (a 16x16 product off by
    1e10), so under TRITON_INTERPRET bf16 tiles are upcast first; compiled kernels keep bf16.
    """
    return interpreting() and dtype != torch.float32
