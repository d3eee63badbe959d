"""The architecture space's beyond-accuracy knobs: off by default, searched when asked for."""

import optuna
import pytest

from autorec.errors import ConfigError
from autorec.search_spaces.architecture import ArchitectureSpace
from autorec.space import CANDIDATE_MODEL, Objective, SpaceOptions, candidate_hash

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A candidate as an archive stored it before the knobs existed.
STORED = {"model": "sasrec", "embedding_dim": 64, "num_blocks": 2, "num_heads": 1, "dropout": 0.2,
          "lr": 0.001, "batch_size": 128, "epochs": 30, "weight_decay": 0.0}


def space(task="sequential", **settings):
    return ArchitectureSpace(SpaceOptions(dataset="ml-100k", task=task, settings=settings))


def test_a_stored_candidate_keeps_its_params_and_hash():
    candidate = space().validate(STORED)
    assert candidate.model_dump(mode="json") == STORED
    assert candidate_hash(candidate.model_dump(mode="json")) == candidate_hash(STORED)
    assert "rerank_mmr_weight" not in space().trainer_settings(candidate, space().suite()[0])


def test_a_knob_that_is_on_is_part_of_the_candidate_and_its_training():
    s = space()
    candidate = s.validate({**STORED, "rerank_target_genres": 4})
    assert candidate.model_dump()["rerank_target_genres"] == 4
    assert s.trainer_settings(candidate, s.suite()[0])["rerank_target_genres"] == 4
    assert candidate_hash(candidate.model_dump(mode="json")) != candidate_hash(STORED)


def test_knobs_are_sampled_only_for_a_search_judged_on_their_family():
    plain, judged = space("ctr"), space("ctr")
    judged.add_search_objectives(
        [Objective(name="fairness.gender_leakage", direction="min", weight=0.1)], [])
    names = []
    for s in (plain, judged):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        trials = [study.ask() for _ in range(8)]
        for trial in trials:
            s.sample(trial)
        names.append(set().union(*(t.params for t in trials)))
    assert not any(n.startswith("fair_") for n in names[0])
    assert {"fair_adversary_weight_on", "fair_orthogonality_weight_on"} <= names[1]
    assert judged.knob_families() == ["fairness"] and plain.knob_families() == []


def test_the_knobs_setting_searches_them_without_an_objective():
    s = space(knobs=["diversity"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trials = [study.ask() for _ in range(10)]
    for trial in trials:
        s.sample(trial)
    assert "rerank" in set().union(*(t.params for t in trials))


def test_objectives_on_extra_metrics_turn_on_their_family():
    s = space("ctr", split="global_time", extra_metrics=["diversity"])
    s.add_search_objectives([], [])
    assert s.trainer_settings(s.reference(), s.suite()[0])["extra_metrics"] == ["diversity"]
    s.add_search_objectives([Objective(name="cold_user.auc", direction="max", weight=0.5)], [])
    assert s.extra_families() == ["diversity", "cold_start"]
    assert "valid_cold_user.auc" in s.metric_names()


def test_bad_knob_settings_are_one_line():
    with pytest.raises(ConfigError, match="knobs must list among diversity, fairness"):
        space(knobs=["novelty"])
    with pytest.raises(ConfigError, match="extra_metrics must list among"):
        space(extra_metrics="diversity,popularity")


def test_evaluate_returns_the_extra_metrics_on_both_splits():
    s = space("ctr", split="global_time", models=["fm"], max_epochs=1)
    s.add_search_objectives([Objective(name="diversity.intra_list", direction="max", weight=0.1)],
                            [])
    member = s.suite()[0]
    assert member.model == CANDIDATE_MODEL
    metrics = s.evaluate(s.reference(), member, lambda row: None)
    assert {"valid_diversity.intra_list", "diversity.intra_list", "valid_auc"} <= set(metrics)
    assert "valid_fairness.gender_leakage" not in metrics  # only the families asked for
