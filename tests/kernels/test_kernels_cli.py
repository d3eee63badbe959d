"""`autorec kernels list|check|bench`: what a user sees, the exit codes, and every bad input as one
line with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from fm_sources import CORRECT, replace
from typer.testing import CliRunner

from autorec.cli import app

runner = CliRunner()
FAST = ["--dtype", "float32", "--trials", "1", "--device", "cpu"]


def invoke(*args: str):
    return runner.invoke(app, ["kernels", *args])


def test_list_names_every_op_with_its_knobs():
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    ops = {row["op"]: row for row in json.loads(result.output)}
    from autorec.kernels.registry import OPS

    assert set(ops) == set(OPS)
    assert {"embedding_pool", "fm_interaction", "dcn_cross", "hstu_attention"} <= set(ops)
    assert ops["fm_interaction"]["signature"].startswith("def fm_interaction(x")
    assert "BLOCK_B" in ops["fm_interaction"]["knobs"]
    assert invoke("list").exit_code == 0


def test_check_a_template_variant_passes_and_says_where_it_ran():
    result = invoke("check", "fm_interaction", "--variant", '{"BLOCK_B": 32}', *FAST)
    assert result.exit_code == 0, result.output
    assert "passed the gate on cpu under TRITON_INTERPRET=1" in result.output
    assert "BLOCK_B=32" in result.output


def test_check_generated_source_from_a_file(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(CORRECT)
    bad.write_text(replace("0.5 * tl.sum(", "0.25 * tl.sum("))
    result = invoke("check", "fm_interaction", "--source", str(good), *FAST, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["passed"] and payload["variant"] == "generated source"
    result = invoke("check", "fm_interaction", "--source", str(bad), *FAST)
    assert result.exit_code == 1
    assert "REJECTED (gate)" in result.output and "differs from the reference" in result.output


def test_a_statically_refused_source_exits_1_with_its_reason(tmp_path):
    path = tmp_path / "escape.py"
    path.write_text("import os\n" + CORRECT)
    result = invoke("check", "fm_interaction", "--source", str(path))
    assert result.exit_code == 1
    assert "REJECTED (static)" in result.output and "import of 'os'" in result.output


@pytest.mark.parametrize("args, message", [
    (["check", "no_such_op"], "unknown op 'no_such_op'"),
    (["check", "fm_interaction", "--variant", '{"BLOCK_Z": 1}'], "has no knob BLOCK_Z"),
    (["check", "fm_interaction", "--variant", '{"BLOCK_B": 3}'], "BLOCK_B=3 is not one of"),
    (["check", "fm_interaction", "--variant", "{not json"], "is not JSON"),
    (["check", "fm_interaction", "--variant", "[1, 2]"], "must be a JSON object"),
    (["check", "fm_interaction", "--source", "missing.py"], "no such file"),
    (["check", "fm_interaction", "--shapes", "huge", "--dtype", "float32"], "no shape set 'huge'"),
    (["check", "fm_interaction", "--trials", "0"], "--trials must be at least 1"),
    (["bench", "no_such_op", "--interpreter"], "unknown op 'no_such_op'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_bench_without_a_gpu_says_so_in_one_line():
    result = invoke("bench", "fm_interaction")
    assert result.exit_code == 2
    assert result.output.strip() == ("error: timing needs a CUDA GPU and none is visible; "
                                     "`--interpreter` runs only the correctness gate")


def test_bench_with_interpreter_runs_only_the_gate_and_reports_no_speed():
    result = invoke("bench", "fm_interaction", "--interpreter", "--dtype", "float32",
                    "--trials", "1")
    assert result.exit_code == 0, result.output
    assert "passed the gate" in result.output
    assert "no timing" in result.output and " ms" not in result.output
