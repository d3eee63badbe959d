"""`autorec ihas`: its report, its seed file (valid for the embedding_dims space) and bad input."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from autorec.cli import app
from autorec.space import load_space

runner = CliRunner()
QUICK = ["--set", "search_epochs=1", "--set", "retrain_epochs=1", "--set", "lr=0.005"]


def ihas(*args):
    return runner.invoke(app, ["ihas", *args])


def test_json_report_and_seed_file_that_the_embedding_dims_space_accepts(tmp_path):
    seeds = tmp_path / "seeds.yaml"
    result = ihas("--model", "fm", "--dataset", "synthetic", *QUICK, "--json",
                  "--write-seeds", str(seeds))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    fields = [f"f{i}" for i in range(12)]
    assert report["model"] == "fm" and report["groups"] == 1
    assert list(report["global_dims"]) == fields
    assert report["group_list"][0]["dims"] == report["global_dims"]
    assert report["group_list"][0]["rows"] == {"train": 40000, "valid": 5000, "test": 5000}
    routed = report["routed"]
    assert {"valid_auc", "auc", "embedding_params", "router_params"} <= set(routed)
    assert routed["router_params"] == 0, "one group needs no router"
    assert 0 < routed["embedding_params"] < report["search"]["embedding_params"]

    candidates = yaml.safe_load(seeds.read_text())
    assert candidates == report["seeds"]["candidates"] == [report["global_dims"]]
    space = load_space("embedding_dims", {"dataset": "synthetic", "task": "ctr"})
    assert space.validate(candidates[0]).model_dump() == report["global_dims"]


def test_table_output_names_every_field_and_both_auc_kinds():
    result = ihas("--model", "deepfm", "--dataset", "synthetic", *QUICK)
    assert result.exit_code == 0, result.output
    assert "per-field widths" in result.output and "f11" in result.output
    assert "valid auc" in result.output and "test auc" in result.output
    assert "iHAS, K=1" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "sasrec"], "sequential model; iHAS needs a ctr model"),
        (["--model", "lr", "--dataset", "synthetic", *QUICK], "no field embeddings to gate"),
        (["--groups", "0"], "--groups must be at least 1"),
        (["--set", "sparsity=-1"], "invalid ihas settings: sparsity"),
        (["--set", "colour=red"], "invalid ihas settings: colour"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = ihas(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
