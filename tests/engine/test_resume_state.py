"""`--resume` beyond kill -9: a finished run given a larger budget goes on where it stopped, its
proposer's state is what the next proposal follows from, and what may not change is refused."""

import json

import pytest
from typer.testing import CliRunner

import autorec
from autorec.agents import PROPOSERS
from autorec.archive import Archive
from autorec.cli import app
from autorec.search_config import SearchConfig

runner = CliRunner()


@pytest.fixture(autouse=True)
def counter_proposer(monkeypatch):
    # Counter proposes x = 0.5, 1.0, 1.5, ...: its next proposal follows from its state alone.
    monkeypatch.setitem(PROPOSERS._targets, "counter", "scripted_proposers:Counter")


def counter_xs(archive, run_id):
    """Every counter proposal in order, duplicates included."""
    return [c.params["x"] for c in archive.candidates(run_id) if c.operator == "counter"]


def evaluations(archive, run_id):
    return {e.id: (e.status, e.attempt, e.metrics)
            for c in archive.candidates(run_id) for e in archive.evaluations_for(c.id)}


def test_a_finished_run_resumed_with_a_larger_budget_continues(ray_tmp, duo):
    first = runner.invoke(app, ["search", "--space", duo, "--proposer", "counter", "--budget", "3",
                                "--set", "members=1", "--run-name", "grow", "--json"])
    assert first.exit_code == 0, first.output
    archive = Archive("runs.db", create=False)
    run = archive.get_run("grow")
    assert run.status == "finished"
    assert counter_xs(archive, run.id) == [0.5, 1.0]
    before = evaluations(archive, run.id)
    assert archive.load_proposer_state(run.id) == {"count": 2}

    again = runner.invoke(app, ["search", "--resume", "grow", "--budget", "5", "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["stop_reason"] == "budget of 5 evaluations used"
    # The counter went on from its stored state: no proposal repeated, none skipped.
    assert counter_xs(archive, run.id) == [0.5, 1.0, 1.5, 2.0]
    after = evaluations(archive, run.id)
    assert sum(status == "done" for status, _, _ in after.values()) == 5
    for evaluation_id, (status, attempt, metrics) in before.items():
        assert after[evaluation_id] == (status, attempt, metrics)  # done work is never redone
    assert archive.get_run("grow").status == "finished"
    assert archive.load_proposer_state(run.id) == {"count": 4}

    # The Python API resumes the same way.
    result = autorec.search(resume="grow", budget=6, db="runs.db")
    assert result.stop_reason == "budget of 6 evaluations used"
    assert counter_xs(archive, run.id) == [0.5, 1.0, 1.5, 2.0, 2.5]


@pytest.fixture
def stored_run(duo):
    """A run on record (no search needed to refuse a resume of it)."""
    config = SearchConfig(space=duo, proposer="counter", budget=3, run_name="kept",
                          space_settings={"members": 1})
    with Archive("runs.db") as archive:
        run = archive.create_run(config.space, config.proposer, name="kept",
                                 config=config.model_dump(mode="json"))
        archive.set_run_status(run.id, "interrupted")
    return config


@pytest.mark.parametrize("args, named", [
    (["--space", "architecture"], "space"),
    (["--proposer", "tpe"], "proposer"),
    (["--seed", "7"], "seed"),
    (["--dataset", "synthetic"], "dataset"),
    (["--set", "members=2"], "--set"),
    (["--llm", "local"], "--llm"),
    (["--config", "search.yaml"], "--config"),
])
def test_what_a_resume_may_not_change_is_refused_in_one_line(stored_run, args, named):
    with open("search.yaml", "w") as out:
        out.write("budget: 9\n")
    before = Archive("runs.db", create=False).get_run("kept")
    result = runner.invoke(app, ["search", "--resume", "kept", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    run = Archive("runs.db", create=False).get_run("kept")
    assert (run.config, run.status) == (before.config, "interrupted")  # nothing stored changed


def test_the_api_refuses_the_same_overrides(stored_run):
    with pytest.raises(autorec.ConfigError, match="proposer"):
        autorec.search(resume="kept", proposer="tpe", db="runs.db")
