"""Clustering, routing and the three stages end to end; the synthetic data's planted fields."""

from __future__ import annotations

import pytest
import torch

from autorec.data import load_dataset
from autorec.errors import ConfigError
from autorec.ihas.cluster import assign, cluster, kmeans, snap_to_ladder, widths_of
from autorec.ihas.gated_embedding import install_gates
from autorec.ihas.gates import GateLayout
from autorec.ihas.pipeline import run_ihas
from autorec.ihas.router import Router, score
from autorec.ihas.search import gate_probabilities, run_search
from autorec.ihas.settings import GateSettings, ihas_settings
from autorec.models import model_class

# Gates that barely move from a neutral start keep instance-wise variety: many patterns.
VARIED = {"search_epochs": 1, "retrain_epochs": 2, "open_bias": 0.0, "gate_step": 1e-4,
          "width": 8, "batch_size": 256, "lr": 0.01, "min_group_rows": 50}  # fmt: skip


def _two_patterns(rows: int = 60) -> tuple[torch.Tensor, GateLayout]:
    layout = GateLayout({"a": 4, "b": 2})  # gates: a = 1, 1, 2; b = 1, 1
    wide = torch.tensor([0.9, 0.9, 0.8, 0.9, 0.7])
    narrow = torch.tensor([0.9, 0.3, 0.1, 0.8, 0.1])
    noise = torch.rand(rows, 5, generator=torch.Generator().manual_seed(0)) * 0.05
    probabilities = torch.cat([wide.repeat(rows // 2, 1), narrow.repeat(rows // 2, 1)]) + noise
    return probabilities.clamp(0, 1), layout


def test_kmeans_finds_two_planted_groups_and_their_widths():
    probabilities, layout = _two_patterns()
    found = cluster(probabilities, layout, 2, seed=0)
    assert found.distinct_patterns == 2
    first, second = found.assignment[:30], found.assignment[30:]
    assert len(first.unique()) == 1 and len(second.unique()) == 1 and first[0] != second[0]
    by_group = {int(first[0]): {"a": 4, "b": 2}, int(second[0]): {"a": 1, "b": 1}}
    assert found.dims == [by_group[0], by_group[1]]
    assert torch.equal(assign(probabilities, found.centroids), found.assignment)


def test_one_group_is_the_mean_pattern_and_too_many_groups_are_refused():
    probabilities, layout = _two_patterns()
    # Mean keep-probabilities: a = 0.9, 0.6, 0.45 (+ noise); b = 0.85, 0.4.
    assert cluster(probabilities, layout, 1).dims == [{"a": 2, "b": 1}]
    with pytest.raises(ConfigError, match="3 groups asked for.*only 2 distinct pattern"):
        cluster(probabilities, layout, 3)
    with pytest.raises(ConfigError, match="at least 1"):
        cluster(probabilities, layout, 0)
    with pytest.raises(ConfigError, match="fewer than min_group_rows=31"):
        cluster(probabilities, layout, 2, min_rows=31)


def test_widths_snap_up_to_the_embedding_dims_ladder():
    assert [snap_to_ladder(w) for w in (0, 1, 3, 5, 16, 17, 100)] == [1, 1, 4, 8, 16, 32, 64]
    layout = GateLayout({"a": 32})  # blocks 1, 1, 2, 4, 8, 16
    assert widths_of(torch.tensor([1.0, 0, 1, 0, 1, 0]), layout) == {"a": 16}  # 11 kept
    assert widths_of(torch.zeros(6), layout) == {"a": 1}


def test_kmeans_is_seeded():
    points = torch.rand(200, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(kmeans(points, 3, seed=5)[1], kmeans(points, 3, seed=5)[1])


def test_the_router_gives_each_row_its_own_group_models_prediction(planted):
    search = model_class("deepfm")(planted.features, {"embedding_dim": 8})
    install_gates(search, GateSettings(open_bias=0.0))
    search.eval()
    probabilities = gate_probabilities(search, planted.train)
    centroids, _ = kmeans(probabilities, 2, seed=0)
    models = [
        model_class("fm")(planted.features, {"field_dims": {"user_id": 2}}).eval(),
        model_class("fm")(planted.features, {"embedding_dim": 4}).eval(),
    ]
    torch.nn.init.normal_(models[1].embedding.tables["item_id"].weight, std=0.3)
    router = Router(search, centroids, models)
    batch = planted.test.batch(slice(None))
    groups = router.group_of(batch)
    assert set(groups.tolist()) == {0, 1}, "both groups get rows"
    with torch.no_grad():
        routed = router(batch)
        for group, model in enumerate(models):
            rows = groups == group
            assert torch.allclose(routed[rows], model(batch)[rows])
            assert not torch.allclose(routed[~rows], model(batch)[~rows])
    assert router.routing_params() > 0
    assert Router(None, centroids[:1], models[:1]).routing_params() == 0


def test_three_stages_with_two_groups_end_to_end(planted):
    run = run_ihas("deepfm", planted, 2, ihas_settings(VARIED))
    report = run.report
    assert len(report["group_list"]) == 2 and report["search"]["distinct_patterns"] >= 2
    for split in ("train", "valid", "test"):
        total = sum(g["rows"][split] for g in report["group_list"])
        assert total == len(getattr(planted, split))
    fields = ["user_id", "item_id", "noise", "genres", "price"]
    for dims in [report["global_dims"], *(g["dims"] for g in report["group_list"])]:
        assert list(dims) == fields and all(d in (1, 2, 4, 8, 16, 32, 64) for d in dims.values())
    routed = report["routed"]
    assert routed["valid_auc"] == pytest.approx(score(run.router, planted.valid)["auc"])
    assert 0.5 < routed["valid_auc"] <= 1 and 0.5 < routed["auc"] <= 1
    assert routed["router_params"] > 0
    assert routed["embedding_params"] == sum(r.embedding_params for r in run.group_results)


def test_too_many_groups_for_the_patterns_is_one_clear_error(planted):
    settings = ihas_settings({**VARIED, "gate_step": 0.5, "open_bias": 9.0, "search_epochs": 1})
    with pytest.raises(ConfigError, match=r"distinct pattern\(s\) on the training rows"):
        run_ihas("fm", planted, 500, settings)


def test_gates_narrow_the_synthetic_noise_fields_more_than_the_planted_useful_ones():
    dataset = load_dataset("synthetic")
    data = dataset.task("ctr")
    settings = ihas_settings({"lr": 0.005, "search_epochs": 6, "seed": 0})
    outcome = run_search("fm", data, settings)
    layout = outcome.gates.layout
    probabilities = gate_probabilities(outcome.model, data.train)
    kept = layout.kept_widths(layout.deterministic(probabilities)).mean(dim=0)
    widths = dict(zip(layout.fields, kept.tolist()))
    useful = [widths[f] for f in dataset.useful_fields]
    noise = [widths[f] for f in dataset.noise_fields]
    assert sum(noise) / len(noise) < sum(useful) / len(useful) - 8, widths
    # The noise fields with the largest vocabularies, where a width costs most, go narrowest.
    assert max(widths[f] for f in ("f0", "f2", "f7")) < min(useful), widths
