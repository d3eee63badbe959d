"""The Optuna baselines `random` and `tpe`: reproducible, resumable, and TPE learns."""

from __future__ import annotations

import json
import statistics
from typing import Literal

import optuna
import pydantic
import pytest

from autorec.agents import (
    PROPOSERS,
    CandidateResult,
    CandidateSummary,
    ProposalContext,
    load_proposer,
    proposer_names,
)
from autorec.errors import ConfigError, UnknownNameError
from autorec.search_spaces import ArchitectureSpace
from autorec.space import Objective, SearchSpace, SpaceOptions, SuiteMember, candidate_hash


class Point(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    x: float = pydantic.Field(0.0, ge=-5, le=5)
    y: float = pydantic.Field(0.0, ge=-5, le=5)
    z: float = pydantic.Field(0.0, ge=-5, le=5)


class Bowl(SearchSpace):
    """Closed form, no training: score = -|p - (1, -2, 3)|^2, best 0."""

    name = "bowl"
    Candidate = Point
    objectives = [Objective(name="score", direction="max")]

    def describe(self):
        return "x, y, z in [-5, 5]"

    def reference(self):
        return Point()

    def sample(self, trial):
        return Point(**{k: trial.suggest_float(k, -5, 5) for k in ("x", "y", "z")})

    def suite(self):
        return [SuiteMember("bowl", "none", "closed-form")]

    def evaluate(self, candidate, member, report):
        x, y, z = candidate.x, candidate.y, candidate.z
        return {"score": -((x - 1) ** 2 + (y + 2) ** 2 + (z - 3) ** 2)}


class Choice(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    letter: Literal["a", "b", "c"] = "a"


class Tiny(Bowl):
    """Three candidates in all."""

    Candidate = Choice

    def reference(self):
        return Choice()

    def sample(self, trial):
        return Choice(letter=trial.suggest_categorical("letter", ["a", "b", "c"]))

    def evaluate(self, candidate, member, report):
        return {"score": "abc".index(candidate.letter)}


def context(space, archive=()):
    return ProposalContext(
        space=space, run_id=1, archive=list(archive), evaluations_left=None, seed=0
    )


def result(proposal, fitness, status="done"):
    return CandidateResult(0, proposal.params, status, fitness, {}, proposal.operator)


def run(proposer, space, evaluations):
    """Propose one at a time, evaluate in closed form, observe; the scores in order."""
    scores = []
    for _ in range(evaluations):
        (proposal,) = proposer.propose(context(space), 1)
        score = space.evaluate(space.validate(proposal.params), space.suite()[0], None)["score"]
        proposer.observe(result(proposal, score))
        scores.append(score)
    return scores


def test_registry_names_and_errors():
    assert {"random", "tpe"} <= set(proposer_names())
    assert PROPOSERS["tpe"].name == "tpe"
    with pytest.raises(UnknownNameError, match="unknown proposer .no-such-proposer.; known: .*random.*tpe"):
        load_proposer("no-such-proposer", Bowl())
    with pytest.raises(ConfigError, match="n_startup"):
        load_proposer("random", Bowl(), n_startup_trials=3)
    assert load_proposer("tpe", Bowl(), seed=1, n_startup_trials=3).n_startup_trials == 3


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_a_seeded_proposer_repeats_itself(name):
    def sequence(seed):
        options = {"n_startup_trials": 3} if name == "tpe" else {}
        proposer = load_proposer(name, Bowl(), seed=seed, **options)
        return run(proposer, Bowl(), 8)

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_a_resumed_proposer_continues_exactly(name):
    space = Bowl()
    options = {"n_startup_trials": 3} if name == "tpe" else {}
    uninterrupted = load_proposer(name, space, seed=3, **options)
    run(uninterrupted, space, 5)
    pending = uninterrupted.propose(context(space), 2)  # asked, not yet evaluated

    state = json.loads(json.dumps(uninterrupted.state_dict()))  # as the archive stores it
    resumed = load_proposer(name, space, seed=3, **options)
    resumed.load_state_dict(state)

    def summary(study):
        return [(t.number, t.state, t.value, t.params) for t in study.trials]

    assert summary(resumed.study) == summary(uninterrupted.study)
    for proposer in (uninterrupted, resumed):  # the pending ones finish after the restart
        for proposal, fitness in zip(pending, (-1.0, -2.0)):
            proposer.observe(result(proposal, fitness))
    assert run(resumed, space, 6) == run(uninterrupted, space, 6)
    assert summary(resumed.study) == summary(uninterrupted.study)


def test_tpe_beats_random_on_a_closed_form_space():
    space, budget = Bowl(), 30
    best = {"random": [], "tpe": []}
    for seed in range(4):
        best["random"].append(max(run(load_proposer("random", space, seed=seed), space, budget)))
        best["tpe"].append(max(run(load_proposer("tpe", space, seed=seed), space, budget)))
    assert statistics.mean(best["tpe"]) > statistics.mean(best["random"])


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_no_duplicates_and_an_exhausted_space_proposes_nothing(name):
    space = Tiny()
    proposer = load_proposer(name, space, seed=0)
    proposed = []
    for _ in range(5):
        batch = proposer.propose(context(space), 2)
        for proposal in batch:
            proposer.observe(result(proposal, float("abc".index(proposal.params["letter"]))))
        proposed += [p.params["letter"] for p in batch]
    assert sorted(proposed) == ["a", "b", "c"]
    assert proposer.propose(context(space), 1) == []
    # Repeated draws were told Optuna with the first one's value, so the sampler learns from them.
    values = {t.params["letter"]: t.value for t in proposer.study.trials if t.value is not None}
    assert values == {"a": 0.0, "b": 1.0, "c": 2.0}


def test_candidates_already_in_the_archive_are_not_proposed():
    space = Tiny()
    archive = [
        CandidateSummary(i, {"letter": letter}, "done", float(i), {}, "reference", [], 0)
        for i, letter in enumerate("ab")
    ]
    proposals = load_proposer("random", space, seed=0).propose(context(space, archive), 3)
    assert [p.params for p in proposals] == [{"letter": "c"}]
    assert proposals[0].operator == "random"


def test_failed_candidates_fail_their_trial():
    space = Bowl()
    proposer = load_proposer("tpe", space, seed=0)
    first, second = proposer.propose(context(space), 2)
    proposer.observe(result(first, None, status="failed"))
    proposer.observe(result(second, float("nan")))
    assert [t.state for t in proposer.study.trials] == [optuna.trial.TrialState.FAIL] * 2
    # A result for a candidate this proposer never made is ignored.
    proposer.observe(CandidateResult(9, {"x": 0.5}, "done", 1.0, {}, "llm"))
    assert candidate_hash(first.params) in proposer.state_dict()["proposed"]


def test_proposals_validate_in_the_architecture_space():
    space = ArchitectureSpace(SpaceOptions(dataset="synthetic", settings={"max_epochs": 2}))
    proposer = load_proposer("tpe", space, seed=0, n_startup_trials=2)
    proposals = proposer.propose(context(space), 4)
    for i, proposal in enumerate(proposals):
        assert space.validate(proposal.params).model_dump(mode="json") == proposal.params
        proposer.observe(result(proposal, float(i)))
    more = proposer.propose(context(space), 3)
    assert len(more) == 3
    json.dumps(proposer.state_dict())
