"""BM3 on the text modality: the graph, the bootstrap losses (no negatives, stop-gradient
targets), order-free scoring, bad input, and that it learns on ML-100K."""

from __future__ import annotations

import json
import math

import pydantic
import pytest
import torch
from typer.testing import CliRunner

from autorec.cli import app
from autorec.errors import ConfigError, DatasetError
from autorec.models.sequential.bm3 import BM3, TEXT_DIM, bootstrap_loss, normalised_adjacency

NUM_ITEMS = 10
TRAIN = [torch.tensor([1, 2, 3, 2]), torch.tensor([2, 4]), torch.tensor([5, 6, 7, 1])]


def build(**config) -> BM3:
    torch.manual_seed(0)
    model = BM3(NUM_ITEMS, 6, BM3.Config(hidden_dim=8, **config))
    model.set_graph(TRAIN)
    text = torch.nn.functional.normalize(torch.randn(NUM_ITEMS + 1, TEXT_DIM), dim=-1)
    model.set_text_vectors(text)
    return model


def test_graph_is_the_symmetric_normalised_user_item_adjacency():
    dense = normalised_adjacency(TRAIN, NUM_ITEMS).to_dense()
    users = len(TRAIN)
    assert dense.shape == (users + NUM_ITEMS + 1,) * 2
    assert torch.equal(dense, dense.T)
    # User 0 has items {1, 2, 3} (item 2 twice counts once); item 2 has users {0, 1}.
    assert math.isclose(dense[0, users + 2].item(), 1 / math.sqrt(3 * 2), rel_tol=1e-6)
    assert math.isclose(dense[1, users + 4].item(), 1 / math.sqrt(2 * 1), rel_tol=1e-6)
    assert dense[0, users + 4].item() == 0.0  # no edge
    assert dense[:, users].abs().sum() == 0  # padding item 0 is isolated
    assert dense[:users, :users].abs().sum() == 0 and dense[users:, users:].abs().sum() == 0


INPUTS = torch.tensor([[0, 0, 1, 2, 3, 2], [0, 0, 0, 0, 2, 4]])
TARGETS = torch.tensor([[0, 0, 2, 3, 2, 5], [0, 0, 0, 0, 4, 6]])


def test_loss_has_no_negatives():
    """Only items of the batch get a gradient on their final graph embeddings: no item is pushed
    away as a negative (a softmax or BPR loss moves every item, or sampled ones)."""
    model = build(dropout=0.0)
    model.train()
    captured = {}
    propagate = model.propagate

    def keep_grad():
        users, items = propagate()
        items.retain_grad()
        captured["items"] = items
        return users, items

    model.propagate = keep_grad
    model.loss(INPUTS, TARGETS).backward()
    grad = captured["items"].grad.abs().sum(dim=1)
    in_batch = set(INPUTS.unique().tolist() + TARGETS.unique().tolist()) - {0}
    for item in range(NUM_ITEMS + 1):
        assert (grad[item] > 0) == (item in in_batch), item


def test_target_views_get_no_gradient():
    """The loss's gradient is what it would be if the targets were constants: the targets are
    stop-gradient copies. Replacing them by fresh leaves gives the same parameter gradients."""
    model = build(dropout=0.3)
    model.train()
    torch.manual_seed(1)
    views = model.views(INPUTS, TARGETS)
    for target in (views.target_user, views.target_item, views.target_text):
        assert not target.requires_grad
    for online in (views.online_user, views.online_item, views.online_text):
        assert online.requires_grad
    params = [p for p in model.parameters() if p.requires_grad]
    as_built = torch.autograd.grad(bootstrap_loss(views, 1.0), params, retain_graph=True,
                                   allow_unused=True)  # fmt: skip
    leaves = {name: getattr(views, name).clone().requires_grad_()
              for name in ("target_user", "target_item", "target_text")}  # fmt: skip
    for name, leaf in leaves.items():
        setattr(views, name, leaf)
    constant_targets = torch.autograd.grad(bootstrap_loss(views, 1.0), params, allow_unused=True)
    for a, b in zip(as_built, constant_targets):
        assert (a is None and b is None) or torch.allclose(a, b)
    # Dropout made the target views: they differ from the online latents they copy.
    assert not torch.allclose(views.target_item, views.item)


def test_loss_is_finite_and_trains():
    model = build()
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model.loss(INPUTS, TARGETS)
        first = loss.item() if first is None else first
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert math.isfinite(loss.item()) and loss.item() < first
    empty = model.loss(INPUTS, torch.zeros_like(TARGETS))
    empty.backward()
    assert empty.item() == 0.0


def test_scores_ignore_order_and_padding():
    model = build().eval()
    history = torch.tensor([[0, 0, 0, 3, 1, 2], [0, 0, 2, 3, 1, 1], [0, 0, 0, 0, 0, 4]])
    shuffled = torch.tensor([[0, 0, 0, 1, 2, 3], [2, 1, 1, 0, 3, 0], [0, 4, 0, 0, 0, 0]])
    logits = model.score(history)
    assert logits.shape == (3, NUM_ITEMS + 1)
    assert torch.isneginf(logits[:, 0]).all() and torch.isfinite(logits[:, 1:]).all()
    assert torch.allclose(logits, model.score(shuffled), atol=1e-5)
    # The user is the mean of the history's item latents: {1, 1, 2, 3} is not {1, 2, 3}.
    assert not torch.allclose(logits[0], logits[1])


@pytest.mark.parametrize(
    "bad", [{"layers": -1}, {"dropout": 1.0}, {"reg_weight": -1}, {"hidden_dim": 2},
            {"num_heads": 2}]  # fmt: skip
)
def test_bad_knobs_are_one_line_config_errors(bad):
    from autorec.trainer import split_settings

    with pytest.raises(ConfigError) as err:
        split_settings("bm3", bad, "sequential")
    assert "\n" not in str(err.value)
    with pytest.raises(pydantic.ValidationError):
        BM3.Config(**bad)


def test_bad_inputs_are_refused():
    model = BM3(NUM_ITEMS, 6)
    with pytest.raises(ConfigError, match="text vectors"):
        model.set_text_vectors(torch.zeros(NUM_ITEMS, TEXT_DIM))
    with pytest.raises(ConfigError, match="built for 10 items"):
        model.set_graph([torch.tensor([1, 11])])
    from autorec.data import load_dataset

    data = load_dataset("synthetic").task("sequential")
    with pytest.raises(DatasetError, match="needs item text"):
        BM3(data.num_items, data.max_len).prepare(data)


@pytest.mark.slow
def test_trains_from_the_cli_on_ml100k_and_beats_random_ranking():
    result = CliRunner().invoke(app, ["train", "--model", "bm3", "--dataset", "ml-100k", "--json",
                                      "--set", "epochs=5", "--set", "threads=1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    # Random ranking of 1,682 items scores NDCG@10 of about 0.003.
    assert trained["valid_metrics"]["ndcg@10"] > 0.02
    assert trained["params"] > 0
