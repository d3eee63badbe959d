"""Which epoch the trainer keeps: early stopping on the validation metric and the restored
best-validation weights, shown with a planted sequence of validation scores."""

import copy

import pytest
import torch

from autorec import trainer
from autorec.data import load_dataset
from autorec.trainer import VALID_METRIC, train_model


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic").ctr()


def plant(monkeypatch, scores):
    """The CTR loop's validation metric reads `scores` in turn (then the real value), and the
    weights each planted score was given for are kept, epoch by epoch."""
    real = trainer._CTRLoop.evaluate
    weights = []

    def evaluate(self, split, batch_size):
        metrics = real(self, split, batch_size)
        if split == "valid" and len(weights) < len(scores):
            weights.append(copy.deepcopy(self.model.state_dict()))
            metrics = {**metrics, VALID_METRIC["ctr"]: scores[len(weights) - 1]}
        return metrics

    monkeypatch.setattr(trainer._CTRLoop, "evaluate", evaluate)
    return weights


def same_weights(module, state):
    return all(torch.equal(value, state[key]) for key, value in module.state_dict().items())


def test_early_stopping_keeps_the_best_validation_epoch(monkeypatch, data):
    scores = [0.60, 0.70, 0.65, 0.72, 0.71, 0.70, 0.69, 0.99, 0.99, 0.99]
    weights = plant(monkeypatch, scores)
    result = train_model("fm", data, {"epochs": 10, "patience": 2, "lr": 0.05, "seed": 1})
    # Best at epoch 4; epochs 5 and 6 are within patience, epoch 7 is the third without a
    # better score, so training stops there and never sees the 0.99 of epoch 8.
    assert result.best_epoch == 4
    assert result.epochs_run == 7
    assert [row[f"valid_{VALID_METRIC['ctr']}"] for row in result.history] == scores[:7]
    assert same_weights(result.module, weights[3])
    assert not same_weights(result.module, weights[6])  # the last epoch's weights differ


def test_without_early_stopping_the_best_epoch_is_still_the_one_returned(monkeypatch, data):
    weights = plant(monkeypatch, [0.50, 0.60, 0.55, 0.58])
    result = train_model("fm", data, {"epochs": 4, "patience": 10, "lr": 0.05, "seed": 1})
    assert (result.best_epoch, result.epochs_run) == (2, 4)
    assert same_weights(result.module, weights[1])
    assert not same_weights(result.module, weights[3])


def test_a_tie_keeps_the_earlier_epoch(monkeypatch, data):
    weights = plant(monkeypatch, [0.70, 0.70, 0.70])
    result = train_model("fm", data, {"epochs": 3, "patience": 5, "lr": 0.05, "seed": 1})
    assert (result.best_epoch, result.epochs_run) == (1, 3)
    assert same_weights(result.module, weights[0])


def test_the_reported_metrics_are_measured_on_the_kept_weights(monkeypatch, data):
    plant(monkeypatch, [0.60, 0.90, 0.50, 0.40])
    result = train_model("fm", data, {"epochs": 4, "patience": 1, "lr": 0.05, "seed": 1})
    assert (result.best_epoch, result.epochs_run) == (2, 4)
    # Scored again after training: what the kept model really does on the test split.
    loop = trainer._CTRLoop(result.module, data, torch.device("cpu"))
    assert loop.evaluate("test", 4096) == pytest.approx(result.metrics)
