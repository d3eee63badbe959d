"""Every op's hand-written Triton kernel against its PyTorch reference, forward and backward,
under Triton's interpreter on DEVICE tensors.

The oracle for every dtype is the reference evaluated in float32 on the same input values, so a
bf16 kernel is judged by how far it is from the exact answer, not from torch's own bf16 rounding.

On a GPU machine, AUTOREC_KERNEL_TEST_DEVICE=cuda runs the same tests on compiled kernels, plus
the suite's shapes.
"""

from __future__ import annotations

import os

DEVICE_NAME = os.environ.get("AUTOREC_KERNEL_TEST_DEVICE", "cpu")
if DEVICE_NAME == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"  # before any Triton kernel module is imported

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autorec.kernels.registry import OP_NAMES, OPS, get_op

DEVICE = torch.device(DEVICE_NAME)
DTYPES = [torch.float32, torch.bfloat16]
FEW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _as_float32(inputs: dict) -> dict:
    """The same values in fp32, as fresh leaves with the same requires_grad."""
    out = {}
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            value = value.detach().float().requires_grad_(value.requires_grad)
        out[name] = value
    return out




def check_against_reference(name, shape: dict, dtype: torch.dtype, implementation=None, seed=0):
    """Forward and backward of `implementation` (the default Triton kernel) match the reference."""
    spec = get_op(name)
    implementation = implementation or spec.triton_default
    inputs = spec.make_inputs(shape, dtype, DEVICE, seed)
    oracle_inputs = _as_float32(inputs)
    before = {k: v.detach().clone() for k, v in inputs.items() if isinstance(v, torch.Tensor)}

    out = implementation(**inputs)
    expected = spec.reference(**oracle_inputs)
    assert out.dtype == dtype and out.shape == expected.shape
    problem = spec.mismatch(out, expected, dtype)
    assert problem is None, f"{name} forward {shape} {dtype}: {problem}"

    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(seed + 1))
    grad = grad.to(DEVICE, dtype)
    out.backward(grad)
    expected.backward(grad.float())  # the same values: only the kernel's own rounding counts
    for key in spec.grad_inputs:
        assert inputs[key].grad is not None, f"{name}: no gradient for {key}"
        assert inputs[key].grad.dtype == dtype
        problem = spec.mismatch(inputs[key].grad, oracle_inputs[key].grad, dtype)
        assert problem is None, f"{name} d{key} {shape} {dtype}: {problem}"
    for key, value in before.items():  # a kernel must not write into its inputs
        assert torch.equal(inputs[key].detach(), value), f"{name} changed its input {key}"


def test_triton_runs_here():
    """Under the interpreter a Triton kernel runs on CPU tensors (or compiled on the GPU)."""
    import triton
    import triton.language as tl

    @triton.jit
    def twice(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.arange(0, BLOCK)
        tl.store(y_ptr + offsets, 2 * tl.load(x_ptr + offsets, mask=offsets < n), mask=offsets < n)

    x = torch.arange(5, dtype=torch.float32, device=DEVICE)
    y = torch.zeros(5, device=DEVICE)
    twice[(1,)](x, y, 5, BLOCK=8)
    assert torch.equal(y, 2 * x)


def test_registry_lists_every_op_with_complete_specs():
    assert set(OPS) == set(OP_NAMES)
    for spec in OPS.values():
        assert spec.signature.startswith(f"def {spec.name}(")
        assert set(spec.shapes) == {"interpreter", "suite", "production"}
        assert set(spec.tolerances) == {torch.float32, torch.bfloat16}
        assert all(values for values in spec.knobs.values())
        for shape in spec.shapes["production"] + spec.shapes["suite"]:
            assert spec.bytes_moved(shape, torch.bfloat16) > 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", OP_NAMES)
def test_triton_matches_reference_on_interpreter_shapes(name, dtype):
    for shape in get_op(name).shapes["interpreter"]:
        check_against_reference(name, shape, dtype)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="suite shapes take minutes in the interpreter")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", OP_NAMES)
def test_triton_matches_reference_on_suite_shapes(name, dtype):
    for shape in get_op(name).shapes["suite"]:
        check_against_reference(name, shape, dtype)


@pytest.mark.parametrize("name", OP_NAMES)
def test_every_non_default_knob_value_matches_reference(name):
    """The template is correct at each knob's last listed value too, not only its default."""
    spec = get_op(name)
    knobs = {knob: values[-1] for knob, values in spec.knobs.items()}
    check_against_reference(name, spec.shapes["interpreter"][1], torch.float32, spec.build(knobs))


def test_a_wrong_kernel_fails_the_comparison():
    """The comparison this file relies on catches an off-by-a-little implementation."""
    spec = get_op("fm_interaction")

    def wrong(x):
        return spec.triton_default(x) * 1.01

    with pytest.raises(AssertionError):
        check_against_reference("fm_interaction", spec.shapes["interpreter"][1], torch.float32,
                                wrong)


@FEW
@given(batch=st.integers(1, 20), fields=st.integers(1, 12), dim=st.integers(1, 40),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 99))
def test_fm_interaction_on_drawn_shapes(batch, fields, dim, dtype, seed):
    shape = {"batch": batch, "fields": fields, "dim": dim}
    check_against_reference("fm_interaction", shape, dtype, seed=seed)


@FEW
@given(batch=st.integers(1, 12), max_bag=st.integers(0, 40), rows=st.integers(1, 50),
       dim=st.integers(1, 150), mode=st.sampled_from(["sum", "mean"]),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 99))
def test_embedding_pool_on_drawn_shapes(batch, max_bag, rows, dim, mode, dtype, seed):
    shape = {"batch": batch, "max_bag": max_bag, "rows": rows, "dim": dim, "mode": mode}
    check_against_reference("embedding_pool", shape, dtype, seed=seed)


@FEW
@given(batch=st.integers(1, 40), width=st.integers(1, 70), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 99))
def test_dcn_cross_on_drawn_shapes(batch, width, dtype, seed):
    check_against_reference("dcn_cross", {"batch": batch, "width": width}, dtype, seed=seed)


@FEW
@given(batch=st.integers(1, 3), length=st.integers(1, 40), heads=st.integers(1, 3),
       attention_dim=st.integers(1, 20), linear_dim=st.integers(1, 20),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 99))
def test_hstu_attention_on_drawn_shapes(batch, length, heads, attention_dim, linear_dim, dtype,
                                       seed):
    shape = {"batch": batch, "length": length, "heads": heads, "attention_dim": attention_dim,
             "linear_dim": linear_dim}
    check_against_reference("hstu_attention", shape, dtype, seed=seed)


@FEW
@given(batch=st.integers(1, 4), max_length=st.integers(1, 40), heads=st.integers(1, 2),
       attention_dim=st.integers(1, 20), linear_dim=st.integers(1, 20),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 99))
def test_hstu_attention_jagged_on_drawn_shapes(batch, max_length, heads, attention_dim,
                                               linear_dim, dtype, seed):
    shape = {"batch": batch, "max_length": max_length, "heads": heads,
             "attention_dim": attention_dim, "linear_dim": linear_dim}
    check_against_reference("hstu_attention_jagged", shape, dtype, seed=seed)


def test_hstu_attention_jagged_refuses_rows_longer_than_the_bias():
    q, k, v = (torch.randn(5, 1, 4, device=DEVICE) for _ in range(3))
    offsets = torch.tensor([0, 1, 5], device=DEVICE)  # a row of 4 tokens needs 4 distances
    bias = torch.zeros(1, 3, device=DEVICE)
    with pytest.raises(ValueError, match="a row of 4 items needs distance_bias of at least 4"):
        get_op("hstu_attention_jagged").triton_default(q, k, v, bias, offsets, 0.25)


def test_embedding_pool_empty_bags_pool_to_zero_and_get_no_gradient():
    spec = get_op("embedding_pool")
    weight = torch.randn(6, 4, device=DEVICE, requires_grad=True)
    values = torch.tensor([2, 2, 5], device=DEVICE)
    offsets = torch.tensor([0, 0, 3, 3], device=DEVICE)  # bags: empty, {2, 2, 5}, empty
    out = spec.triton_default(weight, values, offsets, mode="mean")
    assert not out[0].any() and not out[2].any()
    torch.testing.assert_close(out[1], (2 * weight[2] + weight[5]).detach() / 3)
    out.sum().backward()
    expected = torch.zeros(6, 4, device=DEVICE)
    expected[2], expected[5] = 2 / 3, 1 / 3  # the scatter-add of a repeated id adds up
    torch.testing.assert_close(weight.grad, expected)


def test_hstu_attention_reads_strided_views():
    """HSTU's q, k, v are strided views of one projection; gradients come back contiguous."""
    spec = get_op("hstu_attention")
    shape = {"batch": 2, "length": 7, "heads": 2, "attention_dim": 4, "linear_dim": 4}
    inputs = spec.make_inputs(shape, torch.float32, DEVICE, 5)
    packed = torch.cat([inputs[n].detach() for n in ("q", "k", "v")], dim=-1).requires_grad_()
    q, k, v = packed.split(4, dim=-1)
    strided = {**inputs, "q": q, "k": k, "v": v}
    out = spec.triton_default(**strided)
    expected = spec.reference(**strided)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    grad = torch.randn(out.shape, device=DEVICE)
    (triton_grad,) = torch.autograd.grad(out, packed, grad)
    (reference_grad,) = torch.autograd.grad(expected, packed, grad)
    torch.testing.assert_close(triton_grad, reference_grad, atol=1e-5, rtol=1e-4)


def test_mismatch_reports_non_finite_values_and_wrong_shapes():
    spec = get_op("fm_interaction")
    expected = torch.ones(3)
    assert spec.mismatch(expected.clone(), expected, torch.float32) is None
    assert "non-finite" in spec.mismatch(torch.tensor([1.0, float("nan"), 1.0]), expected,
                                         torch.float32)
    assert "shape" in spec.mismatch(torch.ones(4), expected, torch.float32)
    assert "1 of 3 values off" in spec.mismatch(torch.tensor([1.0, 1.01, 1.0]), expected,
                                                torch.float32)


def test_hstu_attention_padding_rows_see_only_themselves():
    """A row with no items (all left padding) attends each position to itself alone."""
    spec = get_op("hstu_attention")
    shape = {"batch": 1, "length": 5, "heads": 1, "attention_dim": 4, "linear_dim": 4}
    inputs = spec.make_inputs(shape, torch.float32, DEVICE, 3)
    inputs["lengths"] = torch.tensor([0], device=DEVICE)
    out = spec.triton_default(**inputs)
    q, k, v = (inputs[n].detach()[0, :, 0] for n in ("q", "k", "v"))
    s = (q * k).sum(-1) + inputs["distance_bias"].detach()[0, 0]
    expected = (torch.nn.functional.silu(s) * inputs["scale"]).unsqueeze(-1) * v
    torch.testing.assert_close(out.detach()[0, :, 0], expected)
