"""Fitness through a real search on a two-member space (duo_space.txt), against hand-worked values."""

import json

import pytest
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from autorec.engine import run_search
from autorec.search_config import SearchConfig
from autorec.space import load_space
from scripted_proposers import Scripted


def search(duo, params, tmp_path, **config):
    log = tmp_path / "evaluations.jsonl"
    settings = {"log": str(log), **config.pop("space_settings", {})}
    config = SearchConfig(space=duo, space_settings=settings, workers=1, run_name="duo", **config)
    archive = Archive("runs.db")
    proposer = Scripted(load_space(duo, {"settings": settings}), params=params)
    outcome = run_search(config, archive, proposer=proposer)
    run = archive.get_run("duo")
    by_x = {(c.params["x"], c.params["mode"]): c for c in archive.candidates(run.id)}
    started = [json.loads(line) for line in log.read_text().splitlines()]
    return outcome, archive, by_x, started, proposer


def test_fitness_of_a_two_member_candidate_is_the_hand_worked_mean(ray_tmp, duo, tmp_path):
    outcome, archive, by_x, _, proposer = search(
        duo, [{"x": 1.0}, {"x": -1.0}], tmp_path, budget=6
    )
    assert outcome.evaluations == 6
    reference = by_x[(0.0, "ok")]
    assert reference.fitness == 0.0 and reference.operator == "reference"
    # x = 1: first: quality (3-2)/2 = +0.5, size -(15-10)/10 * 0.5 = -0.25 -> 0.25;
    #        second: quality (5-4)/4 = +0.25, size -(16-20)/20 * 0.5 = +0.1 -> 0.35. Mean 0.3.
    assert by_x[(1.0, "ok")].fitness == pytest.approx(0.3)
    # x = -1: first: -0.5 + 0.25 = -0.25; second: -0.25 - 0.1 = -0.35. Mean -0.3.
    assert by_x[(-1.0, "ok")].fitness == pytest.approx(-0.3)
    # The raw objectives are the suite means: quality (3 + 5) / 2, size (15 + 16) / 2.
    assert by_x[(1.0, "ok")].objectives == pytest.approx({"quality": 4.0, "size": 15.5})
    assert archive.top(archive.get_run("duo").id, n=1)[0].params["x"] == 1.0
    assert outcome.best_fitness == pytest.approx(0.3)
    assert sorted(r.fitness for r in proposer.seen) == pytest.approx([-0.3, 0.0, 0.3])  # ref: 0


def test_a_candidate_whose_first_member_fails_skips_the_others(ray_tmp, duo, tmp_path):
    outcome, archive, by_x, started, proposer = search(
        duo, [{"x": 1.0, "mode": "fail_first"}, {"x": 2.0}], tmp_path, budget=6
    )
    failed = by_x[(1.0, "fail_first")]
    assert failed.status == "failed" and failed.fitness is None
    assert "planted failure on the first member" in failed.error
    first, second = sorted(archive.evaluations_for(failed.id), key=lambda e: e.member)
    assert first.status == "failed"
    assert second.status == "failed" and "skipped" in second.error
    # The second member never started on a worker: it cost no evaluation time.
    assert {"x": 1.0, "mode": "fail_first", "member": "second"} not in started
    assert second.started_at is None
    # The search went on with the next proposal, which scored normally (x = 2: mean 0.6 - 0.1).
    assert by_x[(2.0, "ok")].status == "done"
    assert by_x[(2.0, "ok")].fitness == pytest.approx(((1.0 - 0.5) + (0.5 + 0.2)) / 2)
    assert [r.status for r in proposer.seen] == ["done", "failed", "done"]  # reference first


def test_a_closed_gate_fails_the_candidate(ray_tmp, duo, tmp_path):
    _, _, by_x, _, _ = search(duo, [{"x": 1.0, "mode": "closed"}], tmp_path, budget=4)
    gated = by_x[(1.0, "closed")]
    # Its objectives alone would have scored 0.3: the gate is what refuses it.
    assert gated.status == "failed" and gated.fitness is None
    assert "gate" in gated.error


def test_a_failing_reference_stops_the_run_with_one_line(ray_tmp, duo):
    result = CliRunner().invoke(app, [
        "search", "--space", duo, "--proposer", "random", "--budget", "6",
        "--set", "reference_mode=fail_first", "--run-name", "noref",
    ])
    assert result.exit_code == 2, result.output
    # One line that names the member and the cause; the traceback stays in the archive.
    assert result.stderr.startswith("error: the reference candidate failed on first/toy/toy")
    assert "planted failure on the first member" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    archive = Archive("runs.db", create=False)
    run = archive.get_run("noref")
    # Nothing but the reference was evaluated: without a yardstick no candidate is proposed.
    assert [c.operator for c in archive.candidates(run.id)] == ["reference"]
    assert run.status != "finished"
