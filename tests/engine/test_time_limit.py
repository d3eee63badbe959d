"""--eval-time-limit holds whether or not an evaluation reports, and a late result never counts."""

import time
import types

import pytest

from autorec.agents.base import Proposal, Proposer
from autorec.archive import Archive
from autorec.engine import run_search
from autorec.engine.driver import SearchDriver
from autorec.engine.worker import FINAL, SECONDS, TIMEOUT, WALL_SECONDS
from autorec.search_config import SearchConfig
from autorec.space import Objective, load_space

SLOW_SPACE = '''
import time
from pathlib import Path
from typing import Literal

import pydantic

from autorec.space import Objective, SearchSpace, SuiteMember


class SlowCandidate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    x: float = pydantic.Field(0.0, ge=-5, le=5)
    mode: Literal["ok", "silent", "ticking", "native"] = "ok"


class Slow(SearchSpace):
    name = "slow"
    version = "1"
    Candidate = SlowCandidate
    objectives = [Objective(name="score", direction="max")]

    def describe(self):
        return "x in [-5, 5]; silent sleeps 40 s without a report, ticking reports every second"

    def reference(self):
        return SlowCandidate(x=3.0)

    def sample(self, trial):
        return SlowCandidate(x=trial.suggest_float("x", -5, 5))

    def suite(self):
        return [SuiteMember("slow", "none", "toy")]

    def evaluate(self, candidate, member, report):
        marker = Path(self.options.settings["markers"]) / f"{candidate.mode}-{candidate.x}"
        if candidate.mode == "silent":
            time.sleep(10)
            marker.write_text("still running 10 s in")  # a stopped worker never gets here
            time.sleep(30)
        if candidate.mode == "native":
            sum(range(3 * 10**9))  # one C call that holds the GIL for a minute or more
            marker.write_text("the native call returned")
        if candidate.mode == "ticking":
            for step in range(40):
                time.sleep(1)
                report({"step": step})
                if step == 10:
                    marker.write_text("still running 10 s in")
        # Its score would beat every other candidate: accepting it late would make it the best.
        return {"score": 100.0 if candidate.mode != "ok" else 10.0 - (candidate.x - 1) ** 2}
'''


class Scripted(Proposer):
    name = "scripted"

    def __init__(self, space, params):
        super().__init__(space)
        self.todo = list(params)

    def propose(self, context, n):
        out, self.todo = self.todo[:n], self.todo[n:]
        return [Proposal(params=p, operator="scripted") for p in out]

    def observe(self, result):
        pass


@pytest.mark.slow
def test_a_silent_and_a_ticking_evaluation_are_stopped_at_the_limit(ray_tmp, tmp_path):
    plugin = tmp_path / "slow_space.py"
    plugin.write_text(SLOW_SPACE)
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = f"{plugin}:Slow"
    limit = 3.0
    config = SearchConfig(space=spec, budget=4, workers=1, eval_time_limit=limit, run_name="limits",
                          space_settings={"markers": str(markers)})
    space = load_space(spec)
    proposer = Scripted(space, [{"x": 0.0, "mode": "silent"}, {"x": 0.0, "mode": "ticking"},
                                {"x": 1.0}])
    archive = Archive("runs.db")
    started = time.monotonic()
    run_search(config, archive, proposer=proposer)
    run = archive.get_run("limits")
    by_mode = {c.params["mode"] + str(c.params["x"]): c for c in archive.candidates(run.id)}

    for key in ("silent0.0", "ticking0.0"):
        candidate = by_mode[key]
        assert candidate.status == "failed", key
        assert candidate.fitness is None
        assert "time limit of 3 s" in candidate.error
        [evaluation] = archive.evaluations_for(candidate.id)
        assert evaluation.status == "timeout"
        assert evaluation.metrics is None
        # Stopped near the limit, not when the 40 s evaluation would have returned.
        assert evaluation.seconds < 20, evaluation.seconds
    # The search went on after both: the next candidate was evaluated and is the best.
    assert by_mode["ok1.0"].status == "done"
    assert archive.top(run.id, 1)[0].id == by_mode["ok1.0"].id
    assert archive.get_run(run.id).status == "finished"
    # The stopped evaluations' processes are gone: 10 s in, neither wrote its marker.
    time.sleep(max(0.0, started + 14 - time.monotonic()))
    assert list(markers.iterdir()) == []


def _outcome(result, error=False, limit=3.0):
    driver = types.SimpleNamespace(
        config=types.SimpleNamespace(eval_time_limit=limit),
        space=types.SimpleNamespace(objectives=[Objective(name="score", direction="max")]),
    )
    return SearchDriver._outcome(driver, result, error)


def test_a_final_result_that_took_longer_than_the_limit_is_a_timeout():
    status, metrics, error = _outcome({"score": 99.0, FINAL: 1, SECONDS: 3.5})
    assert status == "timeout" and metrics is None and "time limit of 3 s" in error
    assert _outcome({"score": 99.0, FINAL: 1, SECONDS: 2.5})[0] == "done"
    assert _outcome({"score": 99.0, FINAL: 1, SECONDS: 99.0}, limit=None)[0] == "done"


def test_the_workers_timeout_report_and_a_lost_overdue_worker_are_timeouts():
    assert _outcome({FINAL: 1, TIMEOUT: 3.01, SECONDS: 3.01})[0] == "timeout"
    # A worker that ended without a final result after running past the limit.
    assert _outcome({WALL_SECONDS: 3.4}, error=True)[0] == "timeout"
    assert _outcome({WALL_SECONDS: 1.0}, error=True)[0] == "failed"
    # An error reported after the limit is the limit's doing, not the candidate's error.
    assert _outcome({FINAL: 1, "autorec_error": "boom", SECONDS: 4.0})[0] == "timeout"


@pytest.mark.slow
def test_a_stopped_evaluation_leaves_a_quiet_console(tmp_path, short_tmp):
    """The worker's own end is not a crash: no Ray or Tune traceback reaches the user."""
    import os
    import subprocess
    import sys

    (tmp_path / "slow_space.py").write_text(SLOW_SPACE)
    (tmp_path / "seeds.yaml").write_text("- {x: 0.0, mode: silent}\n")
    (tmp_path / "markers").mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "AUTOREC_RAY_TMPDIR": short_tmp}
    done = subprocess.run(
        [sys.executable, "-m", "autorec.cli", "search", "--space", "slow_space.py:Slow",
         "--proposer", "random", "--budget", "2", "--eval-time-limit", "3", "--set",
         "markers=markers", "--seed-candidates", "seeds.yaml", "--db", "runs.db", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for noise in ("Traceback", "Trial task failed", "did not complete", "worker died"):
        assert noise not in done.stdout + done.stderr, (noise, done.stderr)
    archive = Archive(tmp_path / "runs.db", create=False)
    [seeded] = [c for c in archive.candidates(1) if c.operator == "seed"]
    assert archive.evaluations_for(seeded.id)[0].status == "timeout"


@pytest.mark.slow
def test_an_evaluation_holding_the_gil_is_still_stopped(ray_tmp, tmp_path):
    """A native call that never lets the worker's own thread run: the GIL-free watchdog ends
    the worker, and the driver stores a timeout (the search goes on)."""
    plugin = tmp_path / "slow_space.py"
    plugin.write_text(SLOW_SPACE)
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = f"{plugin}:Slow"
    config = SearchConfig(space=spec, budget=3, workers=1, eval_time_limit=3.0, run_name="gil",
                          space_settings={"markers": str(markers)})
    proposer = Scripted(load_space(spec), [{"x": 0.0, "mode": "native"}, {"x": 1.0}])
    archive = Archive("runs.db")
    run_search(config, archive, proposer=proposer)
    run = archive.get_run("gil")
    native, after = archive.candidates(run.id)[1:]
    [evaluation] = archive.evaluations_for(native.id)
    assert evaluation.status == "timeout" and native.status == "failed"
    assert evaluation.seconds < 60, evaluation.seconds
    assert after.status == "done"
    assert list(markers.iterdir()) == []
