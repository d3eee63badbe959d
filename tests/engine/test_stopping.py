"""Each termination rule stops a real search for its stated reason, no later than it allows.

Every rule runs through both entries a user has: `autorec search` and the Python API
(`autorec.search`). Proposals are scripted (tests/engine/scripted_proposers.py) so the number
of evaluations each rule allows is known in advance; evaluations are counted, never timed,
except for a generous bound on the wall-clock rules.
"""

import json
import re
import time

import pytest
import yaml
from typer.testing import CliRunner

import autorec
from autorec.agents import PROPOSERS
from autorec.archive import Archive
from autorec.cli import app

ENTRIES = ["cli", "api"]
FLAGS = {"budget": "--budget", "max_time": "--max-time", "patience": "--patience",
         "max_tokens": "--max-tokens", "max_cost": "--max-cost", "eval_time_limit": "--eval-time-limit"}


@pytest.fixture(autouse=True)
def scripted_proposer(monkeypatch):
    monkeypatch.setitem(PROPOSERS._targets, "scripted", "scripted_proposers:Scripted")


def search(entry, space, params, settings=None, options=None, **limits):
    """Run one search of `space` with the scripted proposer; (stop_reason, evaluations, run id)."""
    options = {"params": params, **(options or {})}
    settings = settings or {}
    if entry == "cli":
        config = {"proposer_options": options, "space_settings": settings}
        path = "search.yaml"
        with open(path, "w") as out:
            yaml.safe_dump(config, out)
        args = ["search", "--space", space, "--proposer", "scripted", "--config", path,
                "--run-name", "stop", "--json"]
        for key, value in limits.items():
            args += [FLAGS[key], str(value)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        # From the line that opens the JSON document: the one-document promise of --json has
        # its own test (tests/cli/test_readme_promises.py); here only the summary counts.
        summary = json.loads(result.stdout[re.search(r"^\{$", result.stdout, re.M).start():])
        stop_reason, evaluations = summary["stop_reason"], summary["evaluations"]
    else:
        result = autorec.search(space, proposer="scripted", proposer_options=options,
                                space_settings=settings, run_name="stop", db="runs.db", **limits)
        stop_reason, evaluations = result.stop_reason, result.evaluations
    archive = Archive("runs.db", create=False)
    return stop_reason, evaluations, archive, archive.get_run("stop").id


def proposed(archive, run_id):
    return [c for c in archive.candidates(run_id) if c.operator == "scripted"]


XS = [{"x": round(0.1 * i, 1)} for i in range(1, 30)]


@pytest.mark.parametrize("entry", ENTRIES)
def test_budget_counts_evaluations_and_never_starts_a_suite_it_cannot_finish(ray_tmp, duo, entry):
    # Two members per candidate: the reference and two candidates use 6 of 7; a third would need 8.
    reason, evaluations, archive, run_id = search(entry, duo, XS, budget=7)
    assert reason == "budget of 7 evaluations used"
    assert evaluations == 6
    assert len(proposed(archive, run_id)) == 2
    assert archive.get_run(run_id).status == "finished"


@pytest.mark.parametrize("entry", ENTRIES)
def test_patience_stops_after_n_candidates_without_a_better_fitness(ray_tmp, duo, entry):
    # One member: fitness = x / 4, so x = 1 is the best and the ones after it are all worse.
    params = [{"x": 1.0}, {"x": 0.5}, {"x": 0.4}, {"x": 0.3}, {"x": 0.2}, {"x": 0.1}]
    reason, evaluations, archive, run_id = search(
        entry, duo, params, settings={"members": 1}, patience=3
    )
    assert reason == "no better fitness in 3 candidates"
    assert [c.params["x"] for c in proposed(archive, run_id)] == [1.0, 0.5, 0.4, 0.3]
    assert evaluations == 5


@pytest.mark.parametrize("entry", ENTRIES)
def test_max_tokens_stops_on_the_llm_tokens_spent(ray_tmp, duo, entry):
    # 150 tokens per proposal: 300 < 400 after two, so a third is made; 450 >= 400 stops.
    reason, evaluations, archive, run_id = search(
        entry, duo, XS, settings={"members": 1}, options={"tokens_in": 100, "tokens_out": 50},
        max_tokens=400,
    )
    assert reason == "LLM token budget of 400 used"
    assert len(proposed(archive, run_id)) == 3 and evaluations == 4
    totals = archive.llm_totals(run_id)
    assert totals["tokens_in"] + totals["tokens_out"] == 450


@pytest.mark.parametrize("entry", ENTRIES)
def test_max_cost_stops_on_the_llm_cost_spent(ray_tmp, duo, entry):
    reason, evaluations, archive, run_id = search(
        entry, duo, XS, settings={"members": 1}, options={"cost": 0.25}, max_cost=0.6
    )
    assert reason == "LLM cost budget of 0.6 used"
    assert len(proposed(archive, run_id)) == 3 and evaluations == 4
    assert archive.llm_totals(run_id)["cost"] == pytest.approx(0.75)


@pytest.mark.parametrize("entry", ENTRIES)
def test_max_time_stops_the_search(ray_tmp, duo, entry):
    # One second per evaluation and a budget of 20: only the time limit can end it early.
    start = time.monotonic()
    reason, evaluations, archive, run_id = search(
        entry, duo, XS, settings={"members": 1, "delay": 1.0}, budget=20, max_time=5
    )
    elapsed = time.monotonic() - start
    # The driver's own check or Tune's time budget, whichever notices first.
    assert reason in ("time limit of 5 s reached", "the search's time budget ended")
    # At most what fits in 5 s of one-second evaluations, plus the one running when time ran out
    # (on a loaded machine Ray's start-up may leave time for none).
    assert evaluations <= 6
    assert elapsed < 5 + 60  # generous: start-up on a loaded machine; 20 evaluations take 20 s+
    done = [e for c in archive.candidates(run_id) for e in archive.evaluations_for(c.id)
            if e.status == "done"]
    assert len(done) == evaluations


@pytest.mark.parametrize("entry", ENTRIES)
def test_eval_time_limit_stops_an_evaluation_that_reports(ray_tmp, duo, entry):
    # The slow candidate reports every 0.1 s for a minute; the limit is 2 s.
    params = [{"x": 1.0, "mode": "slow"}, {"x": 2.0}]
    reason, evaluations, archive, run_id = search(
        entry, duo, params, settings={"members": 1}, eval_time_limit=2
    )
    slow, fast = proposed(archive, run_id)
    assert slow.status == "failed" and "time limit of 2 s" in slow.error
    (evaluation,) = archive.evaluations_for(slow.id)
    assert evaluation.status == "timeout"
    assert evaluation.seconds is None or evaluation.seconds < 30  # far below its minute
    assert fast.status == "done"  # the search went on after the timeout
    assert reason == "the proposer has nothing new to propose" and evaluations == 3
