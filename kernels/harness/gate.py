"""The correctness gate: an implementation passes only if it computes the op, by itself, exactly
enough, forward and backward, without touching anything it was not given.

For every shape and dtype it runs `trials` calls on fresh random inputs (a new seed per call) and
compares the output and the gradients of `spec.grad_inputs` with the PyTorch reference under the
dtype's tolerance. The candidate always runs first, on its own copies of the inputs: a result left
in freed memory by the reference can never be handed to it by the allocator (KernelBench's "result
reuse" hack). Around that it rejects, each with a one-line reason:

- an output that is not a tensor, has another shape or dtype, or NaN/inf where the reference is
  finite; a missing gradient;
- an output that shares memory with an input or with the reference's output;
- an input changed by the call (compared bit for bit with a copy), or memory written just outside
  an input (every input sits between guard bands whose bytes are checked);
- a timer, comparison or launch function replaced while the candidate ran (time.perf_counter,
  torch.isclose, triton.testing.do_bench, ...: the gate keeps its own references to them);
- a change of the current CUDA stream (work moved to a side stream);
- an output that does not depend on a Triton kernel: the first check runs the candidate with every
  Triton launch skipped; if the output still matches the reference, torch computed it. With
  `strict` (generated source) the gradients must depend on a kernel too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
import time
from typing import Any, Callable

import torch

# The gate's own references, taken before any candidate is imported: a candidate that patches the
# module attributes changes what others see, never what the gate calls.
_equal = torch.equal
_isfinite = torch.isfinite
_autograd_grad = torch.autograd.grad
wall_clock = time.perf_counter  # the timing check's clock, also fixed before any candidate

# Attributes a candidate could replace to fake a result or a time.
WATCHED = (
    "time.time", "time.perf_counter", "time.perf_counter_ns", "time.monotonic",
    "time.monotonic_ns", "time.process_time", "torch.isclose", "torch.allclose", "torch.equal",
    "torch.isfinite", "torch.testing.assert_close", "torch.autograd.grad", "torch.Tensor.backward",
    "torch.Tensor.data_ptr", "torch.Tensor.untyped_storage", "torch.cuda.synchronize",
    "torch.cuda.Event", "torch.cuda.Event.record", "torch.cuda.Event.elapsed_time",
    "torch.cuda.current_stream", "triton.testing.do_bench", "triton.runtime.jit.JITFunction.run",
    "triton.runtime.interpreter.InterpretedFunction.run",
)  # fmt: skip

GUARD_ELEMENTS = 256  # elements of guard band on each side of every input


class Rejected(Exception):
    """An implementation that fails the gate; the message is the reason."""


@dataclasses.dataclass
class GateResult:
    op: str
    variant: str
    passed: bool
    reason: str | None
    device: str
    interpreter: bool
    seed: int
    trials: int  # calls compared with the reference
    shapes: list[dict[str, Any]]
    dtypes: list[str]
    max_abs_error: float  # forward, over every call
    max_grad_abs_error: float
    launches_per_call: float  # Triton launches in one forward (and backward), on average

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        where = f"{self.device}{' (TRITON_INTERPRET=1)' if self.interpreter else ''}"
        if not self.passed:
            return f"{self.op} [{self.variant}] REJECTED on {where}: {self.reason}"
        return (f"{self.op} [{self.variant}] passed on {where}: {self.trials} calls, "
                f"{len(self.shapes)} shapes x {', '.join(self.dtypes)}, max abs error "
                f"{self.max_abs_error:.2e} forward, {self.max_grad_abs_error:.2e} backward")


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# Tamper detection.


def _resolve(path: str) -> Any:
    """The object at a dotted path, read from the owner's __dict__ where it is a class, so a
    descriptor compares by identity; None where it does not exist (no CUDA, older triton)."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            holder = obj
            obj = vars(holder).get(name) if isinstance(holder, type) else getattr(holder, name, None)
            if obj is None:
                return None
        return obj
    return None


def watched_snapshot() -> dict[str, Any]:
    return {path: _resolve(path) for path in WATCHED}


_SNAPSHOT = watched_snapshot()


def check_untampered(when: str) -> None:
    for path, original in _SNAPSHOT.items():
        if _resolve(path) is not original:
            raise Rejected(f"{path} was replaced {when}: patched timers or comparisons are refused")


# Triton launches: counted, or skipped for the kernel-dependence check.


@contextlib.contextmanager
def triton_launches(skip: bool = False):
    """Count the Triton kernel launches inside the block; with `skip`, launch nothing."""
    counter = {"launches": 0}
    classes = []
    from triton.runtime.jit import JITFunction

    classes.append(JITFunction)
    try:
        from triton.runtime.interpreter import InterpretedFunction

        classes.append(InterpretedFunction)
    except ImportError:  # pragma: no cover - every supported triton has the interpreter
        pass
    originals = {cls: vars(cls)["run"] for cls in classes}

    def wrap(original: Callable) -> Callable:
        def run(self, *args, **kwargs):
            if not kwargs.get("warmup", False):
                counter["launches"] += 1
            if skip:
                return None
            return original(self, *args, **kwargs)

        return run

    for cls, original in originals.items():
        cls.run = wrap(original)
    try:
        yield counter
    finally:
        for cls, original in originals.items():
            cls.run = original


# Inputs.


def _tensors(kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}


def _fresh_copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone().requires_grad_(tensor.requires_grad)


@dataclasses.dataclass
class _Guarded:
    """An input placed between two guard bands of one buffer, with the bands' original bytes."""

    buffer: torch.Tensor
    size: int
    before: torch.Tensor
    after: torch.Tensor

    def intact(self) -> bool:
        pad = GUARD_ELEMENTS
        return (_equal(self.buffer[:pad], self.before)
                and _equal(self.buffer[pad + self.size:], self.after))


def _guarded_copy(tensor: torch.Tensor, seed: int) -> tuple[torch.Tensor, _Guarded]:
    n, pad = tensor.numel(), GUARD_ELEMENTS
    buffer = torch.empty(n + 2 * pad, dtype=tensor.dtype, device=tensor.device)
    gen = torch.Generator(device=tensor.device).manual_seed(seed)
    if tensor.dtype.is_floating_point:
        noise = torch.randn(buffer.shape, generator=gen, device=tensor.device) * 1e3
    else:
        noise = torch.randint(-1000, 1000, buffer.shape, generator=gen, device=tensor.device)
    buffer.copy_(noise.to(tensor.dtype))
    view = buffer[pad:pad + n].view(tensor.shape)
    with torch.no_grad():
        view.copy_(tensor.detach())
    view.requires_grad_(tensor.requires_grad)
    guard = _Guarded(buffer, n, buffer[:pad].clone(), buffer[pad + n:].clone())
    return view, guard


def _storage_range(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when the two tensors' storages overlap (an empty tensor overlaps nothing)."""
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    a_start, a_end = _storage_range(a)
    b_start, b_end = _storage_range(b)
    return a_start < b_end and b_start < a_end


# Comparison.


def _difference(what: str, got: Any, want: torch.Tensor, dtype: torch.dtype, atol: float,
                rtol: float) -> tuple[str | None, float]:
    """(reason or None, max abs error) of `got` (which should be `dtype`) against the oracle's
    `want` (computed in float32 for low-precision dtypes)."""
    if not isinstance(got, torch.Tensor):
        return f"{what} is a {type(got).__name__}, not a tensor", math.inf
    if got.shape != want.shape:
        return f"{what} has shape {tuple(got.shape)}; the reference's is {tuple(want.shape)}", math.inf
    if got.dtype != dtype:
        return f"{what} is {got.dtype}, not {dtype}", math.inf
    if got.device != want.device:
        return f"{what} is on {got.device}; the reference's is on {want.device}", math.inf
    g, w = got.detach().float(), want.detach().float()
    broken = ~_isfinite(g) & _isfinite(w)
    if bool(broken.any()):
        return (f"{what} has {int(broken.sum())} NaN/inf values where the reference is finite",
                math.inf)
    if g.numel() == 0:
        return None, 0.0
    # The registry's closeness rule (OpSpec.mismatch): atol scales with the largest reference
    # value, since a gradient summed over a batch carries rounding error in proportion to the sum.
    g, w = g.double(), w.double()
    difference = (g - w).abs().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    error = float(difference.max())
    scale = max(1.0, float(w.abs().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).max()))
    close = (difference <= atol * scale + rtol * w.abs()) | (g.isnan() & w.isnan())
    if not bool(close.all()):
        off = int((~close).sum())
        return (f"{what} differs from the reference: {off} of {close.numel()} values off, max abs "
                f"error {error:.3g} (atol {atol:g} x {scale:.3g}, rtol {rtol:g})"), error
    return None, error


def _oracle_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Fresh copies of the inputs for the reference, low-precision floats raised to float32.

    Triton kernels accumulate bf16 in fp32, while torch's bf16 reference rounds every partial
    sum; the fp32 computation on the same (already rounded) inputs is the better oracle."""
    out = {}
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor):
            copy = value.detach().clone()
            if copy.is_floating_point() and copy.dtype != torch.float64:
                copy = copy.float()
            value = copy.requires_grad_(value.requires_grad)
        out[name] = value
    return out


def _matches(got: Any, want: torch.Tensor, dtype: torch.dtype, atol: float, rtol: float) -> bool:
    return _difference("x", got, want, dtype, atol, rtol)[0] is None


def _gradients(out: torch.Tensor, kwargs: dict[str, Any], names: tuple[str, ...],
               grad_out: torch.Tensor) -> dict[str, torch.Tensor | None]:
    inputs = [kwargs[n] for n in names]
    grads = _autograd_grad(out, inputs, grad_out, allow_unused=True)
    return dict(zip(names, grads))


# The gate.


@dataclasses.dataclass
class _Stats:
    trials: int = 0
    launches: int = 0
    max_error: float = 0.0
    max_grad_error: float = 0.0


def run_gate(
    spec: Any,
    impl: Callable[..., Any],
    *,
    variant: str = "candidate",
    shapes: list[dict[str, Any]] | None = None,
    dtypes: list[torch.dtype] | None = None,
    trials: int = 5,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    strict: bool = False,
) -> GateResult:
    """Gate `impl` against `spec.reference`; never raises for a bad implementation."""
    device = torch.device(device)
    shapes = list(shapes if shapes is not None else spec.shapes["interpreter"])
    dtypes = list(dtypes or spec.tolerances)
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else int(seed)
    stats = _Stats()
    reason = None
    try:
        if trials < 1 or not shapes:
            raise Rejected("nothing to check: give at least one shape and one trial")
        check_untampered("before the gate")
        _check_kernel_dependence(spec, impl, shapes, dtypes[0], device, strict)
        for s, shape in enumerate(shapes):
            for d, dtype in enumerate(dtypes):
                for t in range(trials):
                    trial_seed = seed + 1_000_003 * s + 10_007 * d + t
                    where = f"shape {shape}, {_dtype_name(dtype)}, call {t + 1}"
                    try:
                        _trial(spec, impl, shape, dtype, device, trial_seed, stats)
                    except Rejected as err:
                        raise Rejected(f"{where}: {err}") from None
    except Rejected as err:
        reason = str(err)
    except Exception as err:  # noqa: BLE001 - a crashing candidate is rejected, with its error
        reason = f"raised {type(err).__name__}: {_last_line(err)}"
    return GateResult(
        op=spec.name, variant=variant, passed=reason is None, reason=reason, device=str(device),
        interpreter=interpreting(), seed=seed, trials=stats.trials, shapes=shapes,
        dtypes=[_dtype_name(d) for d in dtypes], max_abs_error=stats.max_error,
        max_grad_abs_error=stats.max_grad_error,
        launches_per_call=stats.launches / stats.trials if stats.trials else 0.0,
    )


def _trial(spec, impl, shape, dtype, device, seed, stats: _Stats) -> None:
    atol, rtol = spec.tolerances[dtype]
    inputs = spec.make_inputs(shape, dtype, device, seed)
    kwargs, guards = dict(inputs), {}
    for index, (name, tensor) in enumerate(_tensors(inputs).items()):
        kwargs[name], guards[name] = _guarded_copy(tensor, seed + 7919 * (index + 1))
    originals = {name: t.detach().clone() for name, t in _tensors(inputs).items()}
    stream = _current_stream(device)

    with triton_launches() as counter:
        out = impl(**kwargs)
    check_untampered("during the forward")
    _check_stream(device, stream)
    if not isinstance(out, torch.Tensor):
        raise Rejected(f"the output is a {type(out).__name__}, not a tensor")
    for name, tensor in _tensors(kwargs).items():
        if shares_memory(out, tensor):
            raise Rejected(f"the output shares memory with input '{name}'")
    _check_inputs(kwargs, guards, originals, "the forward")
    grads: dict[str, Any] = {}
    grad_out = None
    if spec.grad_inputs:
        if not out.requires_grad:
            raise Rejected("the output carries no gradient: the backward is missing")
        gen = torch.Generator(device=device).manual_seed(seed + 1)
        grad_out = torch.randn(out.shape, generator=gen, device=device).to(out.dtype)
        with triton_launches() as backward_counter:
            grads = _gradients(out, kwargs, spec.grad_inputs, grad_out)
        counter["launches"] += backward_counter["launches"]
        check_untampered("during the backward")
        _check_stream(device, stream)
    stats.launches += counter["launches"]

    _check_inputs(kwargs, guards, originals, "the backward")

    ref_kwargs = _oracle_inputs(inputs)
    want = spec.reference(**ref_kwargs)
    if shares_memory(out, want):
        raise Rejected("the output shares memory with the reference's output")
    reason, error = _difference("the output", out, want, dtype, atol, rtol)
    if reason:
        raise Rejected(reason)
    stats.max_error = max(stats.max_error, error)
    if spec.grad_inputs:
        want_grads = _gradients(want, ref_kwargs, spec.grad_inputs, grad_out.to(want.dtype))
        for name, want_grad in want_grads.items():
            got = grads.get(name)
            if want_grad is None:
                continue
            if got is None:
                raise Rejected(f"no gradient for '{name}'")
            reason, error = _difference(f"the gradient of '{name}'", got, want_grad,
                                        inputs[name].dtype, atol, rtol)
            if reason:
                raise Rejected(reason)
            stats.max_grad_error = max(stats.max_grad_error, error)
    stats.trials += 1


def _check_inputs(kwargs, guards, originals, when: str) -> None:
    for name, tensor in _tensors(kwargs).items():
        if not guards[name].intact():
            raise Rejected(f"memory just outside input '{name}' was written during {when} "
                           "(out of bounds)")
        if not _equal(tensor.detach(), originals[name]):
            raise Rejected(f"input '{name}' was modified by {when}")


def _check_kernel_dependence(spec, impl, shapes, dtype, device, strict: bool) -> None:
    """Run once with every Triton launch skipped: a result that still matches was computed by
    torch. Fresh, unpredictable inputs, so no freed buffer can already hold their result."""
    shape = max(shapes, key=lambda s: sum(
        t.numel() for t in _tensors(spec.make_inputs(s, dtype, torch.device("cpu"), 0)).values()))
    seed = int.from_bytes(os.urandom(4), "little")
    inputs = spec.make_inputs(shape, dtype, device, seed)
    kwargs = {k: _fresh_copy(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    atol, rtol = spec.tolerances[dtype]
    with triton_launches(skip=True) as counter:
        try:
            out = impl(**kwargs)
            grads = {}
            if strict and spec.grad_inputs and isinstance(out, torch.Tensor) and out.requires_grad:
                grad_out = torch.ones_like(out)
                grads = _gradients(out, kwargs, spec.grad_inputs, grad_out)
        except Exception:  # noqa: BLE001 - it needs its kernels' results: what we want to see
            return
    check_untampered("during the forward")
    if counter["launches"] == 0:
        raise Rejected("no Triton kernel was launched: the output is computed without Triton")
    ref_kwargs = _oracle_inputs(inputs)
    want = spec.reference(**ref_kwargs)
    if bool(want.detach().ne(0).any()) and _matches(out, want, dtype, atol, rtol):
        raise Rejected("the output matches the reference with every Triton launch skipped: "
                       "it is computed by torch, not by the kernel")
    if grads:
        want_grads = _gradients(want, ref_kwargs, spec.grad_inputs, torch.ones_like(want))
        for name, want_grad in want_grads.items():
            got = grads.get(name)
            if (want_grad is not None and got is not None and bool(want_grad.ne(0).any())
                    and _matches(got, want_grad, inputs[name].dtype, atol, rtol)):
                raise Rejected(f"the gradient of '{name}' matches the reference with every "
                               "Triton launch skipped: the backward is computed by torch")


def _current_stream(device: torch.device):
    return torch.cuda.current_stream(device) if device.type == "cuda" else None


def _check_stream(device: torch.device, stream) -> None:
    if device.type == "cuda" and torch.cuda.current_stream(device) != stream:
        raise Rejected("the call left another CUDA stream current: work on a side stream is "
                       "refused")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _last_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1][:500] if text else ""

