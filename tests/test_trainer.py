"""The trainer's own behaviour: settings, seeding, sequential training windows."""

import pytest
import torch

from autorec.data import load_dataset
from autorec.errors import ConfigError
from autorec.trainer import resolve_device, split_settings, train_model, training_windows


def test_training_windows_cover_every_target_once():
    sequence = list(range(1, 120))
    windows = training_windows(sequence, max_len=50)
    assert all(len(w) <= 51 for w in windows)
    targets = sorted(t for w in windows for t in w[1:])
    assert targets == sequence[1:]
    assert training_windows([7], 50) == []


def test_same_seed_same_model_and_metrics():
    data = load_dataset("synthetic").ctr()
    first = train_model("fm", data, {"epochs": 2, "seed": 5})
    second = train_model("fm", data, {"epochs": 2, "seed": 5})
    assert first.metrics == second.metrics
    for a, b in zip(first.module.state_dict().values(), second.module.state_dict().values()):
        assert torch.equal(a, b)


def test_settings_split_between_model_and_training():
    model, train = split_settings("deepfm", {"embedding_dim": 8, "lr": 0.01}, "ctr")
    assert model.embedding_dim == 8 and train.lr == 0.01
    with pytest.raises(ConfigError, match="unknown setting"):
        split_settings("deepfm", {"embeding_dim": 8}, "ctr")


def test_missing_gpu_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
