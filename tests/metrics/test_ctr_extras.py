"""CTR beyond-accuracy metrics of one split, on a hand-made table with known answers."""

import math

import pytest
import torch
from torch import nn

from autorec.beyond_accuracy.evaluate import ctr_extras, ctr_user_lists
from autorec.data.attributes import ctr_item_genres, ctr_user_groups


def test_user_lists_take_each_users_best_rows():
    users = torch.tensor([2, 1, 1, 2, 1])
    items = torch.tensor([10, 11, 12, 13, 14])
    scores = torch.tensor([0.1, 0.5, 0.9, 0.7, 0.5])  # user 1 ties 11 and 14: row order wins
    assert ctr_user_lists(users, items, scores, k=2).tolist() == [[12, 11], [13, 10]]
    assert ctr_user_lists(users, items, scores, k=4).tolist() == [[12, 11, 14, 0], [13, 10, 0, 0]]


def test_side_tables_come_from_the_columns(tiny_ctr):
    data = tiny_ctr()
    genres = ctr_item_genres(data)
    assert genres.shape == (6, 3)
    assert genres[2].tolist() == [True, True, False] and not genres[0].any()
    assert ctr_user_groups(data, "gender").tolist() == [0, 1, 2, 1, 0]
    assert ctr_user_groups(data, "occupation") is None


def test_cold_subsets_and_diversity_of_the_test_split(tiny_ctr):
    data = tiny_ctr()
    # Scores follow the labels inside each subset, except cold item row 3 (label 0) beats row 2.
    logits = torch.tensor([2.0, -2.0, 1.0, 1.5, 3.0, -3.0, 0.5])
    out = ctr_extras(data, "test", logits, nn.Module(), ["diversity", "cold_start"])
    # Cold users: rows 4, 5, 6 (user 3): labels 1, 0, 1 ranked perfectly.
    assert out["cold_user.auc"] == 1.0 and out["cold_user.share"] == pytest.approx(3 / 7)
    # Cold items: rows 2, 3, 5 (items 4, 5, 4): labels 1, 0, 0 with scores 1.0, 1.5, -3.0.
    assert out["cold_item.auc"] == pytest.approx(0.5)
    assert out["cold_item.share"] == pytest.approx(3 / 7)
    # Top-10 lists: user 1 [1 (A), 2 (A B)], user 2 [5 (A), 4 (C)], user 3 [1, 2, 4].
    assert out["diversity.genres_per_list"] == pytest.approx((2 + 2 + 3) / 3)
    assert out["diversity.genre_coverage"] == pytest.approx((2 + 2 + 3) / 9)
    assert out["diversity.catalog_coverage"] == pytest.approx(4 / 5)
    ild = [0.5, 1.0, (0.5 + 1.0 + 1.0) / 3]  # Jaccard distances within each list
    assert out["diversity.intra_list"] == pytest.approx(sum(ild) / 3)


def test_user_time_split_has_no_cold_user_metrics(tiny_ctr):
    out = ctr_extras(tiny_ctr("user_time"), "test", torch.zeros(7), nn.Module(), ["cold_start"])
    assert not any(name.startswith("cold_user.") for name in out)


def test_fairness_gap_needs_large_groups_and_leakage_needs_a_user_embedding(tiny_ctr):
    data = tiny_ctr()
    out = ctr_extras(data, "test", torch.zeros(7), nn.Module(), ["fairness"])
    assert math.isnan(out["fairness.auc_gap_gender"])  # groups far below 100 rows
    assert math.isnan(out["fairness.gender_leakage"])  # nn.Module has no user_id table
