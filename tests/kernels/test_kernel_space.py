"""The `triton_kernels` space: candidates, the interpreter-only fitness that says what it is, the
GPU requirement otherwise, the training setting of a winner, and a real search end to end."""

from __future__ import annotations

import json
import os

os.environ["TRITON_INTERPRET"] = "1"  # the generated kernel loaded for training runs here

import pytest
import torch
from fm_sources import CORRECT, replace
from typer.testing import CliRunner

from autorec.cli import app
from autorec.errors import AutorecError, UnknownNameError
from autorec.search_spaces.triton_kernels import KernelRejected
from autorec.space import SuiteMember, load_space
from autorec.testing import SpaceConformance

GATE_ONLY = {"settings": {"op": "fm_interaction", "fitness": "gate_only", "dtypes": ["float32"]}}
runner = CliRunner()


class TestTritonKernelsGateOnly(SpaceConformance):
    space_spec = "triton_kernels"
    options = GATE_ONLY


def space(**settings):
    return load_space("triton_kernels", {"settings": {**GATE_ONLY["settings"], **settings}})


def test_gate_only_is_labelled_as_such_and_needs_no_gpu():
    gate_only = space()
    assert gate_only.needs_gpu is False and gate_only.gates == ["correct"]
    assert [o.name for o in gate_only.objectives] == ["interpreter_gate_only"]
    assert "gate ALONE" in gate_only.describe() and "No speed is measured" in gate_only.describe()
    timed = load_space("triton_kernels", {"settings": {"op": "dcn_cross"}})
    assert timed.needs_gpu is True and [o.name for o in timed.objectives] == ["speedup"]
    assert timed.contract()["needs_gpu"] is True
    assert timed.suite() == [SuiteMember("dcnv2", "ml-100k", "ctr")]


def test_the_llm_is_told_the_signature_the_reference_and_the_template():
    s = space()
    assert "def fm_interaction(x: Tensor) -> Tensor" in s.describe()
    assert "BLOCK_B: one of 16, 32, 64, 8, 128" in s.describe()
    knowledge = s.knowledge()
    assert "square_of_sum" in knowledge  # the reference's body
    assert "@triton.jit" in knowledge  # the hand-written template


def test_knob_and_source_candidates():
    s = space()
    reference = s.reference()
    assert reference.variant() == {"knobs": {"BLOCK_B": 16, "num_warps": 4, "num_stages": 2}}
    with_source = s.validate({"op": "fm_interaction", "BLOCK_B": 64, "source": CORRECT})
    assert with_source.variant() == {"source": CORRECT}
    assert with_source.BLOCK_B == 16  # knobs mean nothing beside source: one source, one hash
    with pytest.raises(AutorecError, match="BLOCK_B"):
        s.validate({"op": "fm_interaction", "BLOCK_B": 3})
    with pytest.raises(AutorecError, match="op"):
        s.validate({"op": "dcn_cross"})


@pytest.mark.parametrize("settings, message", [
    ({"op": "conv2d"}, "unknown op 'conv2d'"),
    ({"fitness": "fastest"}, "fitness must be one of speedup, gate_only"),
    ({"trials": 2}, "trials must be an integer >= 5"),
    ({"time_limit": 0}, "time_limit must be a positive number"),
    ({"colour": "red"}, "unknown setting(s) colour"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises((AutorecError, UnknownNameError)) as err:
        space(**settings)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_generated_kernel_is_gated_in_the_sandbox_and_trains_by_its_id(tmp_path):
    s = space()
    member = s.suite()[0]
    candidate = s.validate({"op": "fm_interaction", "source": CORRECT})
    metrics = s.evaluate(candidate, member, lambda m: None)
    assert metrics["correct"] == 1.0 and metrics["interpreter_gate_only"] == 1.0
    assert "speedup" not in metrics and "triton_ms" not in metrics  # no speed from the interpreter
    assert metrics["gate_trials"] == 3 * 5  # five fresh inputs on each interpreter shape

    settings = s.trainer_settings(candidate, member)
    variant = settings["kernels"]["fm_interaction"]
    assert variant.startswith("generated:fm_interaction:")
    from autorec import kernels
    from autorec.trainer import split_settings

    split_settings(member.model, settings, member.task)  # what `autorec export` checks
    impl = kernels.resolve("fm_interaction", variant)
    x = torch.randn(7, 5, 6, requires_grad=True)
    expected = kernels.get_op("fm_interaction").reference(x)
    torch.testing.assert_close(impl(x), expected, atol=1e-4, rtol=1e-4)


def test_a_rejected_kernel_raises_its_reason():
    s = space()
    wrong = s.validate({"op": "fm_interaction", "source": replace("0.5 * tl.sum(", "0.25 * tl.sum(")})
    with pytest.raises(KernelRejected, match="gate: .*differs from the reference"):
        s.evaluate(wrong, s.suite()[0], lambda m: None)
    escape = s.validate({"op": "fm_interaction", "source": "import os\n" + CORRECT})
    with pytest.raises(KernelRejected, match="static: static check: line 1: import of 'os'"):
        s.evaluate(escape, s.suite()[0], lambda m: None)


def test_a_template_winner_exports_as_the_kernels_training_setting():
    from autorec.trainer import split_settings

    s = space()
    candidate = s.validate({"op": "fm_interaction", "BLOCK_B": 64, "num_warps": 2})
    settings = s.trainer_settings(candidate, s.suite()[0])
    assert settings == {"kernels": {"fm_interaction": {"BLOCK_B": 64, "num_warps": 2,
                                                        "num_stages": 2}}}
    split_settings("fm", settings, "ctr")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_timed_kernel_search_refuses_to_start_without_a_gpu(tmp_path):
    result = runner.invoke(app, ["search", "--space", "triton_kernels", "--set", "op=fm_interaction",
                                 "--proposer", "tpe", "--budget", "2",
                                 "--db", str(tmp_path / "runs.db")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "GPU" in lines[0], result.output


@pytest.mark.slow
def test_a_gate_only_kernel_search_runs_end_to_end_and_exports_its_best(tmp_path):
    db = str(tmp_path / "runs.db")
    result = runner.invoke(app, [
        "search", "--space", "triton_kernels", "--set", "op=fm_interaction",
        "--set", "fitness=gate_only", "--set", "dtypes=[float32]", "--proposer", "tpe",
        "--budget", "4", "--db", db, "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["evaluations"] == 4, summary
    for row in summary["top"]:
        assert row["fitness"] == 0.0  # the gate alone: every correct kernel scores the same
    shown = runner.invoke(app, ["archive", "show", str(summary["top"][0]["id"]), "--json",
                                "--db", db])
    assert shown.exit_code == 0, shown.output
    assert '"interpreter_gate_only": 1.0' in shown.output
    exported = runner.invoke(app, ["export", "--best", "--db", db, "--format", "json"])
    assert exported.exit_code == 0, exported.output
    spec = json.loads(exported.stdout[exported.stdout.index("{"):])
    assert spec["model"] == "fm" and set(spec["settings"]["kernels"]) == {"fm_interaction"}


def test_timed_fitness_is_the_geometric_mean_speedup_over_the_suite_shapes():
    from autorec.search_spaces.triton_kernels import _timing_metrics

    rows = [{"triton_fwd_bwd_ms": 1.0, "eager_fwd_bwd_ms": 4.0, "compile_fwd_bwd_ms": 2.0,
             "hbm_fraction": 0.6},
            {"triton_fwd_bwd_ms": 2.0, "eager_fwd_bwd_ms": 2.0, "compile_fwd_bwd_ms": 2.0,
             "hbm_fraction": 0.8}]
    metrics = _timing_metrics(rows)
    assert metrics["speedup"] == pytest.approx(2.0)  # sqrt(4 x 1)
    assert metrics["speedup_compile"] == pytest.approx(2 ** 0.5)
    assert metrics["hbm_fraction"] == pytest.approx(0.7)
