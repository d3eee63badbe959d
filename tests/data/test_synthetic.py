"""synthetic: seeded, fast, and the planted structure is where the benchmarks say it is."""

import time

import numpy as np
import pytest
import torch

from autorec.data import load_dataset, synthetic, tasks
from autorec.errors import ConfigError
from autorec.metrics import auc, ranking_metrics, target_ranks


def test_generation_is_fast_and_shaped_as_documented():
    tasks.clear_cache()
    start = time.perf_counter()
    dataset = load_dataset("synthetic")
    data, sequential = dataset.task("ctr"), dataset.task("sequential")
    assert time.perf_counter() - start < 2.0
    assert [len(data.train), len(data.valid), len(data.test)] == [40_000, 5_000, 5_000]
    assert len(data.features) == 12 and data.protocol["name"] == "random"
    for feature in data.features:
        column = torch.cat([s.columns[feature.name] for s in (data.train, data.valid, data.test)])
        assert column.min() >= 1 and column.max() < feature.vocab_size
    assert max(f.vocab_size for f in data.features) > 1000
    assert 0.3 <= torch.cat([data.train.label, data.test.label]).mean().item() <= 0.5
    assert sequential.num_items == 300 and len(sequential.train) == 800


def test_same_seed_same_data_other_seed_differs():
    first = load_dataset("synthetic").task("ctr")
    tasks.clear_cache()
    again = load_dataset("synthetic:0").task("ctr")
    assert first is not again and first.split_hash == again.split_hash
    for name, column in first.train.columns.items():
        assert torch.equal(column, again.train.columns[name])
    assert torch.equal(first.test.label, again.test.label)
    other = load_dataset("synthetic:seed=1")
    assert other.task("ctr").split_hash != first.split_hash
    assert not torch.equal(other.task("ctr").train.columns["f0"], first.train.columns["f0"])
    sequential = load_dataset("synthetic").task("sequential")
    tasks.clear_cache()
    assert load_dataset("synthetic").task("sequential").split_hash == sequential.split_hash
    assert other.task("sequential").split_hash != sequential.split_hash


def test_planted_ground_truth_is_exposed():
    info = load_dataset("synthetic").info()
    planted = info["planted"]
    assert planted["useful"] == synthetic.SyntheticDataset.useful_fields
    assert sorted(planted["useful"].values()) == [2, 4, 4, 8, 16]
    assert set(planted["useful"]).isdisjoint(planted["noise"])
    assert len(planted["useful"]) + len(planted["noise"]) == 12


def test_true_logit_is_informative_but_not_perfect():
    dataset = load_dataset("synthetic")
    data = dataset.task("ctr")
    score = auc(dataset.true_logits("test"), data.test.label)
    assert 0.72 <= score <= 0.88


def _additive_auc(data, fields) -> float:
    """Sum of smoothed per-id mean labels on train, scored on test."""
    label = data.train.label.numpy()
    prior = label.mean()
    score = np.zeros(len(data.test))
    for name in fields:
        ids, size = data.train.columns[name].numpy(), data.feature(name).vocab_size
        total = np.bincount(ids, weights=label, minlength=size)
        count = np.bincount(ids, minlength=size)
        score += ((total + 20 * prior) / (count + 20))[data.test.columns[name].numpy()]
    return auc(score, data.test.label)


def test_signal_lives_in_the_useful_fields_only():
    data = load_dataset("synthetic").task("ctr")
    useful = _additive_auc(data, synthetic.USEFUL)
    noise = _additive_auc(data, synthetic.NOISE)
    assert useful > 0.57  # the per-id biases; the low-rank interactions need a real model
    assert abs(noise - 0.5) < 0.03


def test_markov_structure_beats_popularity_by_far():
    data = load_dataset("synthetic").task("sequential")
    size = data.num_items + 1
    transitions = torch.zeros(size, size)
    popularity = torch.zeros(size)
    for sequence in data.train:
        popularity += torch.bincount(sequence, minlength=size)
        transitions.index_put_(
            (sequence[:-1], sequence[1:]), torch.ones(len(sequence) - 1), accumulate=True
        )
    last = data.test_history[:, -1]
    markov = ranking_metrics(target_ranks(transitions[last], data.test_target, data.test_seen))
    popular = ranking_metrics(
        target_ranks(popularity.expand(len(last), -1), data.test_target, data.test_seen)
    )
    assert markov["hr@10"] > 0.6
    assert popular["hr@10"] < 0.25
    in_degree = np.bincount(synthetic.successor_table()[1:].ravel(), minlength=size)
    assert (in_degree[1:] == 3).all()


def test_only_the_random_split_and_integer_seeds():
    dataset = load_dataset("synthetic")
    with pytest.raises(ConfigError, match="random"):
        dataset.task("ctr", split="user_time")
    with pytest.raises(ConfigError, match="integer seed"):
        load_dataset("synthetic:abc")
