"""ReLoop2: the error memory, the corrected score, the streaming evaluation and the config."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from autorec.cli import app
from autorec.data.features import CTRData, Feature, FeatureKind, TensorSplit
from autorec.errors import ConfigError
from autorec.models import model_class
from autorec.models.ctr.reloop2_memory import ErrorMemory
from autorec.trainer import evaluate_trained, split_settings, train_model

NUM_USERS, NUM_ITEMS = 30, 40
FEATURES = [
    Feature("user_id", FeatureKind.CATEGORICAL, NUM_USERS + 1),
    Feature("item_id", FeatureKind.CATEGORICAL, NUM_ITEMS + 1),
]
# weight_decay explicit: fm has a default of its own that reloop2 does not inherit.
FAST = {"lr": 1e-2, "batch_size": 128, "epochs": 4, "patience": 4, "seed": 0, "embedding_dim": 8,
        "weight_decay": 3e-4}


def _drifting_data(rows: int = 4000, seed: int = 0, reverse_files: bool = True) -> CTRData:
    """Labels from user and item effects; after training, the even items' appeal jumps (a trend
    the trained model cannot know), so only labels seen at inference reveal it. Files list the
    rows newest first (reverse_files), as a log need not be in time order."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(1, NUM_USERS + 1, (rows,), generator=g)
    items = torch.randint(1, NUM_ITEMS + 1, (rows,), generator=g)
    user_bias = torch.randn(NUM_USERS + 1, generator=g)
    item_bias = torch.randn(NUM_ITEMS + 1, generator=g)
    time = torch.arange(rows)
    cut1, cut2 = int(rows * 0.7), int(rows * 0.85)
    trend = (time >= cut1) & (items % 2 == 0)
    logit = user_bias[users] + item_bias[items] + 3.0 * trend.float() - 1.5 * (time >= cut1).float()
    label = (torch.rand(rows, generator=g) < torch.sigmoid(logit)).float()

    def split(lo: int, hi: int) -> TensorSplit:
        rows_ = torch.arange(lo, hi).flip(0) if reverse_files else torch.arange(lo, hi)
        return TensorSplit({"user_id": users[rows_], "item_id": items[rows_]}, label[rows_],
                           time[rows_])  # fmt: skip

    return CTRData("drift", FEATURES, split(0, cut1), split(cut1, cut2), split(cut2, rows),
                   {"name": "drift", "seed": seed}, f"drift-{seed}")  # fmt: skip


@pytest.fixture(scope="module")
def data() -> CTRData:
    return _drifting_data()


def _reloop2(**config):
    cls = model_class("reloop2")
    return cls(FEATURES, cls.Config(**{"base": "fm", "embedding_dim": 8, **config}))


# --- the memory --------------------------------------------------------------------------------


def test_memory_is_bounded_and_forgets_oldest_first():
    memory = ErrorMemory(capacity=3, neighbours=1, temperature=0.1)
    memory.write(torch.eye(4)[:2], torch.tensor([0.1, 0.2]))
    memory.write(torch.eye(4)[2:], torch.tensor([0.3, 0.4]))
    keys, errors = memory.entries()
    assert len(memory) == 3
    assert errors.tolist() == pytest.approx([0.2, 0.3, 0.4])  # the first row was overwritten
    assert torch.equal(keys, torch.eye(4)[1:])
    # A write longer than the memory keeps only its newest rows.
    memory.write(torch.eye(4)[[3, 2, 1, 0]], torch.tensor([0.5, 0.6, 0.7, 0.8]))
    keys, errors = memory.entries()
    assert errors.tolist() == pytest.approx([0.6, 0.7, 0.8])
    assert torch.equal(keys, torch.eye(4)[[2, 1, 0]])


def test_estimate_weights_the_nearest_neighbours_errors():
    memory = ErrorMemory(capacity=10, neighbours=2, temperature=0.1)
    assert memory.estimate(torch.ones(1, 3)).tolist() == [0.0]  # empty: no correction
    # Three stored directions; lengths do not matter, only the angle (cosine).
    memory.write(torch.tensor([[2.0, 0, 0], [0, 5.0, 0], [0, 0, 1.0]]),
                 torch.tensor([0.6, -0.4, 0.9]))  # fmt: skip
    queries = torch.tensor([
        [1.0, 1.0, 0.0],  # equally near the first two keys: their plain mean
        [3.0, 1.0, 0.0],  # nearer the first: the softmax leans to it
        [0.0, 0.0, 1.0],  # the third key, and one of the orthogonal others
    ])  # fmt: skip
    estimate = memory.estimate(queries)
    assert estimate[0].item() == pytest.approx(0.1)
    cos = torch.tensor([3.0, 1.0]) / 10**0.5
    w = torch.softmax(cos / 0.1, dim=0)
    assert estimate[1].item() == pytest.approx((w[0] * 0.6 + w[1] * -0.4).item(), abs=1e-6)
    assert estimate[2].item() > 0.85  # dominated by the third key's 0.9 at cosine 1 vs 0
    nearest = ErrorMemory(capacity=10, neighbours=1, temperature=0.1)
    nearest.write(torch.eye(3), torch.tensor([0.6, -0.4, 0.9]))
    assert nearest.estimate(torch.tensor([[0.2, 1.0, 0.1]])).tolist() == pytest.approx([-0.4])


# --- the model ---------------------------------------------------------------------------------


def test_score_is_the_base_probability_plus_mix_times_the_neighbours_error(data):
    model = _reloop2(neighbours=1, mix=0.5).eval()
    batch = data.test.batch(slice(0, 2))
    key, base_logits = model.key_and_logits(batch)
    model.memory.write(key, torch.tensor([0.4, -0.3]))  # each row's own key holds an error
    with torch.no_grad():
        corrected = torch.sigmoid(model(batch))
        expected = torch.sigmoid(base_logits) + 0.5 * torch.tensor([0.4, -0.3])
    assert corrected.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_mix_zero_is_the_base_model_exactly(data):
    settings = {**FAST, "eval_batch_size": 64}
    base = train_model("fm", data, settings)
    wrapped = train_model("reloop2", data, {**settings, "base": "fm", "mix": 0.0})
    assert wrapped.metrics == base.metrics and wrapped.valid_metrics == base.valid_metrics
    assert [row["loss"] for row in wrapped.history] == [row["loss"] for row in base.history]
    assert wrapped.params == base.params


def _test_and_valid_logits(model, data: CTRData, batch_size: int = 8):
    from autorec.trainer import _CTRLoop

    loop = _CTRLoop(model, data, torch.device("cpu"))
    return loop._logits("valid", batch_size), loop._logits("test", batch_size)


def test_a_rows_label_never_corrects_its_own_score(data):
    """Write-after-score in event-time order: a test row's score depends on the labels of rows
    scored in earlier batches, never on its own label or on later rows'."""
    model = _reloop2(neighbours=64, mix=1.0, memory_size=10_000)
    _, logits = _test_and_valid_logits(model, data)
    # Files list the newest row first, so in time order the file's first row is scored last:
    # flipping its label changes no score. Flipping the oldest row's label changes later scores
    # but none in its own batch (the first 8 rows in time: the file's last 8).
    newest, oldest = 0, len(data.test) - 1
    for row, changes in ((newest, False), (oldest, True)):
        flipped = _drifting_data()
        flipped.test.label[row] = 1 - flipped.test.label[row]
        _, again = _test_and_valid_logits(model, flipped)
        differs = ~torch.isclose(again, logits)
        assert bool(differs.any()) == changes
        assert not differs[-8:].any()


def test_validation_is_streamed_before_test(data):
    """The test pass starts with the validation errors in memory: flipping the validation labels
    moves test scores; flipping the test labels leaves validation scores alone."""
    model = _reloop2(neighbours=8, mix=1.0, memory_size=500)
    valid, test = _test_and_valid_logits(model, data)
    flipped_valid, flipped_test = _drifting_data(), _drifting_data()
    flipped_valid.valid.label.copy_(1 - flipped_valid.valid.label)
    flipped_test.test.label.copy_(1 - flipped_test.test.label)
    assert not torch.allclose(_test_and_valid_logits(model, flipped_valid)[1], test)
    assert torch.equal(_test_and_valid_logits(model, flipped_test)[0], valid)


def test_error_memory_recovers_a_trend_the_base_cannot_see(data):
    """A memory of the last 1,000 rows holds post-trend errors only (the training rows' stale,
    near-zero errors would dilute them): +0.02 to +0.07 test AUC over seeds 0-4; seed 0 +0.05."""
    base = train_model("fm", data, {**FAST, "eval_batch_size": 32})
    reloop2 = train_model("reloop2", data, {**FAST, "base": "fm", "eval_batch_size": 32,
                                            "memory_size": 1000, "mix": 1.0})  # fmt: skip
    assert reloop2.metrics["auc"] > base.metrics["auc"] + 0.03, (base.metrics, reloop2.metrics)


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"base": "nope"}, "base: Input should be 'fm', 'deepfm', 'dcnv2', 'din' or 'dare'"),
    ({"memory_size": 0}, "memory_size: Input should be greater than or equal to 1"),
    ({"cross_layers": 2}, "cross_layers: not a knob of base 'deepfm'"),
    ({"base": "fm", "key": "hidden"}, "key 'hidden' needs a base with an output layer"),
    ({"hidden_units": [0]}, "base 'deepfm': hidden_units.0"),
])  # fmt: skip
def test_bad_settings_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as caught:
        split_settings("reloop2", settings, "ctr")
    assert "\n" not in str(caught.value)


def test_base_knobs_reach_the_base():
    model_config, _ = split_settings(
        "reloop2", {"base": "dcnv2", "cross_layers": 1, "hidden_units": [32]}, "ctr"
    )
    model = model_class("reloop2")(FEATURES, model_config)
    assert type(model.base).__name__ == "DCNv2"
    assert model.base.config.cross_layers == 1 and model.base.config.hidden_units == [32]
    assert model_config.model_dump()["cross_layers"] == 1
    assert "attention_dim" not in model_config.model_dump()  # unset knobs of other bases


runner = CliRunner()


def test_cli_refuses_bad_config_in_one_line():
    for args in (["--set", "base=nope"], ["--set", "memory_size=0"]):
        result = runner.invoke(app, ["train", "--model", "reloop2", "--dataset", "ml-100k",
                                     "--split", "global_time", *args])  # fmt: skip
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")


@pytest.mark.slow
def test_cli_trains_on_ml100k_global_time():
    result = runner.invoke(app, ["train", "--model", "reloop2", "--dataset", "ml-100k",
                                 "--split", "global_time", "--set", "epochs=2",
                                 "--set", "threads=1", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["model"] == "reloop2" and payload["config"]["model"]["base"] == "deepfm"
    assert payload["metrics"]["auc"] > 0.6 and payload["valid_metrics"]["auc"] > 0.6


def test_architecture_space_offers_reloop2_with_its_knobs():
    from autorec.search_spaces.architecture import ArchitectureSpace
    from autorec.space import SpaceOptions

    space = ArchitectureSpace(SpaceOptions(dataset="ml-100k", task="ctr"))
    candidate = space.validate({"model": "reloop2", "memory_size": 2000, "neighbours": 8,
                                "mix": 0.25, "mlp_depth": 1, "mlp_width": 64})  # fmt: skip
    settings = candidate.trainer_settings()
    assert {k: settings[k] for k in ("memory_size", "neighbours", "mix", "hidden_units")} == {
        "memory_size": 2000, "neighbours": 8, "mix": 0.25, "hidden_units": [64]}
    model_config, _ = split_settings("reloop2", settings, "ctr")
    assert model_config.base == "deepfm" and model_config.mix == 0.25
    # Other families neither read nor store the memory knobs (their hashes stay as they were).
    deepfm = space.validate({"model": "deepfm", "memory_size": 2000})
    assert "memory_size" not in deepfm.model_dump() and "mix" not in deepfm.trainer_settings()
