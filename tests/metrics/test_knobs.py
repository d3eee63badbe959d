"""The knobs move their metric the expected way, through the trainer, on small planted data."""

import pytest

from autorec.metrics_extra import metric_names
from autorec.trainer import train_model

ALL = ["diversity", "fairness", "cold_start"]


def _test(name, data, **settings):
    return train_model(name, data, settings).metrics


def test_mmr_weight_raises_intra_list_diversity(genre_sequences):
    plain = _test("popularity", genre_sequences, extra_metrics=["diversity"])
    mmr = _test("popularity", genre_sequences, extra_metrics=["diversity"], rerank_mmr_weight=0.7)
    assert mmr["diversity.intra_list"] > plain["diversity.intra_list"] + 0.03
    assert mmr["diversity.genres_per_list"] > plain["diversity.genres_per_list"]


def test_target_genres_sets_the_genres_per_list(genre_sequences):
    # One genre per item, ten items per genre: 2..6 genres are reachable exactly (a user has
    # seen some items of every genre, so 10 unseen items of one genre are not).
    plain = _test("popularity", genre_sequences, extra_metrics=["diversity"])
    assert 2 < plain["diversity.genres_per_list"] < 3
    for target in (2, 4, 6):
        metrics = _test("popularity", genre_sequences, extra_metrics=["diversity"],
                        rerank_target_genres=target)
        assert metrics["diversity.genres_per_list"] == pytest.approx(target)
    fewest = _test("popularity", genre_sequences, extra_metrics=["diversity"],
                   rerank_target_genres=1)
    assert fewest["diversity.genres_per_list"] == pytest.approx(2)  # as close as it gets


def test_reranking_changes_hr_only_through_the_list(genre_sequences):
    plain = train_model("popularity", genre_sequences, {})
    narrow = train_model("popularity", genre_sequences, {"rerank_target_genres": 1})
    assert narrow.metrics["hr@10"] != plain.metrics["hr@10"]
    # The unfiltered variants stay the model's own ranking.
    assert narrow.metrics["hr@10_unfiltered"] == plain.metrics["hr@10_unfiltered"]


def test_sequential_emits_exactly_the_named_metrics_on_both_splits(genre_sequences):
    result = train_model("popularity", genre_sequences, {"extra_metrics": ALL})
    expected = set(metric_names("sequential", genre_sequences))
    base = {"hr@10", "ndcg@10", "mrr@10", "hr@10_unfiltered", "ndcg@10_unfiltered",
            "mrr@10_unfiltered"}
    assert set(result.metrics) - base == expected
    assert set(result.valid_metrics) - base == expected
    assert "fairness.hr_gap_gender" in expected and "fairness.gender_leakage" in expected


def test_orthogonality_removes_planted_gender_leakage(planted_ctr):
    settings = dict(epochs=8, embedding_dim=8, batch_size=256, lr=0.01, extra_metrics=["fairness"])
    plain = _test("fm", planted_ctr, **settings)
    fair = _test("fm", planted_ctr, fair_orthogonality_weight=5.0, **settings)
    assert plain["fairness.gender_leakage"] > 0.95  # the embedding learned gender
    assert fair["fairness.gender_leakage"] < plain["fairness.gender_leakage"] - 0.2
    assert fair["auc"] < plain["auc"]  # what it costs: gender was the signal


def test_the_adversary_removes_planted_gender_leakage(planted_ctr):
    settings = dict(epochs=8, embedding_dim=8, batch_size=256, lr=0.01, extra_metrics=["fairness"])
    plain = _test("fm", planted_ctr, **settings)
    fair = _test("fm", planted_ctr, fair_adversary_weight=10.0, **settings)
    assert fair["fairness.gender_leakage"] < plain["fairness.gender_leakage"] - 0.2
    assert fair["auc"] < plain["auc"]


def test_the_fairness_head_is_gone_after_training(planted_ctr):
    settings = dict(epochs=1, embedding_dim=8, fair_adversary_weight=1.0,
                    fair_orthogonality_weight=1.0)
    result = train_model("fm", planted_ctr, settings)
    plain = train_model("fm", planted_ctr, {"epochs": 1, "embedding_dim": 8})
    assert result.params == plain.params
    assert not any("fairness_head" in key for key in result.module.state_dict())


def test_a_trained_model_is_rescored_under_another_reranker(genre_sequences):
    from autorec.trainer import evaluate_trained

    trained = train_model("popularity", genre_sequences, {"extra_metrics": ["diversity"]})
    same = evaluate_trained(trained.module, genre_sequences, {"extra_metrics": ["diversity"]})
    assert same["test"] == trained.metrics and same["valid"] == trained.valid_metrics
    wide = evaluate_trained(trained.module, genre_sequences,
                            {"extra_metrics": ["diversity"], "rerank_target_genres": 6})
    assert wide["test"]["diversity.genres_per_list"] == pytest.approx(6)
