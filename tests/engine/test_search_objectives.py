"""A search's own objectives and constraints (`--objective`, `--constraint`): parsed, mapped to
validation metrics, refused when the space computes no such metric, and applied by fitness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from autorec.errors import ConfigError
from autorec.fitness import candidate_fitness, violated_constraints, why_no_fitness
from autorec.search_config import SearchConfig
from autorec.space import Constraint, Objective, parse_constraint, parse_objective

runner = CliRunner()


def test_objectives_and_constraints_parse():
    assert parse_objective("diversity.genre_coverage:max:0.2") == Objective(
        name="diversity.genre_coverage", direction="max", weight=0.2)
    assert parse_objective("params:min") == Objective(name="params", direction="min", weight=1.0)
    assert parse_constraint("fairness.auc_gap<=0.01") == Constraint(
        name="fairness.auc_gap", op="<=", value=0.01)
    assert parse_constraint("score > -3").op == ">" and parse_constraint("a==1").value == 1.0
    for bad in ("auc", "auc:up", "auc:max:heavy", ":max"):
        with pytest.raises(ConfigError, match="NAME:max or NAME:min|weight must be a number"):
            parse_objective(bad)
    for bad in ("auc", "auc<=x", "auc=<1"):
        with pytest.raises(ConfigError, match="METRIC<=VALUE"):
            parse_constraint(bad)


def test_a_constraint_fails_a_candidate_on_any_member():
    objectives = [Objective(name="valid_auc", direction="max")]
    bound = [Constraint(name="gap", op="<=", value=0.01)]
    reference = {"a": {"valid_auc": 0.8}, "b": {"valid_auc": 0.8}}
    fair = {"a": {"valid_auc": 0.88, "gap": 0.01}, "b": {"valid_auc": 0.8, "gap": 0.0}}
    assert candidate_fitness(fair, reference, objectives, constraints=bound) == pytest.approx(0.05)
    unfair = {"a": {"valid_auc": 0.88, "gap": 0.01}, "b": {"valid_auc": 0.8, "gap": 0.02}}
    assert candidate_fitness(unfair, reference, objectives, constraints=bound) is None
    assert why_no_fitness(unfair, objectives, constraints=bound) == (
        "b: constraint gap<=0.01 (got 0.02) not met")
    assert violated_constraints({"valid_auc": 0.9}, bound) == ["gap<=0.01 (missing)"]


def test_the_architecture_space_selects_search_objectives_on_validation():
    config = SearchConfig(space="architecture", dataset="synthetic",
                          objectives=["logloss:min:0.5", "train_seconds:min:0.001"],
                          constraints=["auc>=0.6"])
    space = config.build_space(new_run=True)
    assert [(o.name, o.weight) for o in space.objectives] == [
        ("valid_auc", 1.0), ("params", 0.01), ("valid_logloss", 0.5), ("train_seconds", 0.001)]
    assert space.constraints == [Constraint(name="valid_auc", op=">=", value=0.6)]
    assert space.reported_metrics == ["auc", "logloss"]  # test twins are still only reported
    contract = space.contract()
    assert contract["constraints"] == [{"name": "valid_auc", "op": ">=", "value": 0.6}]
    assert "valid_logloss" in contract["selection_metrics"]
    # Re-weighting one of the space's own objectives replaces it rather than adding a twin.
    again = SearchConfig(space="architecture", dataset="synthetic", objectives=["params:min:0.1"])
    assert [(o.name, o.weight) for o in again.build_space().objectives] == [
        ("valid_auc", 1.0), ("params", 0.1)]


@pytest.mark.parametrize("flag, value", [("--objective", "diversity.nope:max:0.2"),
                                         ("--constraint", "fairness.nope<=0.01")])
def test_a_metric_the_space_does_not_compute_is_one_line(flag, value):
    result = runner.invoke(app, ["search", "--dataset", "synthetic", flag, value])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "computes no metric" in lines[0] and value.split(":")[0].split("<")[0] in lines[0]
    assert not Path("runs.db").exists()


def test_a_search_with_an_objective_and_a_constraint(ray_tmp, bowl):
    result = runner.invoke(app, [
        "search", "--space", bowl, "--proposer", "random", "--budget", "8", "--seed", "1",
        "--objective", "score:max:2", "--constraint", "score>=2", "--run-name", "bounded",
        "--json"])
    assert result.exit_code == 0, result.output
    archive = Archive("runs.db", create=False)
    run = archive.get_run("bounded")
    assert run.space_contract["objectives"] == [{"name": "score", "direction": "max", "weight": 2.0}]
    assert run.space_contract["constraints"] == [{"name": "score", "op": ">=", "value": 2.0}]
    rows = [c for c in archive.candidates(run.id) if c.operator != "reference"]
    low = [c for c in rows if c.objectives and c.objectives["score"] < 2]
    assert low, "the seeded random draws include a candidate under the bound"
    for c in low:
        assert c.status == "failed" and c.fitness is None
        assert "constraint score>=2 (got" in c.error
    for c in rows:
        if c.status == "done":
            assert c.objectives["score"] >= 2
    pareto = json.loads(runner.invoke(app, ["archive", "pareto", "--run", "bounded",
                                            "--json"]).stdout)
    assert pareto["objectives"] == [{"name": "score", "direction": "max"}]


@pytest.mark.slow
def test_a_diversity_objective_and_a_fairness_constraint_search_from_the_cli(ray_tmp):
    """Issue 14's promise: the workers compute the metrics the search's objectives name."""
    result = runner.invoke(app, [
        "search", "--space", "architecture", "--dataset", "ml-100k", "--proposer", "random",
        "--budget", "3", "--set", "models=[fm]", "--set", "max_epochs=1",
        "--objective", "diversity.genre_coverage:max:0.2",
        "--constraint", "fairness.auc_gap_gender<=0.2", "--run-name", "fair", "--json"])
    assert result.exit_code == 0, result.output
    archive = Archive("runs.db", create=False)
    run = archive.get_run("fair")
    reference = archive.get_candidate(run.reference_candidate_id)
    assert reference.status == "done"
    assert "valid_diversity.genre_coverage" in reference.objectives
    assert "diversity.genre_coverage" in reference.reported  # the test twin, reported only
    pareto = json.loads(runner.invoke(app, ["archive", "pareto", "--run", "fair", "--json"]).stdout)
    assert [o["name"] for o in pareto["objectives"]] == [
        "valid_auc", "params", "valid_diversity.genre_coverage"]
