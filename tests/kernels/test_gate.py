"""The correctness gate: what passes, and each known reward hack rejected with its reason.

The hacks are trusted test code run in-process (the sandbox's own tests run generated source); each
wraps fm_interaction's real Triton kernel under the interpreter, so the only thing wrong with it is
the hack.
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before any Triton kernel is defined or imported

import time

import pytest
import torch
import triton
import triton.language as tl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autorec.kernels.harness.gate import run_gate, shares_memory
from autorec.kernels.registry import OPS, get_op

FM = get_op("fm_interaction")
SMALL = [{"batch": 6, "fields": 4, "dim": 8}, {"batch": 3, "fields": 2, "dim": 5}]
FEW = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def gate(impl, spec=FM, **options):
    options.setdefault("shapes", SMALL)
    options.setdefault("dtypes", [torch.float32])
    options.setdefault("seed", 0)
    return run_gate(spec, impl, **options)


def triton_fm(x):
    return FM.triton_default(x)


@triton.jit
def _scribble(ptr, start):
    """Writes four values just past the end of a tensor (an out-of-bounds store)."""
    tl.store(ptr + start + tl.arange(0, 4), tl.zeros([4], dtype=tl.float32))


def assert_rejected(result, *words):
    assert not result.passed, result.summary()
    for word in words:
        assert word in result.reason, result.reason


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_template_passes_forward_and_backward(name):
    spec = get_op(name)
    result = run_gate(spec, spec.triton_default, shapes=spec.shapes["interpreter"][:2],
                      trials=5, seed=1)
    assert result.passed, result.summary()
    assert result.trials == 5 * 2 * len(spec.tolerances)  # five fresh inputs per shape and dtype
    assert result.launches_per_call >= 1


@FEW
@given(batch=st.integers(1, 40), fields=st.integers(1, 12), dim=st.integers(1, 33),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]))
def test_drawn_shapes_pass_and_a_slightly_wrong_kernel_fails(batch, fields, dim, dtype):
    shape = {"batch": batch, "fields": fields, "dim": dim}
    assert gate(triton_fm, shapes=[shape], dtypes=[dtype]).passed

    def off_by_a_little(x):
        return triton_fm(x) * 1.05 + 0.1

    assert_rejected(gate(off_by_a_little, shapes=[shape], dtypes=[dtype]), "differs from the reference")


def test_a_result_names_what_was_checked():
    result = gate(triton_fm, trials=5)
    assert result.passed and result.reason is None
    assert result.trials == 10 and result.shapes == SMALL and result.dtypes == ["float32"]
    assert 0 <= result.max_abs_error < 1e-3 and result.interpreter
    assert "passed" in result.summary()


def test_returning_an_input_view_is_rejected():
    def alias(x):
        triton_fm(x)
        return x[:, 0, 0]

    assert_rejected(gate(alias), "shares memory with input 'x'")


def test_mutating_an_input_is_rejected():
    def zero_the_input(x):
        out = triton_fm(x)
        with torch.no_grad():
            x.mul_(0)
        return out

    assert_rejected(gate(zero_the_input), "input 'x' was modified")


def test_torch_fallback_behind_a_dummy_launch_is_rejected():
    def fallback(x):
        triton_fm(x.detach())  # a launch, for show
        return FM.reference(x)

    assert_rejected(gate(fallback), "every Triton launch skipped", "computed by torch")


def test_no_triton_launch_at_all_is_rejected():
    assert_rejected(gate(FM.reference), "no Triton kernel was launched")


def test_an_uninitialised_output_is_rejected():
    """KernelBench's result-reuse hack: return an empty buffer and hope it holds the answer."""

    def empty(x):
        triton_fm(x.detach())
        return torch.empty(x.shape[0], dtype=x.dtype, requires_grad=True)

    assert not gate(empty).passed


def test_nan_output_is_rejected():
    def with_nan(x):
        out = triton_fm(x).clone()
        out[0] = float("nan")
        return out

    assert_rejected(gate(with_nan), "NaN/inf")


def test_wrong_dtype_and_shape_are_rejected():
    assert_rejected(gate(lambda x: triton_fm(x).double()), "torch.float64")
    assert_rejected(gate(lambda x: triton_fm(x)[:-1]), "shape")


def test_missing_backward_is_rejected():
    assert_rejected(gate(lambda x: triton_fm(x).detach()), "no gradient")


def test_wrong_gradient_is_rejected():
    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.shape = x.shape
            return triton_fm(x.detach())

        @staticmethod
        def backward(ctx, grad):
            return grad[:, None, None].expand(ctx.shape).clone()  # d out / d x is not 1

    def wrong(x):
        return WrongBackward.apply(x)

    assert_rejected(gate(wrong), "gradient of 'x'")


def test_patched_timer_is_rejected(monkeypatch):
    def patches_the_clock(x):
        monkeypatch.setattr(time, "perf_counter", lambda: 0.0)
        return triton_fm(x)

    assert_rejected(gate(patches_the_clock), "time.perf_counter was replaced")


def test_patched_comparison_is_rejected(monkeypatch):
    def patches_isclose(x):
        monkeypatch.setattr(torch, "isclose", lambda a, b, **kw: torch.ones_like(a, dtype=torch.bool))
        return triton_fm(x) * 3

    assert_rejected(gate(patches_isclose), "torch.isclose was replaced")


def test_out_of_bounds_write_next_to_an_input_is_rejected():
    def scribbles(x):
        out = triton_fm(x)
        _scribble[(1,)](x, x.numel())
        return out

    assert_rejected(gate(scribbles), "outside input 'x'", "out of bounds")


def test_a_raising_kernel_is_rejected_with_its_error():
    def raises(x):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    assert_rejected(gate(raises), "RuntimeError", "illegal memory access")


def test_memoised_results_fail_on_fresh_inputs():
    cache = {}

    def memoised(x):
        key = tuple(x.shape)
        if key not in cache:
            cache[key] = triton_fm(x).detach()
        return cache[key].clone().requires_grad_(True)

    assert not gate(memoised, trials=5).passed


def test_shares_memory_sees_views_and_ignores_empty_tensors():
    base = torch.zeros(10)
    assert shares_memory(base[2:4], base[:3])
    assert shares_memory(base[2:4], base[8:])  # same storage: counted as shared on purpose
    assert not shares_memory(base, torch.zeros(10))
    assert not shares_memory(base[:0], base)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_side_stream_is_rejected_on_gpu():
    def side_stream(x):
        stream = torch.cuda.Stream()
        torch.cuda.set_stream(stream)
        return triton_fm(x)

    result = gate(side_stream, device="cuda")
    torch.cuda.set_stream(torch.cuda.default_stream())
    assert_rejected(result, "stream")
