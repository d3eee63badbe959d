"""Sequential next-item models: the interface contract, masking, and that they learn."""

from __future__ import annotations

import math

import pydantic
import pytest
import torch

from autorec.data.features import SequentialData, pad_left
from autorec.errors import ConfigError
from autorec.models import model_class, model_names
from autorec.models.sequential.hstu import relative_position_buckets

NUM_ITEMS = 50
ATTENTION = ["sasrec", "hstu"]


def successor(item: int) -> int:
    """A permutation of 1..NUM_ITEMS: the planted 'next item' rule."""
    return (item * 7 + 3) % NUM_ITEMS + 1


def synthetic_data(num_users: int = 200, max_len: int = 20, noise: float = 0.1, seed: int = 0):
    """Sequences that mostly follow `successor`; item popularity is close to uniform."""
    g = torch.Generator().manual_seed(seed)
    sequences = []
    for _ in range(num_users):
        length = int(torch.randint(8, 26, (1,), generator=g))
        seq = [int(torch.randint(1, NUM_ITEMS + 1, (1,), generator=g))]
        while len(seq) < length:
            if float(torch.rand(1, generator=g)) < noise:
                seq.append(int(torch.randint(1, NUM_ITEMS + 1, (1,), generator=g)))
            else:
                seq.append(successor(seq[-1]))
        sequences.append(seq)
    train = [s[:-2] for s in sequences]
    before_test = [s[:-1] for s in sequences]
    return SequentialData(
        dataset="successor",
        num_items=NUM_ITEMS,
        max_len=max_len,
        train=[torch.tensor(s) for s in train],
        valid_history=pad_left(train, max_len),
        valid_target=torch.tensor([s[-2] for s in sequences]),
        valid_seen=[torch.tensor(s) for s in train],
        test_history=pad_left(before_test, max_len),
        test_target=torch.tensor([s[-1] for s in sequences]),
        test_seen=[torch.tensor(s) for s in before_test],
        protocol={"name": "leave_one_out", "rule": "successor"},
        split_hash="synthetic",
    )


def build(name: str, max_len: int = 12, **config):
    cls = model_class(name)
    torch.manual_seed(0)
    model = cls(NUM_ITEMS, max_len, cls.Config(**config))
    model.eval()
    return model


def small(name: str) -> dict:
    return {"hidden_dim": 16} if name in ATTENTION else {}


def test_registry_serves_all_three():
    assert {"popularity", "sasrec", "hstu"} <= set(model_names("sequential"))
    for name in ("popularity", "sasrec", "hstu"):
        assert model_class(name).name == name
    assert model_class("popularity").trainable is False
    assert model_class("sasrec").trainable and model_class("hstu").trainable


@pytest.mark.parametrize("name", ["popularity", *ATTENTION])
def test_shapes_and_padding_column(name):
    model = build(name, **small(name))
    model.prepare(synthetic_data(num_users=20))
    history = torch.tensor([[0, 0, 0, 4, 9, 2], [0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    logits = model.score(history)
    assert logits.shape == (3, NUM_ITEMS + 1)
    assert torch.isneginf(logits[:, 0]).all()
    assert torch.isfinite(logits[:, 1:]).all()
    targets = torch.tensor([[0, 0, 0, 9, 2, 7], [0, 0, 0, 0, 0, 0], [2, 3, 4, 5, 6, 7]])
    loss = model.loss(history, targets)
    assert loss.dim() == 0 and math.isfinite(loss.item())


@pytest.mark.parametrize("name", ATTENTION)
def test_left_padding_changes_nothing(name):
    """Real positions' outputs and the loss are the same however much padding precedes them."""
    model = build(name, max_len=12, **small(name))
    items = [5, 17, 3, 3, 40]
    short = torch.tensor([[0, 0] + items[:-1]])
    long = torch.tensor([[0] * 7 + items[:-1]])
    assert torch.allclose(model.encode(short)[0, -4:], model.encode(long)[0, -4:], atol=1e-5)
    assert torch.allclose(
        model.loss(short, torch.tensor([[0, 0] + items[1:]])),
        model.loss(long, torch.tensor([[0] * 7 + items[1:]])),
        atol=1e-5,
    )
    # An all-padding row beside it changes neither and produces no NaN.
    both = torch.cat([short, torch.zeros_like(short)])
    assert torch.allclose(model.encode(both)[0], model.encode(short)[0], atol=1e-5)
    assert torch.isfinite(model.encode(both)).all()


@pytest.mark.parametrize("name", ATTENTION)
def test_loss_is_mean_over_non_padding_targets(name):
    model = build(name, **small(name))
    inputs = torch.tensor([[0, 0, 8, 1, 4, 4], [0, 3, 9, 22, 7, 1]])
    targets = torch.tensor([[0, 0, 1, 4, 4, 30], [0, 9, 22, 7, 1, 2]])
    real = targets.nonzero().tolist()
    per_position = []
    for row, col in real:
        only = torch.zeros_like(targets)
        only[row, col] = targets[row, col]
        per_position.append(model.loss(inputs, only))
    assert torch.allclose(model.loss(inputs, targets), torch.stack(per_position).mean(), atol=1e-5)
    # With no real target the loss is zero but still differentiable.
    empty = model.loss(inputs, torch.zeros_like(targets))
    empty.backward()
    assert empty.item() == 0.0


@pytest.mark.parametrize("name", ATTENTION)
def test_causal_mask(name):
    """Changing the item at step t leaves every earlier step's output unchanged."""
    model = build(name, **small(name))
    base = torch.tensor([[0, 0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]])
    changed = base.clone()
    changed[0, 7] = 45
    out_base, out_changed = model.encode(base), model.encode(changed)
    assert torch.allclose(out_base[0, :7], out_changed[0, :7], atol=1e-6)
    assert not torch.allclose(out_base[0, 7:], out_changed[0, 7:], atol=1e-4)


@pytest.mark.parametrize("name", ATTENTION)
def test_rejects_sequences_longer_than_max_len(name):
    model = build(name, max_len=6, **small(name))
    with pytest.raises(ValueError, match="max_len"):
        model.score(torch.ones(2, 7, dtype=torch.long))


def test_popularity_counts_training_items():
    data = synthetic_data(num_users=30)
    model = build("popularity")
    assert list(model.parameters()) == []
    model.prepare(data)
    counts = torch.bincount(torch.cat(data.train), minlength=NUM_ITEMS + 1).float()
    counts[0] = 0
    assert torch.equal(model.counts, counts)
    logits = model.score(torch.zeros(4, 12, dtype=torch.long))
    assert torch.equal(logits[0], logits[3])
    assert logits[0, 1:].argmax().item() + 1 == counts.argmax().item()
    restored = build("popularity")
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.counts, counts)
    with pytest.raises(ConfigError, match="items"):
        model_class("popularity")(NUM_ITEMS + 5, 12, None).prepare(data)


def test_relative_position_buckets():
    buckets = relative_position_buckets(50, 32)
    by_distance = buckets[-1].flip(0)  # the last query's bucket for distances 0..49
    assert by_distance[:16].tolist() == list(range(16))
    assert (by_distance.diff() >= 0).all() and by_distance.max().item() == 31
    assert torch.equal(relative_position_buckets(10, 32)[9], torch.arange(9, -1, -1))


@pytest.mark.parametrize(
    "name, bad",
    [
        ("sasrec", {"num_blocks": 2, "typo_heads": 1}),
        ("sasrec", {"num_blocks": 0}),
        ("sasrec", {"dropout": 1.0}),
        ("hstu", {"hidden_dim": 2}),
        ("hstu", {"position_buckets": 1}),
        ("hstu", {"linear_dim": 0}),
        ("popularity", {"num_blocks": 2}),
    ],
)
def test_config_rejects_bad_values(name, bad):
    with pytest.raises(pydantic.ValidationError):
        model_class(name).Config(**bad)


@pytest.mark.parametrize("name", ATTENTION)
def test_heads_must_divide_hidden_dim(name):
    with pytest.raises(pydantic.ValidationError, match="divisible by num_heads"):
        model_class(name).Config(hidden_dim=30, num_heads=4)
    from autorec.trainer import split_settings

    with pytest.raises(ConfigError, match="divisible by num_heads"):
        split_settings(name, {"hidden_dim": 30, "num_heads": 4}, "sequential")


def test_hstu_head_widths_may_be_explicit():
    config = model_class("hstu").Config(hidden_dim=30, num_heads=4, linear_dim=8, attention_dim=6)
    model = model_class("hstu")(NUM_ITEMS, 12, config)
    assert model.score(torch.tensor([[0, 1, 2, 3]])).shape == (1, NUM_ITEMS + 1)


@pytest.fixture(scope="module")
def planted():
    data = synthetic_data()
    from autorec.trainer import train_model

    return data, train_model("popularity", data).metrics["hr@10"], train_model


@pytest.mark.parametrize("name", ATTENTION)
def test_learns_the_planted_successor(planted, name):
    data, popularity_hr, train_model = planted
    result = train_model(
        name,
        data,
        {"hidden_dim": 32, "dropout": 0.1, "lr": 5e-3, "batch_size": 50, "epochs": 25, "patience": 25},
    )
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert popularity_hr < 0.4
    assert result.metrics["hr@10"] > 0.8, (result.metrics, popularity_hr)
