from __future__ import annotations

import collections
import json
import pickle

import optuna
import pytest

from autorec.errors import ConfigError
from autorec.search_spaces.architecture import CTR_FAMILIES, SEQUENTIAL_FAMILIES, ArchitectureSpace
from autorec.space import CANDIDATE_MODEL, InvalidCandidate, SpaceOptions, candidate_hash
from autorec.trainer import split_settings


def space(task: str | None = None, **settings) -> ArchitectureSpace:
    return ArchitectureSpace(SpaceOptions(dataset="synthetic", task=task, settings=settings))


def samples(s: ArchitectureSpace, count: int, seed: int = 0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed))
    return [s.sample(study.ask()) for _ in range(count)]


def test_reference_is_deepfm_for_ctr_and_sasrec_for_sequential():
    ctr, seq = space(), space("sequential")
    assert ctr.reference().model == "deepfm"
    assert ctr.reference().trainer_settings()["hidden_units"] == [256, 128]  # DeepFM's default
    assert seq.reference().model == "sasrec"
    # Selection reads the validation split; the test split is only reported.
    assert [o.name for o in ctr.objectives] == ["valid_auc", "params"]
    assert [o.name for o in seq.objectives] == ["valid_ndcg@10", "params"]
    assert ctr.reported_metrics == ["auc", "logloss"]
    assert "ndcg@10" in seq.reported_metrics
    assert ctr.suite()[0].model == CANDIDATE_MODEL and ctr.suite()[0].task == "ctr"


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"model": "fm", "embedding_dim": 8}, {"embedding_dim": 8}),
        (
            {"model": "deepfm", "mlp_depth": 3, "mlp_width": 64, "dropout": 0.1},
            {"hidden_units": [64, 32, 16], "dropout": 0.1},
        ),
        (
            {"model": "dcnv2", "cross_layers": 4, "mlp_depth": 1},
            {"cross_layers": 4, "hidden_units": [256]},
        ),
        ({"model": "din", "attention_dim": 16}, {"attention_units": [32, 16]}),
        ({"model": "dare", "attention_dim": 8}, {"attention_dim": 8}),
    ],
)
def test_ctr_candidates_map_to_the_models_settings(params, expected):
    candidate = space().validate({**params, "lr": 0.01, "epochs": 2})
    settings = candidate.trainer_settings()
    assert settings.items() >= {**expected, "lr": 0.01, "epochs": 2}.items()
    split_settings(candidate.model, settings, "ctr")  # every key is one the model accepts
    if candidate.model == "fm":
        assert not {"hidden_units", "dropout", "cross_layers"} & set(settings)


def test_sequential_candidates_map_to_hidden_dim_blocks_and_heads():
    candidate = space("sequential").validate(
        {"model": "hstu", "embedding_dim": 32, "num_blocks": 3, "num_heads": 4, "dropout": 0.3}
    )
    settings = candidate.trainer_settings()
    expected = {"hidden_dim": 32, "num_blocks": 3, "num_heads": 4, "dropout": 0.3}
    assert settings.items() >= expected.items()
    assert "embedding_dim" not in settings
    split_settings("hstu", settings, "sequential")


def test_unused_knobs_are_reset_so_equal_models_are_one_candidate():
    s = space()
    plain = s.validate({"model": "fm"}).model_dump()
    noisy = s.validate({"model": "fm", "cross_layers": 5, "mlp_width": 999, "attention_dim": 7})
    assert noisy.model_dump() == plain
    assert candidate_hash(noisy.model_dump()) == candidate_hash(plain)
    # No hidden layer: width and dropout mean nothing either.
    a = s.validate({"model": "deepfm", "mlp_depth": 0, "mlp_width": 64, "dropout": 0.5})
    b = s.validate({"model": "deepfm", "mlp_depth": 0})
    assert a.model_dump() == b.model_dump()


def test_invalid_candidates_are_rejected_with_a_reason():
    seq = space("sequential")
    with pytest.raises(InvalidCandidate, match="divisible by num_heads"):
        seq.validate({"model": "sasrec", "embedding_dim": 30, "num_heads": 4})
    with pytest.raises(InvalidCandidate, match="model"):
        space().validate({"model": "sasrec"})  # a sequential family in a ctr search
    with pytest.raises(InvalidCandidate, match="lr"):
        space().validate({"model": "fm", "lr": 5.0})
    with pytest.raises(InvalidCandidate, match="typo_knob"):
        space().validate({"model": "fm", "typo_knob": 1})


def test_settings_restrict_families_and_bound_epochs():
    s = space(models=["fm", "dcnv2"], max_epochs=3)
    assert s.reference().model == "fm"  # deepfm is not allowed here
    assert s.reference().epochs == 3
    with pytest.raises(InvalidCandidate):
        s.validate({"model": "deepfm"})
    with pytest.raises(InvalidCandidate, match="epochs"):
        s.validate({"model": "fm", "epochs": 4})
    assert {c.model for c in samples(s, 20)} == {"fm", "dcnv2"}
    assert all(c.epochs <= 3 for c in samples(s, 20))
    assert "- dare:" not in s.describe() and "- dcnv2:" in s.describe()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": 3}, "unknown setting"),
        ({"models": ["sasrec"]}, "ctr families"),
        ({"models": []}, "ctr families"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"max_seconds": -1}, "max_seconds"),
    ],
)
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        space(**settings)


def test_sampling_covers_every_family_and_validates():
    s = space()
    drawn = samples(s, 60)
    assert set(collections.Counter(c.model for c in drawn)) == set(CTR_FAMILIES)
    for candidate in drawn:
        split_settings(candidate.model, candidate.trainer_settings(), "ctr")
    seq = space("sequential")
    assert {c.model for c in samples(seq, 20)} == set(SEQUENTIAL_FAMILIES)


def test_describe_names_families_knobs_and_objectives():
    text = space().describe()
    for word in (*CTR_FAMILIES, "auc", "params", "embedding_dim", "cross_layers", "lr"):
        assert word in text
    assert "ndcg@10" in space("sequential").describe()


def test_space_and_candidates_pickle():
    s = space("sequential", max_epochs=4)
    clone = pickle.loads(pickle.dumps(s))
    assert clone.reference().model_dump() == s.reference().model_dump()
    assert clone.schema() == s.schema()
    assert pickle.loads(pickle.dumps(s.reference())) == s.reference()


def test_evaluate_trains_the_chosen_family():
    s = space(max_epochs=1, threads=1)
    reports = []
    candidate = s.validate({"model": "fm", "embedding_dim": 4})
    metrics = s.evaluate(candidate, s.suite()[0], reports.append)
    assert {"auc", "logloss", "params", "embedding_params", "train_seconds", "latency_ms_per_1k",
            "valid_auc"} <= set(metrics)
    assert 0.0 <= metrics["auc"] <= 1.0
    assert len(reports) == 1 and "valid_auc" in reports[0]
    json.dumps(metrics)


def test_describe_tells_the_llm_the_weights_and_split_the_fitness_uses():
    for task in ("ctr", "sequential"):
        s = space(task)
        text = s.describe()
        for objective in s.objectives:
            assert objective.name in text and f"weight {objective.weight:g}" in text
        assert "validation split" in text and "test split" not in text
