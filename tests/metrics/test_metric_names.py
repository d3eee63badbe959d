"""`metric_names`: what the trainer will emit, per task and dataset, and its refusals."""

import pytest

from autorec.errors import ConfigError
from autorec.metrics_extra import families_of, family_of, metric_names


def test_movielens_features_give_every_metric():
    features = ["user_id", "item_id", "age", "gender", "occupation", "genres"]
    ctr = metric_names("ctr", features)
    assert {"diversity.intra_list", "fairness.auc_gap_gender", "fairness.auc_gap_age",
            "fairness.gender_leakage", "cold_user.auc", "cold_item.auc"} <= set(ctr)
    sequential = metric_names("sequential", features)
    assert {"fairness.hr_gap_gender", "cold_item.ndcg@10", "diversity.genre_coverage"} <= set(
        sequential)
    assert not any(n.startswith("cold_user.") or "auc" in n for n in sequential)


def test_missing_attributes_leave_their_metrics_out():
    names = metric_names("ctr", ["user_id", "item_id", "city"])
    assert not any(n.startswith("fairness.") for n in names)
    assert "diversity.genre_coverage" not in names
    assert "diversity.catalog_coverage" in names and "cold_item.auc" in names


def test_split_is_read_from_ctr_data(tiny_ctr):
    assert "cold_user.auc" in metric_names("ctr", tiny_ctr("global_time"))
    assert "cold_user.auc" not in metric_names("ctr", tiny_ctr("user_time"))
    assert "cold_item.auc" in metric_names("ctr", tiny_ctr("user_time"))


def test_families_narrow_the_list():
    names = metric_names("ctr", ["genres"], families=["diversity"])
    assert names and all(n.startswith("diversity.") for n in names)


def test_bad_task_or_family_is_one_line():
    with pytest.raises(ConfigError, match="unknown task"):
        metric_names("ranking", [])
    with pytest.raises(ConfigError, match="unknown extra metric family novelty"):
        metric_names("ctr", [], families=["novelty"])


def test_families_of_names():
    assert family_of("valid_fairness.auc_gap_gender") == "fairness"
    assert family_of("cold_user.auc") == "cold_start"
    assert family_of("auc") is None and family_of("ndcg@10") is None
    assert families_of(["valid_auc", "valid_cold_item.auc", "diversity.intra_list"]) == [
        "diversity", "cold_start"]
