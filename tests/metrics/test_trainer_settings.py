"""The beyond-accuracy settings of the trainer: where they apply, and one-line refusals."""

import dataclasses
import math

import pytest

from autorec.errors import ConfigError
from autorec.metrics_extra import metric_names
from autorec.trainer import split_settings, train_model


def test_no_extra_metrics_unless_asked(genre_sequences):
    result = train_model("popularity", genre_sequences, {})
    assert not any("." in name for name in result.metrics)


@pytest.mark.parametrize(
    ("model", "settings", "message"),
    [
        ("fm", {"rerank_mmr_weight": 0.5}, "apply to sequential models"),
        ("sasrec", {"fair_adversary_weight": 1.0}, "apply to ctr models"),
        ("sasrec", {"rerank_mmr_weight": 0.5, "rerank_target_genres": 3}, "set one"),
        ("fm", {"extra_metrics": ["novelty"]}, "extra_metrics"),
        ("fm", {"fair_attribute": "zip"}, "not one of gender, age"),
        ("fm", {"rerank_mmr_weight": 1.5}, "rerank_mmr_weight"),
    ],
)
def test_bad_settings_are_one_line(model, settings, message, planted_ctr, genre_sequences):
    data = planted_ctr if model == "fm" else genre_sequences
    with pytest.raises(ConfigError, match=message) as info:
        split_settings(model, settings, "ctr" if model == "fm" else "sequential")
        train_model(model, data, {"epochs": 1, **settings})
    assert "\n" not in str(info.value)


def test_reranking_needs_item_genres(genre_sequences):
    bare = dataclasses.replace(genre_sequences, item_genres=None)
    with pytest.raises(ConfigError, match="no multi_hot 'genres' item column"):
        train_model("popularity", bare, {"rerank_target_genres": 3})


def test_fairness_knobs_need_the_attribute_and_a_user_embedding(planted_ctr):
    bare = dataclasses.replace(planted_ctr, user_groups={})
    with pytest.raises(ConfigError, match="need a user attribute 'gender'"):
        train_model("fm", bare, {"epochs": 1, "fair_orthogonality_weight": 1.0})
    with pytest.raises(ConfigError, match="need a model with a user_id embedding"):
        train_model("mean", planted_ctr, {"fair_orthogonality_weight": 1.0})


def test_movielens_global_time_emits_every_named_metric():
    from autorec.data import load_dataset

    data = load_dataset("ml-100k").task("ctr", split="global_time")
    result = train_model("fm", data, {"epochs": 1, "extra_metrics": ["diversity", "fairness",
                                                                      "cold_start"]})
    expected = set(metric_names("ctr", data))
    assert set(result.metrics) - {"auc", "logloss"} == expected
    assert set(result.valid_metrics) - {"auc", "logloss"} == expected
    # The figure: most test rows of the global-time split are cold users.
    assert 0.8 < result.metrics["cold_user.share"] < 0.9
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert result.metrics["diversity.genres_per_list"] > 1
