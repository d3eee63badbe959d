"""The search loop end to end on real Ray Tune: archive contents, faults, plugins."""

import json

import pytest
from typer.testing import CliRunner

from autorec.agents.base import Proposal, Proposer
from autorec.archive import Archive
from autorec.cli import app
from autorec.engine import run_search
from autorec.search_config import SearchConfig
from autorec.testing import SpaceConformance

runner = CliRunner()


class Scripted(Proposer):
    """Proposes a fixed list of candidates, then nothing."""

    name = "scripted"

    def __init__(self, space, params):
        super().__init__(space)
        self.todo = list(params)
        self.seen = []

    def propose(self, context, n):
        out, self.todo = self.todo[:n], self.todo[n:]
        return [Proposal(params=p, operator="scripted") for p in out]

    def observe(self, result):
        self.seen.append(result)


def test_plugin_space_passes_conformance(bowl):
    class TestBowl(SpaceConformance):
        space_spec = bowl

    suite = TestBowl()
    for name in dir(suite):
        if name.startswith("test_"):
            getattr(suite, name)()


def test_search_cli_fills_the_archive(ray_tmp, bowl):
    result = runner.invoke(
        app, ["search", "--space", bowl, "--proposer", "tpe", "--budget", "6", "--workers", "2",
              "--seed", "3", "--run-name", "first", "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["run"] == "first"
    assert summary["evaluations"] == 6
    archive = Archive("runs.db", create=False)
    run = archive.get_run("first")
    candidates = archive.candidates(run.id)
    reference = archive.get_candidate(run.reference_candidate_id)
    assert reference.operator == "reference" and reference.fitness == 0.0
    done = [c for c in candidates if c.status == "done"]
    assert len(done) == 6
    assert len({c.hash for c in done}) == 6
    assert run.status == "finished"
    # Fitness order follows the raw objective: the top candidate has the best score.
    best = archive.top(run.id, n=1)[0]
    assert best.objectives["score"] == max(c.objectives["score"] for c in done)
    assert summary["top"][0]["id"] == best.id


def test_failures_are_stored_and_the_search_goes_on(ray_tmp, bowl):
    config = SearchConfig(space=bowl, budget=6, workers=2, eval_time_limit=2.0, run_name="faults")
    proposals = [
        {"x": 1.0, "y": -2},  # the optimum
        {"x": 0.0, "y": 0, "mode": "raise"},
        {"x": 0.0, "y": 0, "mode": "nan"},
        {"x": 0.0, "y": 0, "mode": "sleep"},
        {"x": 9.0, "y": 0},  # out of range: invalid, costs no evaluation
        {"x": 1.0, "y": -2},  # duplicate of the first
        {"x": 2.0, "y": -2},
    ]
    archive = Archive("runs.db")
    from autorec.space import load_space

    space = load_space(bowl)
    proposer = Scripted(space, proposals)
    outcome = run_search(config, archive, proposer=proposer)
    run = archive.get_run("faults")
    by_params = {
        json.dumps(c.params, sort_keys=True): c
        for c in archive.candidates(run.id)
        if c.status != "duplicate"
    }

    def status(params):
        full = {"x": 0.0, "y": 0, "mode": "ok", **params}
        return by_params[json.dumps(full, sort_keys=True)]

    assert status({"mode": "raise"}).status == "failed"
    assert "planted failure" in status({"mode": "raise"}).error
    assert status({"mode": "nan"}).status == "failed"
    assert "not finite" in status({"mode": "nan"}).error
    sleeper = status({"mode": "sleep"})
    assert sleeper.status == "failed" and "time limit" in sleeper.error
    assert archive.evaluations_for(sleeper.id)[0].status == "timeout"
    statuses = [c.status for c in archive.candidates(run.id)]
    assert statuses.count("invalid") == 1 and statuses.count("duplicate") == 1
    invalid = next(c for c in archive.candidates(run.id) if c.status == "invalid")
    assert "less than or equal to 5" in invalid.error
    assert status({"x": 1.0, "y": -2}).fitness == max(
        c.fitness for c in archive.candidates(run.id) if c.fitness is not None
    )
    assert status({"x": 2.0, "y": -2}).status == "done"  # the search went on after the failures
    assert outcome.evaluations == 6
    # Failed candidates reach the proposer as failures, without fitness.
    failed = [r for r in proposer.seen if r.status == "failed"]
    assert len(failed) == 3 and all(r.fitness is None for r in failed)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "nope"], "unknown space 'nope'"),
        (["--proposer", "nope"], "unknown proposer 'nope'"),
        (["--budget", "0"], "budget"),
    ],
)
def test_bad_search_input_exits_2_without_traceback(args, message):
    result = runner.invoke(app, ["search", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_plugin_file_that_does_not_import(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    result = runner.invoke(app, ["search", "--space", f"{broken}:Space"])
    assert result.exit_code == 2
    assert "does not import" in result.output and "not_a_module_anywhere" in result.output


def test_plugin_class_that_is_not_a_space(tmp_path):
    plugin = tmp_path / "other.py"
    plugin.write_text("class Space:\n    pass\n")
    result = runner.invoke(app, ["search", "--space", f"{plugin}:Space"])
    assert result.exit_code == 2
    assert "is not a SearchSpace subclass" in result.output


def test_invalid_yaml_config(tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text("space: [unclosed\n")
    result = runner.invoke(app, ["search", "--config", str(config)])
    assert result.exit_code == 2 and "not valid YAML" in result.output
    config.write_text("space: architecture\nbudgett: 3\n")
    result = runner.invoke(app, ["search", "--config", str(config)])
    assert result.exit_code == 2 and "budgett" in result.output


def test_database_that_is_not_sqlite_is_left_alone(tmp_path):
    db = tmp_path / "runs.db"
    db.write_text("my notes, not a database\n")
    before = db.read_bytes()
    result = runner.invoke(app, ["search", "--space", "architecture", "--db", str(db)])
    assert result.exit_code == 2
    assert str(db) in result.output
    assert db.read_bytes() == before
