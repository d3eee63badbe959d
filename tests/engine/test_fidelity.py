"""Multi-fidelity evaluation: successive halving stops evaluations behind their rung, keeps
their partial metrics and reason, promotes one its rung ranks among the best again, and a
resumed search rebuilds its rungs from the archive."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from autorec.agents.base import Proposal, Proposer
from autorec.archive import Archive
from autorec.cli import app
from autorec.engine.driver import SearchDriver
from autorec.engine.fidelity import SuccessiveHalving
from autorec.engine.worker import FINAL
from autorec.fitness import member_fitness
from autorec.search_config import SearchConfig
from autorec.space import Objective, load_space

runner = CliRunner()

LADDER = '''
import time
import pydantic
from autorec.space import Objective, SearchSpace, SuiteMember


class Rate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    quality: float = pydantic.Field(0.5, ge=0, le=1)


class Ladder(SearchSpace):
    """Validation score quality * epoch / 9 after each of nine epochs: better candidates are
    ahead at every epoch, as learning curves usually are."""

    name = "ladder"
    Candidate = Rate
    objectives = [Objective(name="valid_score", direction="max")]
    reported_metrics = ["score"]

    def describe(self):
        return "quality: how good the candidate is"

    def reference(self):
        return Rate()

    def sample(self, trial):
        return Rate(quality=trial.suggest_float("quality", 0, 1))

    def suite(self):
        return [SuiteMember("ladder", "toy", "toy")]

    def evaluate(self, candidate, member, report):
        epochs = 0
        for epoch in range(1, 10):
            time.sleep(0.05)
            epochs = epoch
            report({"epoch": epoch, "valid_score": candidate.quality * epoch / 9})
        return {"valid_score": candidate.quality, "score": candidate.quality, "epochs_run": epochs}
'''


METRIC = "valid_auc"


def objective():
    return Objective(name=METRIC, direction="max")


def test_rungs_stop_the_behind_and_promote_them_when_the_rung_fills_with_worse():
    halving = SuccessiveHalving(objective(), grace=1, eta=3, max_epoch=30)
    assert halving.rung_epochs == [1, 3, 9, 27]
    m = "fm/ml-100k/ctr"
    assert not halving.report(m, 1, 1, {METRIC: 0.80}).stop  # too few in the rung to judge
    assert not halving.report(m, 2, 1, {METRIC: 0.75}).stop
    third = halving.report(m, 3, 1, {METRIC: 0.70})
    assert third.stop and "epoch 1" in third.reason and "cutoff 0.8000" in third.reason
    assert not halving.report(m, 1, 2, {METRIC: 0.81}).stop  # not a rung epoch
    # Six weaker evaluations arrive: 0.70 is now among the best third of nine.
    assert halving.promotable(m, 1, {3: 0.70}) == []
    for evaluation_id, value in ((4, 0.60), (5, 0.55), (6, 0.50), (8, 0.4), (9, 0.3), (10, 0.2)):
        halving.report(m, evaluation_id, 1, {METRIC: value})
    assert halving.promotable(m, 1, {3: 0.70}) == [3]
    # The value entered at a rung is the best so far, not the last epoch's.
    halving.report(m, 7, 1, {METRIC: 0.9})
    halving.report(m, 7, 2, {METRIC: 0.1})
    halving.report(m, 7, 3, {METRIC: 0.2})
    assert halving.rung_metrics(m, 7) == {"asha.rung1": 0.9, "asha.rung3": 0.9}


def test_minimising_objectives_keep_the_lowest():
    halving = SuccessiveHalving(Objective(name="valid_logloss", direction="min"), eta=2)
    m = "m"
    assert not halving.report(m, 1, 1, {"valid_logloss": 0.5}).stop
    assert halving.report(m, 2, 1, {"valid_logloss": 0.6}).stop
    assert not halving.report(m, 3, 1, {"valid_logloss": 0.4}).stop


def test_rungs_rank_the_fitness_an_evaluation_would_end_with_so_size_counts():
    objectives = [Objective(name="valid_auc", direction="max", weight=1.0),
                  Objective(name="params", direction="min", weight=0.01)]
    reference = {"valid_auc": 0.80, "params": 1000.0}

    def score(member, metrics):
        return member_fitness(metrics, reference, objectives)

    by_fitness = SuccessiveHalving(objectives[0], eta=3, score=score)
    by_auc = SuccessiveHalving(objectives[0], eta=3)
    m = "m"
    # Two large models ahead on AUC, then a small one 0.1% behind with a tenth of the params:
    # its fitness (-0.00125 + 0.009) is the best of the three, its AUC the worst.
    reports = [(1, {"valid_auc": 0.800, "params": 1000.0}),
               (2, {"valid_auc": 0.801, "params": 1000.0}),
               (3, {"valid_auc": 0.799, "params": 100.0})]
    for evaluation_id, metrics in reports:
        kept = by_fitness.report(m, evaluation_id, 1, metrics)
        cut = by_auc.report(m, evaluation_id, 1, metrics)
    assert not kept.stop and kept.value == pytest.approx(-0.00125 + 0.009)
    assert cut.stop and "valid_auc 0.7990" in cut.reason
    # The rung value is the fitness of the best epoch so far (the one the trainer would keep).
    by_fitness.report(m, 3, 2, {"valid_auc": 0.700, "params": 100.0})
    assert by_fitness.report(m, 3, 3, {"valid_auc": 0.750, "params": 100.0}).value == \
        pytest.approx(-0.00125 + 0.009)


def test_no_stop_before_the_reference_is_in():
    halving = SuccessiveHalving(objective(), eta=2, score=lambda member, metrics: None)
    for evaluation_id, value in enumerate((0.9, 0.5, 0.1)):
        decision = halving.report("m", evaluation_id, 1, {METRIC: value})
        assert not decision.stop and decision.value is None
    assert halving.rungs == {}


class Fixed(Proposer):
    name = "fixed"

    def __init__(self, space, qualities):
        super().__init__(space)
        self.todo, self.seen = list(qualities), []

    def propose(self, context, n):
        out, self.todo = self.todo[:n], self.todo[n:]
        return [Proposal({"quality": q}, "fixed") for q in out]

    def observe(self, result):
        self.seen.append(result)


def ladder(tmp_path):
    path = tmp_path / "ladder_space.py"
    path.write_text(LADDER)
    return f"{path}:Ladder"


def gain(value, reference=0.5):
    """Ladder fitness: relative gain of valid_score over the reference candidate's."""
    return (value - reference) / reference


def drive(driver, steps):
    """Start trials and feed them epochs as `steps` says: (trial, epochs to report or 'final')."""
    trials = {}
    for name, action in steps:
        if name not in trials:
            trials[name] = driver.next_trial(name)
        trial = trials[name]
        quality = trial["params"]["quality"]
        if action == "final":
            driver.complete(name, {"valid_score": quality, "score": quality, FINAL: 1}, False)
            continue
        for epoch in action:
            stop = driver.on_epoch(name, {"epoch": epoch, "valid_score": quality * epoch / 9,
                                          FINAL: 0})
            if stop:
                driver.complete(name, {"epoch": epoch, "valid_score": quality * epoch / 9}, False)
                break
    return trials


def halving_run(tmp_path, qualities):
    """A ladder search with successive halving (eta 2) driven by hand: the parts to resume it."""
    spec = ladder(tmp_path)
    space = load_space(spec)
    config = SearchConfig(space=spec, budget=8, workers=4, early_stopping=True,
                          early_stopping_eta=2, run_name="asha")
    archive = Archive(tmp_path / "runs.db")
    run = archive.create_run(spec, "fixed", name="asha", config=config.model_dump(mode="json"))
    proposer = Fixed(space, qualities)
    driver = SearchDriver(config, archive, space, proposer, run.id)
    return config, archive, space, run, proposer, driver


def test_the_driver_stops_promotes_and_resumes_mid_rung(tmp_path):
    config, archive, space, run, proposer, driver = halving_run(tmp_path, [0.9, 0.4, 0.3, 0.2, 0.1])
    # The reference (quality 0.5) runs in full; 0.9 and 0.4 reach rung 1 first.
    drive(driver, [("ref", [1, 2, 3]), ("ref", "final"), ("a", [1]), ("b", [1]),
                   ("a", [2, 3]), ("a", "final")])
    rows = {c.params["quality"]: c for c in archive.candidates(run.id)}
    stopped = rows[0.4]
    assert stopped.status == "stopped" and stopped.fitness is None
    assert "stopped early at epoch 1" in stopped.error
    (evaluation,) = archive.evaluations_for(stopped.id)
    assert evaluation.status == "stopped" and evaluation.metrics["valid_score"] == pytest.approx(0.4 / 9)
    # The rung ranks the fitness it would have had if it ended there (gain over the reference's 0.5).
    assert evaluation.metrics["asha.rung1"] == pytest.approx(gain(0.4 / 9))
    assert [r.status for r in proposer.seen if r.params == {"quality": 0.4}] == ["stopped"]
    driver.interrupted()

    # A new driver on the same archive (a resumed search) knows the rung and the stopped one.
    proposer2 = Fixed(space, [0.3, 0.2])
    resumed = SearchDriver(config, archive, space, proposer2, run.id)
    assert resumed.halving.rungs["ladder/toy/toy"][1][evaluation.id] == pytest.approx(gain(0.4 / 9))
    # Two weaker candidates enter rung 1: 0.4 is now among its best half and is promoted.
    drive(resumed, [("c", [1]), ("d", [1])])
    again = archive.get_candidate(stopped.id)
    assert again.status == "running" and again.error is None
    assert archive.get_evaluation(evaluation.id).attempt == evaluation.attempt + 1
    assert evaluation.id in resumed.queue


def test_a_search_with_early_stopping_keeps_the_best_and_trains_less(ray_tmp, tmp_path):
    spec = ladder(tmp_path)
    result = runner.invoke(app, [
        "search", "--space", spec, "--proposer", "random", "--budget", "10", "--seed", "2",
        "--early-stopping", "--run-name", "halved", "--json"])
    assert result.exit_code == 0, result.output
    archive = Archive("runs.db", create=False)
    rows = archive.candidates(archive.get_run("halved").id)
    stopped = [c for c in rows if c.status == "stopped"]
    done = [c for c in rows if c.status == "done"]
    assert stopped and done
    best_stopped = max(archive.evaluations_for(c.id)[0].metrics["valid_score"] for c in stopped)
    best_done = max(c.objectives["valid_score"] for c in done)
    assert best_done >= best_stopped  # nothing stopped was ever ahead at its rung
    summary = json.loads(result.stdout)
    assert summary["best"]["objectives"]["valid_score"] == best_done


def test_a_search_resumed_while_an_evaluation_is_between_rungs(tmp_path):
    config, archive, space, run, _, driver = halving_run(tmp_path, [0.9, 0.8, 0.95])
    # a runs in full; b is stopped at rung 1 behind a; c leads rung 1 and is at epoch 2 (past
    # rung 1, before rung 3) when the search is interrupted.
    trials = drive(driver, [("ref", [1, 2, 3]), ("ref", "final"), ("a", [1, 2, 3]),
                            ("a", "final"), ("b", [1]), ("c", [1, 2])])
    c_evaluation = trials["c"]["evaluation_id"]
    driver.interrupted()
    assert archive.get_evaluation(c_evaluation).status == "pending"

    proposer = Fixed(space, [0.2])
    resumed = SearchDriver(config, archive, space, proposer, run.id)
    rung1 = resumed.halving.rungs["ladder/toy/toy"][1]
    assert c_evaluation not in rung1 and len(rung1) == 2  # c's interrupted attempt left no entry
    # c starts again from epoch 1, enters rung 1 once, and finishes with a fitness.
    again = drive(resumed, [("c2", [1, 2, 3]), ("c2", "final")])
    assert again["c2"]["evaluation_id"] == c_evaluation
    assert len(rung1) == 3 and rung1[c_evaluation] == pytest.approx(gain(0.95 / 9))
    c = archive.get_candidate(trials["c"]["candidate_id"])
    assert c.status == "done" and c.fitness == pytest.approx(gain(0.95))
    # A new weak candidate is judged against the rung rebuilt from the archive: stopped.
    drive(resumed, [("d", [1])])
    d = [x for x in archive.candidates(run.id) if x.params == {"quality": 0.2}][0]
    assert d.status == "stopped" and "epoch 1" in d.error


def test_architecture_epoch_reports_carry_the_params_the_fitness_counts():
    # Successive halving ranks by the fitness an evaluation would end with, params included:
    # every epoch's report must carry the count the final metrics will have.
    s = load_space("architecture", {"dataset": "ml-100k",
                                    "settings": {"max_epochs": 2, "threads": 1}})
    reports = []
    candidate = s.validate({"model": "fm", "embedding_dim": 4, "epochs": 2})
    metrics = s.evaluate(candidate, s.suite()[0], reports.append)
    assert [r["epoch"] for r in reports] == [1, 2]
    assert all(r["params"] == metrics["params"] > 0 for r in reports)


def test_tpe_learns_a_stopped_candidate_as_a_pruned_trial(tmp_path):
    # What a proposer learns from partial results: TPE hears a stopped candidate as Optuna's
    # pruned trial (counted among the worse configurations, as with Optuna's own pruner), a
    # failed one as a failure (ignored by the sampler).
    from optuna.trial import TrialState

    from autorec.agents.base import CandidateResult, ProposalContext
    from autorec.agents.optuna_proposers import TPEProposer

    space = load_space(ladder(tmp_path))
    proposer = TPEProposer(space, seed=0)
    stopped, failed, done = proposer.propose(ProposalContext(space, 1, [], None, 0), 3)
    for proposal, status, fitness in ((stopped, "stopped", None), (failed, "failed", None),
                                      (done, "done", 0.1)):
        proposer.observe(CandidateResult(0, proposal.params, status, fitness, {}, "tpe"))
    states = [t.state for t in proposer.study.get_trials(deepcopy=False)]
    assert states == [TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    # The state survives a resume.
    again = TPEProposer(space, seed=0)
    again.load_state_dict(proposer.state_dict())
    assert [t.state for t in again.study.get_trials(deepcopy=False)] == states
