"""Generated kernel source: refused statically, or run in a separate limited process whose failure
(a compile error, a hang, a crash, a wrong or NaN result, a torch fallback) comes back as a reason
while this process goes on unharmed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import torch

from autorec.errors import AutorecError, UnknownNameError
from autorec.kernels.harness.sandbox import evaluate_variant
from autorec.kernels.harness.static_check import StaticCheckError, check_source
from fm_sources import CORRECT, replace

SIGNATURE = "def fm_interaction(x: Tensor) -> Tensor  # x [B, F, D] -> [B]"
ONE_SHAPE = [{"batch": 4, "fields": 3, "dim": 5}]


def inject(*lines: str) -> str:
    """CORRECT with `lines` run first in the entry function."""
    body = "".join(f"    {line}\n" for line in lines)
    return replace("def fm_interaction(x):\n", "def fm_interaction(x):\n" + body)


def run(source: str, **options):
    options = {"device": "cpu", "trials": 2, "dtypes": ["float32"], "shapes": ONE_SHAPE,
               "time_limit": 240, **options}
    return evaluate_variant("fm_interaction", {"source": source}, **options)


def refused(result, stage: str, *words: str) -> None:
    assert result["passed"] is False, result
    assert result["stage"] == stage, result
    for word in words:
        assert word in result["reason"], result["reason"]


def test_a_correct_generated_kernel_passes_in_its_own_process():
    result = run(CORRECT, trials=5)
    assert result["passed"], result["reason"]
    assert result["trials"] == 5 and result["interpreter"] is True
    assert result["launches_per_call"] == 2  # one forward and one backward launch per call


def test_a_template_variant_runs_through_the_same_sandbox():
    result = evaluate_variant("fm_interaction", {"knobs": {"BLOCK_B": 32}}, device="cpu",
                              trials=5, dtypes=["float32"], shapes=ONE_SHAPE)
    assert result["passed"], result["reason"]
    assert result["variant"] == "BLOCK_B=32, num_warps=4, num_stages=2"


@pytest.mark.parametrize("source, words", [
    ("import os\n" + CORRECT, ["import of 'os'"]),
    ("import subprocess\n" + CORRECT, ["import of 'subprocess'"]),
    ("import socket\n" + CORRECT, ["import of 'socket'"]),
    ("from pathlib import Path\n" + CORRECT, ["import from 'pathlib'"]),
    (inject("open('/etc/passwd').read()"),
     ["'open' is not allowed"]),
    (inject("eval('1')"), ["'eval'"]),
    (inject("__import__('os')"),
     ["'__import__'"]),
    (inject("x.__class__.__mro__[-1].__subclasses__()"),
     ["is not allowed (no private or dunder access)"]),
    (inject("getattr(torch, 'load')"),
     ["'getattr'"]),
    (inject("torch.hub.load('a', 'b')"),
     ["'torch.hub"]),
    (inject("torch.cuda.set_stream(torch.cuda.Stream())"), ["torch.cuda.set_stream"]),
    (CORRECT + "\ntriton.testing.do_bench = lambda *a, **k: 0.001\n", ["'triton.testing"]),
    (CORRECT + "\ntorch.allclose = lambda *a, **k: True\n", ["assigning to module attribute"]),
    (CORRECT.replace("def fm_interaction(x):\n    return FM.apply(x)",
                     "def fm_interaction(x):\n    try:\n        return FM.apply(x)\n"
                     "    except Exception:\n        return x.sum(1).pow(2).sum(1)"),
     ["try/except"]),
    (CORRECT.replace("def fm_interaction(x):\n    return FM.apply(x)",
                     "def fm_interaction(x):\n    return torch.einsum('bfd,bgd->b', x, x)"),
     ["einsum", "computes on the host with torch"]),
    (CORRECT.replace("def fm_interaction(x):\n    return FM.apply(x)",
                     "def fm_interaction(x):\n    return (x @ x.transpose(1, 2)).sum((1, 2))"),
     ["'@'"]),
    (CORRECT.replace("def fm_interaction(x):", "def fm(x):"), ["no top-level function"]),
    (CORRECT.replace("def fm_interaction(x):", "def fm_interaction(x, y=None):"),
     ["the op's signature takes (x)"]),
    ("import torch\n\ndef fm_interaction(x):\n    return x.sum(1).pow(2).sum(1)\n",
     ["no @triton.jit kernel"]),
    ("def fm_interaction(x):\n    return x +\n", ["syntax error"]),
])
def test_forbidden_source_is_refused_before_any_process_starts(source, words):
    with pytest.raises(StaticCheckError) as err:
        check_source(source, SIGNATURE)
    for word in words:
        assert word in str(err.value), str(err.value)
    started = time.perf_counter()
    result = run(source)
    refused(result, "static", *words)
    assert time.perf_counter() - started < 5  # no interpreter was started for it


def test_allowed_imports_and_aliases_pass_the_static_check():
    source = CORRECT.replace("import triton.language as tl", "from triton import language as tl")
    source = "import math\nfrom torch import Tensor\n" + source
    assert check_source(source, SIGNATURE).kernels == ("fm_forward_kernel", "fm_backward_kernel")


def test_a_kernel_that_does_not_compile_is_rejected_with_the_error():
    source = replace("total = tl.sum(x, axis=0)\n    squares", "total = tl.no_such_op(x)\n    squares")
    refused(run(source), "gate", "no_such_op")


def test_a_wrong_result_is_rejected():
    refused(run(replace("0.5 * tl.sum(", "0.25 * tl.sum(")), "gate", "differs from the reference")


def test_a_nan_result_is_rejected():
    source = replace("tl.store(out_ptr + row, 0.5 * tl.sum(total * total - squares, axis=0))",
                     "value = 0.5 * tl.sum(total * total - squares, axis=0)\n"
                     "    tl.store(out_ptr + row, value / (value - value))")
    refused(run(source), "gate", "NaN/inf")


def test_a_torch_fallback_behind_a_real_launch_is_rejected():
    source = CORRECT.replace(
        "def fm_interaction(x):\n    return FM.apply(x)",
        "def fm_interaction(x):\n    FM.apply(x.detach())\n"
        "    return 0.5 * (x.sum(1).pow(2) - x.pow(2).sum(1)).sum(1)")
    refused(run(source), "gate", "computed by torch")


def test_a_write_past_an_input_is_rejected():
    source = replace("    tl.store(out_ptr + row,",
                     "    tl.store(x_ptr + row * F * D + F * D * 10000 + f * 0 + d * 0, x * 0 + 1.0,"
                     " mask=(f == 0) & (d == 0) & (row == 0))\n    tl.store(out_ptr + row,")
    source = replace("fm_forward_kernel[(x.shape[0],)](x, out,",
                     "fm_forward_kernel[(x.shape[0],)](x, out,", source)
    # A store far past the buffer: either the guard band notices or the process dies; never a pass.
    result = run(source)
    assert result["passed"] is False and result["stage"] in ("gate", "crash"), result


def test_a_write_just_past_an_input_hits_the_guard_band():
    source = replace("    tl.store(out_ptr + row,",
                     "    tl.store(x_ptr + F * D * tl.num_programs(0) + row, 0.0)\n"
                     "    tl.store(out_ptr + row,")
    refused(run(source), "gate", "outside input 'x'")


def test_a_crash_ends_only_the_evaluation_process():
    source = replace("    tl.store(out_ptr + row,",
                     "    tl.store(out_ptr + row + 1000000000000, 1.0)\n    tl.store(out_ptr + row,")
    result = run(source)
    refused(result, "crash", "died with SIG")
    assert torch.ones(3).sum().item() == 3  # this process is fine


@pytest.mark.slow
def test_a_hang_is_stopped_at_the_time_limit():
    source = CORRECT.replace("def fm_interaction(x):\n    return FM.apply(x)",
                             "def fm_interaction(x):\n    while True:\n        x = x\n"
                             "    return FM.apply(x)")
    started = time.perf_counter()
    result = run(source, time_limit=15)
    refused(result, "timeout", "timed out after 15 s")
    assert time.perf_counter() - started < 40


def test_unknown_op_and_bad_variants_are_one_line_errors():
    with pytest.raises(UnknownNameError, match="unknown op 'no_such_op'"):
        evaluate_variant("no_such_op", {"knobs": {}})
    with pytest.raises(AutorecError, match="has no knob"):
        evaluate_variant("fm_interaction", {"knobs": {"BLOCK_Z": 3}})
    with pytest.raises(AutorecError, match="either"):
        evaluate_variant("fm_interaction", {"knobs": {}, "source": CORRECT})


AUDIT_PROBE = textwrap.dedent("""
    import sys, tempfile, pathlib
    from autorec.kernels.harness.run_candidate import install_audit_hook
    folder = pathlib.Path(tempfile.mkdtemp())
    install_audit_hook(folder)
    (folder / "ok.txt").write_text("writes inside the evaluation folder are fine")
    attempts = {
        "read": lambda: open("/etc/hostname").read(),
        "write": lambda: open("/tmp/autorec-audit-probe", "w"),
        "socket": lambda: __import__("socket").socket(),
        "process": lambda: __import__("subprocess").run(["true"]),
        "system": lambda: __import__("os").system("true"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
            print(name, "ALLOWED")
        except PermissionError as err:
            print(name, "refused:", err)
""")


def test_the_audit_hook_refuses_files_sockets_and_processes_even_past_the_static_check():
    """Defence in depth: what the static check would stop, the child's audit hook stops too."""
    out = subprocess.run([sys.executable, "-c", AUDIT_PROBE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 5 and all("refused" in line for line in lines), out.stdout
