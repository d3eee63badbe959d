"""Kernel ops of the model suite: PyTorch references, hand-written Triton kernels, one dispatch.

`op(name)` is what models call; `autorec.kernels.registry` describes every op (signature, knobs,
shapes, tolerances) for the correctness gate, the benchmark and the kernel search.
"""

from autorec.kernels.dispatch import configure, op, resolve, select, using
from autorec.kernels.registry import OPS, OpSpec, get_op

__all__ = ["OPS", "OpSpec", "configure", "get_op", "op", "resolve", "select", "using"]
