"""The gates: block layout, the straight-through relaxed-Bernoulli estimator, the regularisers,
and what they do to a model on a tiny planted problem."""

from __future__ import annotations

import pytest
import torch

from autorec.errors import ConfigError
from autorec.ihas.gated_embedding import GateSchedule, find_gates, install_gates
from autorec.ihas.gates import (
    GateLayout,
    block_sizes,
    polarisation_penalty,
    relaxed_bernoulli,
    sparsity_penalty,
)
from autorec.ihas.search import gate_probabilities, run_search
from autorec.ihas.settings import GateSettings, ihas_settings
from autorec.models import model_class

TINY = {"lr": 0.01, "batch_size": 128, "search_epochs": 6, "width": 8, "seed": 0}


@pytest.mark.parametrize("width", [1, 2, 5, 8, 16, 32, 24])
def test_blocks_double_and_cover_the_width(width):
    sizes = block_sizes(width)
    assert sum(sizes) == width and sizes[0] == 1
    assert all(size <= sum(sizes[:i]) for i, size in enumerate(sizes) if i)


def test_layout_expands_gates_to_dimensions_and_counts_kept_widths():
    layout = GateLayout({"a": 8, "b": 4})
    assert layout.gates == 4 + 3
    gates = torch.tensor([[1.0, 0, 1, 0, 1, 1, 0], [0, 0, 0, 1, 0, 0, 1]])
    assert layout.expand(gates, "a")[0].tolist() == [1, 0, 1, 1, 0, 0, 0, 0]
    assert layout.expand(gates, "b")[1].tolist() == [0, 0, 1, 1]
    assert layout.kept_widths(gates).tolist() == [[3, 2], [4, 2]]


def test_deterministic_gates_keep_the_likeliest_block_of_a_field_that_would_lose_all():
    layout = GateLayout({"a": 4, "b": 2})
    probabilities = torch.tensor([[0.1, 0.4, 0.2, 0.9, 0.8], [0.6, 0.7, 0.9, 0.2, 0.3]])
    hard = layout.deterministic(probabilities)
    assert hard.tolist() == [[0, 1, 0, 1, 1], [1, 1, 1, 0, 1]]


def test_relaxed_bernoulli_is_hard_forward_unbiased_and_differentiable():
    torch.manual_seed(0)
    probabilities = torch.tensor([0.1, 0.5, 0.9])
    logits = torch.logit(probabilities).repeat(20000, 1).requires_grad_()
    samples = relaxed_bernoulli(logits, temperature=0.5)
    values = samples.detach()
    assert torch.minimum(values, 1 - values).abs().max() < 1e-6, "every gate is 0 or 1"
    assert torch.allclose(samples.detach().mean(0), probabilities, atol=0.02)
    samples.sum().backward()
    assert (logits.grad >= 0).all() and (logits.grad.sum(0) > 1.0).all(), (
        "raising a logit raises the gate"
    )


def test_sparsity_weighs_blocks_by_size_and_polarisation_vanishes_at_zero_and_one():
    layout = GateLayout({"a": 4})  # blocks 1, 1, 2
    open_all = torch.ones(1, 3)
    assert sparsity_penalty(open_all, layout) == pytest.approx(1.0)
    assert sparsity_penalty(torch.tensor([[1.0, 1.0, 0.0]]), layout) == pytest.approx(0.5)
    two = GateLayout({"a": 4, "b": 2})  # a: 1, 1, 2; b: 1, 1
    half_a = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]])
    assert sparsity_penalty(half_a, two) == pytest.approx(0.75)
    by_rows = torch.tensor([0.9, 0.1])  # a's table has 9x b's rows
    assert sparsity_penalty(half_a, two, by_rows) == pytest.approx(0.9 * 0.5 + 0.1)
    assert polarisation_penalty(torch.tensor([[0.0, 1.0]])) == 0
    assert polarisation_penalty(torch.tensor([[0.5, 0.5]])) == pytest.approx(1.0)
    assert polarisation_penalty(torch.tensor([[0.9]])) < polarisation_penalty(torch.tensor([[0.7]]))


def test_schedule_anneals_temperature_and_ramps_the_regularisers(planted):
    settings = GateSettings(temperature=1.0, final_temperature=0.1, sparsity=0.2, polarisation=0.4)
    model = model_class("deepfm")(planted.features, {"embedding_dim": 8})
    gates = install_gates(model, settings)
    schedule = GateSchedule(settings, epochs=5)
    seen = []
    for epoch in range(1, 6):
        schedule(epoch, model)
        seen.append((gates.temperature, gates.sparsity_weight, gates.polarisation_weight))
    assert seen[0] == (1.0, 0.0, 0.0)
    assert seen[-1] == pytest.approx((0.1, 0.2, 0.4))
    assert [t for t, _, _ in seen] == sorted((t for t, _, _ in seen), reverse=True)
    assert seen[2][1] == pytest.approx(0.2), "sparsity reaches its weight halfway"


def _mean_kept(planted, **overrides) -> dict[str, float]:
    outcome = run_search("deepfm", planted, ihas_settings({**TINY, **overrides}))
    probabilities = gate_probabilities(outcome.model, planted.train)
    layout = outcome.gates.layout
    kept = layout.kept_widths(layout.deterministic(probabilities))
    return {name: float(kept[:, i].mean()) for i, name in enumerate(layout.fields)}


def test_a_stronger_sparsity_keeps_fewer_dimensions(planted):
    free = _mean_kept(planted, sparsity=0.0, polarisation=0.0)
    sparse = _mean_kept(planted, sparsity=0.5)
    sparser = _mean_kept(planted, sparsity=2.0)
    assert sum(free.values()) > sum(sparse.values()) + 8 > sum(sparser.values()) + 8


def test_a_sparsity_that_would_prune_everything_still_keeps_a_block_per_field(planted):
    outcome = run_search("fm", planted, ihas_settings({**TINY, "sparsity": 100.0}))
    probabilities = gate_probabilities(outcome.model, planted.valid)
    layout = outcome.gates.layout
    kept = layout.kept_widths(layout.deterministic(probabilities))
    assert (kept >= 1).all()
    assert float(probabilities.mean()) < 0.5, "the penalty did push the gates shut"


@pytest.mark.parametrize("name", ["fm", "deepfm", "dcnv2", "din", "dare"])
def test_every_ctr_model_trains_gated_and_open_gates_change_nothing(planted, name):
    model = model_class(name)(planted.features, {"embedding_dim": 8})
    model.eval()
    batch = planted.valid.batch(slice(0, 64))
    before = model(batch)
    gates = install_gates(model, GateSettings(open_bias=9.0))
    assert find_gates(model) is gates
    assert torch.allclose(model(batch), before, atol=1e-6), "all gates open = the plain model"
    model.train()
    model(batch).sum().backward()
    penalty = gates.extra_loss()
    assert penalty.requires_grad
    assert all(t.weight.grad is not None for t in gates.tables.values() if t.weight.requires_grad)


@pytest.mark.parametrize("name", ["lr", "mean"])
def test_models_without_field_embeddings_are_refused(planted, name):
    model = model_class(name)(planted.features, {})
    with pytest.raises(ConfigError, match="no field embeddings to gate"):
        install_gates(model, GateSettings())
