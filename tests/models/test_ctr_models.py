"""The CTR model suite: every model builds from declared features, honours per-field embedding
dims, validates its config, and learns a planted signal on small synthetic data."""

from __future__ import annotations

import functools
import math
import types
import typing

import pydantic
import pytest
import torch

from autorec.data.features import CTRData, Feature, FeatureKind, TensorSplit
from autorec.errors import ConfigError
from autorec.metrics import auc
from autorec.models import model_class, model_names
from autorec.trainer import train_model

CTR_MODELS = ["lr", "mean", "fm", "deepfm", "dcnv2", "din", "dare"]
EMBEDDING_MODELS = ["fm", "deepfm", "dcnv2", "din", "dare"]
TRAINABLE = ["lr", "fm", "deepfm", "dcnv2", "din", "dare"]
FAST = {"lr": 1e-2, "batch_size": 128, "epochs": 6, "patience": 6, "seed": 0}

NUM_USERS, NUM_ITEMS, HIST = 40, 50, 6


def _features(with_sequence: bool = True) -> list[Feature]:
    features = [
        Feature("user_id", FeatureKind.CATEGORICAL, NUM_USERS + 1),
        Feature("item_id", FeatureKind.CATEGORICAL, NUM_ITEMS + 1),
        Feature("gender", FeatureKind.CATEGORICAL, 3),
    ]
    if with_sequence:
        features += [
            Feature("genres", FeatureKind.MULTI_HOT, 7, max_len=3),
            Feature("price", FeatureKind.NUMERIC),
            Feature("hist_items", FeatureKind.SEQUENCE, NUM_ITEMS + 1, HIST, "item_id"),
        ]
    return features


def _ctr_data(with_sequence: bool = True, rows: int = 3000, seed: int = 0) -> CTRData:
    """Users and items each fall in one of two groups; a user likes items of their own group
    (an interaction no linear model can express) and some users and items are liked more than
    others (main effects every model can learn). Histories hold the user's own group's items."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(1, NUM_USERS + 1, (rows,), generator=g)
    items = torch.randint(1, NUM_ITEMS + 1, (rows,), generator=g)
    user_bias = torch.randn(NUM_USERS + 1, generator=g)
    item_bias = torch.randn(NUM_ITEMS + 1, generator=g)
    same_group = (users % 2) == (items % 2)
    logit = 1.5 * (user_bias[users] + item_bias[items]) + 2.5 * (same_group.float() - 0.5)
    label = (torch.rand(rows, generator=g) < torch.sigmoid(logit)).float()
    columns = {
        "user_id": users,
        "item_id": items,
        "gender": torch.randint(1, 3, (rows,), generator=g),
    }
    if with_sequence:
        genres = torch.randint(0, 7, (rows, 3), generator=g)
        columns["genres"] = genres
        columns["price"] = torch.randn(rows, generator=g)
        # Items of the user's group, a random number of them, left-padded with 0.
        history = 2 * torch.randint(1, NUM_ITEMS // 2, (rows, HIST), generator=g)
        history = history + (users % 2)[:, None]
        history = history.clamp(1, NUM_ITEMS)
        lengths = torch.randint(0, HIST + 1, (rows,), generator=g)
        positions = torch.arange(HIST)[None, :]
        columns["hist_items"] = torch.where(positions >= HIST - lengths[:, None], history, 0)
    cut1, cut2 = int(rows * 0.7), int(rows * 0.85)

    def split(lo: int, hi: int) -> TensorSplit:
        return TensorSplit({k: v[lo:hi] for k, v in columns.items()}, label[lo:hi])

    return CTRData(
        dataset="planted",
        features=_features(with_sequence),
        train=split(0, cut1),
        valid=split(cut1, cut2),
        test=split(cut2, rows),
        protocol={"name": "planted", "seed": seed},
        split_hash=f"planted-{seed}-{with_sequence}",
    )


@pytest.fixture(scope="module")
def data() -> CTRData:
    return _ctr_data()


@pytest.fixture(scope="module")
def categorical_data() -> CTRData:
    return _ctr_data(with_sequence=False)


def _build(name: str, features: list[Feature], **config):
    cls = model_class(name)
    return cls(features, cls.Config(**config))


def _first_rows(split: TensorSplit, n: int = 64) -> dict[str, torch.Tensor]:
    """A copy, so a test may edit it without touching the shared fixture."""
    return {name: column.clone() for name, column in split.batch(slice(0, n)).items()}


def test_registry_resolves_every_ctr_model():
    assert set(CTR_MODELS) <= set(model_names("ctr"))
    for name in CTR_MODELS:
        cls = model_class(name)
        assert cls.name == name
        assert issubclass(cls.Config, pydantic.BaseModel)


@pytest.mark.parametrize("with_sequence", [True, False], ids=["ml-like", "categorical-only"])
@pytest.mark.parametrize("name", CTR_MODELS)
def test_forward_gives_one_finite_logit_per_row(name, with_sequence, data, categorical_data):
    split_data = data if with_sequence else categorical_data
    model = _build(name, split_data.features)
    model.prepare(split_data)
    model.eval()
    logits = model(_first_rows(split_data.train))
    assert logits.shape == (64,)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", EMBEDDING_MODELS)
def test_field_dims_set_each_table_width(name, data):
    dims = {"user_id": 5, "item_id": 12, "price": 3}
    model = _build(name, data.features, embedding_dim=8, field_dims=dims)
    tables = model.embedding.tables
    assert tables["user_id"].embedding_dim == 5
    assert tables["item_id"].embedding_dim == 12
    assert tables["price"].embedding_dim == 3
    assert tables["gender"].embedding_dim == 8  # the default width
    assert "hist_items" not in tables  # it reads item_id's table
    assert model.embedding.dims["hist_items"] == 12
    logits = model(_first_rows(data.train))
    assert logits.shape == (64,) and torch.isfinite(logits).all()
    logits.sum().backward()


@pytest.mark.parametrize("name", CTR_MODELS)
def test_field_dims_naming_an_unknown_field_is_a_config_error(name, data):
    with pytest.raises(ConfigError, match="nope"):
        _build(name, data.features, field_dims={"nope": 4})


@pytest.mark.parametrize("name", CTR_MODELS)
def test_field_dims_cannot_name_a_field_that_borrows_a_table(name, data):
    with pytest.raises(ConfigError, match="hist_items"):
        _build(name, data.features, field_dims={"hist_items": 4})


BAD_VALUES: dict[str, list[dict]] = {
    "lr": [{"embedding_dim": 0}],
    "mean": [{"prior_count": -1.0}],
    "fm": [{"interaction_dim": 0}, {"embedding_dim": 2000}],
    "deepfm": [{"dropout": 1.5}, {"hidden_units": [0]}, {"hidden_units": [8] * 9}],
    "dcnv2": [{"cross_layers": 9}, {"cross_rank": 0}, {"structure": "diagonal"}],
    "din": [{"attention_units": [-1]}, {"attention_normalization": "max"}, {"dropout": -0.1}],
    "dare": [{"attention_dim": 0}, {"attention_dim": 4096}, {"field_dims": {"item_id": 0}}],
}


@pytest.mark.parametrize("name", CTR_MODELS)
def test_config_rejects_unknown_keys_and_out_of_range_values(name):
    config_type = model_class(name).Config
    with pytest.raises(pydantic.ValidationError):
        config_type(embeding_dim=8)  # a typo is an error, never silently ignored
    for bad in BAD_VALUES[name]:
        with pytest.raises(pydantic.ValidationError):
            config_type(**bad)
    config_type()  # the defaults validate


def _numeric(annotation) -> bool:
    """int, float, or an optional one (containers such as field_dims validate their items)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_numeric(arg) for arg in typing.get_args(annotation))
    return annotation in (int, float)


@pytest.mark.parametrize("name", CTR_MODELS)
def test_every_numeric_setting_has_a_range_and_a_description(name):
    for key, field in model_class(name).Config.model_fields.items():
        assert field.description, f"{name}.{key} has no description"
        if not _numeric(field.annotation):
            continue
        bounds = {type(m).__name__ for m in field.metadata}
        assert {"Ge", "Le"} <= bounds, f"{name}.{key} lacks a ge/le range: {field.metadata}"


@functools.cache
def _trained(name: str):
    return train_model(name, _ctr_data(), FAST)


@pytest.mark.parametrize("name", TRAINABLE)
def test_learns_the_planted_signal(name):
    result = _trained(name)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0] - 0.02, losses
    assert result.metrics["auc"] > 0.65, result.metrics
    assert result.params > 0


@pytest.mark.parametrize("name", ["fm", "deepfm", "dcnv2", "din", "dare"])
def test_interaction_models_beat_logistic_regression(name):
    """A user likes items of their own group: only models with feature interactions see it."""
    assert _trained(name).metrics["auc"] > _trained("lr").metrics["auc"] + 0.03


@pytest.mark.parametrize("name", ["deepfm", "dcnv2", "din", "dare"])
def test_a_training_batch_of_one_row_works_with_batch_norm(name, data):
    model = _build(name, data.features, batch_norm=True).train()
    logits = model(_first_rows(data.train, 1))
    assert logits.shape == (1,) and torch.isfinite(logits).all()


def test_fm_trains_with_its_own_weight_decay_unless_told_otherwise(data):
    assert _trained("fm").config["train"]["weight_decay"] == 3e-4
    result = train_model("fm", data, {**FAST, "epochs": 1, "weight_decay": 0.0})
    assert result.config["train"]["weight_decay"] == 0.0


@pytest.mark.parametrize("name", ["din", "dare"])
def test_attention_models_learn_without_a_sequence(name, categorical_data):
    model = _build(name, categorical_data.features)
    assert model.targets == {}
    result = train_model(name, categorical_data, FAST)
    assert result.metrics["auc"] > 0.65, result.metrics


def test_mean_label_scores_from_training_means_without_parameters(data):
    model = _build("mean", data.features)
    assert list(model.parameters()) == []
    assert not model.trainable
    model.prepare(data)
    with torch.no_grad():
        scores = model(data.test.columns)
    assert auc(scores, data.test.label) > 0.65
    global_mean = data.train.label.mean().item()
    assert model.global_mean.item() == pytest.approx(global_mean)
    unseen = {name: torch.zeros(2, dtype=torch.long) for name in ("user_id", "item_id")}
    assert torch.sigmoid(model(unseen)) == pytest.approx([global_mean] * 2, abs=1e-5)
    result = train_model("mean", data, FAST)
    assert result.params == 0 and result.metrics["auc"] > 0.65


def test_mean_label_without_user_or_item_scores_the_global_mean(data):
    features = [f for f in data.features if f.name not in ("user_id", "item_id")]
    model = _build("mean", features)
    model.prepare(data)
    logits = model(_first_rows(data.test))
    assert torch.allclose(logits, logits[0].expand_as(logits))


def test_lr_ignores_embedding_dims():
    features = _features()
    wide = _build("lr", features, embedding_dim=64, field_dims={"item_id": 32})
    narrow = _build("lr", features)
    # One weight per id (a numeric field has one row) plus the bias.
    expected = sum(f.vocab_size or 1 for f in features if f.owns_table) + 1
    for model in (wide, narrow):
        assert sum(p.numel() for p in model.parameters()) == expected


def test_fm_aligns_fields_of_different_widths(data):
    model = _build(
        "fm", data.features, embedding_dim=8, field_dims={"user_id": 4}, interaction_dim=6
    )
    aligner = model.fm.aligner
    assert aligner.out_dim == 6
    assert set(aligner.projections) == set(model.embedding.names)
    same = _build("fm", data.features, embedding_dim=8, field_dims={"user_id": 4})
    assert set(same.fm.aligner.projections) == {"user_id"}  # others are already 8 wide


def test_fm_second_order_term_matches_explicit_pairs():
    from autorec.models.ctr.fm import pairwise_interactions

    fields = torch.randn(3, 4, 5)
    explicit = sum(
        (fields[:, i] * fields[:, j]).sum(-1) for i in range(4) for j in range(i + 1, 4)
    )
    torch.testing.assert_close(pairwise_interactions(fields), explicit)


@pytest.mark.parametrize("structure", ["stacked", "parallel"])
@pytest.mark.parametrize("rank", [None, 4])
def test_dcnv2_structures_and_ranks(structure, rank, data):
    model = _build("dcnv2", data.features, structure=structure, cross_rank=rank, cross_layers=3)
    assert len(model.cross) == 3
    low_rank = isinstance(model.cross[0].weight, torch.nn.Sequential)
    assert low_rank == (rank is not None)
    logits = model(_first_rows(data.train))
    assert logits.shape == (64,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("normalization", ["sum", "mean", "softmax"])
def test_din_attends_from_the_target_over_the_history(normalization, data):
    model = _build("din", data.features, attention_normalization=normalization)
    assert model.targets == {"hist_items": "item_id"}
    batch = _first_rows(data.train, 8)
    batch["hist_items"][0] = 0  # a user with no history at all
    logits = model(batch)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.attention["hist_items"].score[0].weight.grad is not None


@pytest.mark.parametrize("name", ["din", "dare"])
def test_din_and_dare_ignore_padding(name, data):
    model = _build(name, data.features).eval()
    batch = _first_rows(data.train, 16)
    longer = dict(batch)
    longer["hist_items"] = torch.cat([torch.zeros(16, 3, dtype=torch.long), batch["hist_items"]], 1)
    torch.testing.assert_close(model(batch), model(longer))
    empty = dict(batch, hist_items=torch.zeros_like(batch["hist_items"]))
    assert torch.isfinite(model(empty)).all()


def test_dare_has_separate_attention_and_representation_tables(data):
    model = _build(
        "dare", data.features, embedding_dim=8, field_dims={"item_id": 12}, attention_dim=6
    )
    representation = model.embedding.tables["item_id"]
    attention = model.attention_tables["item_id"]
    assert representation is not attention
    assert representation.embedding_dim == 12
    assert attention.embedding_dim == 6
    assert attention.num_embeddings == representation.num_embeddings == NUM_ITEMS + 1
    weights = model.attention_weights(_first_rows(data.train), "hist_items")
    assert weights.shape == (64, HIST)
    has_history = (data.train.columns["hist_items"][:64] != 0).any(1)
    torch.testing.assert_close(weights.sum(1)[has_history], torch.ones(int(has_history.sum())))
    assert (weights[~has_history] == 0).all()
    model(_first_rows(data.train)).sum().backward()
    assert attention.weight.grad is not None and attention.weight.grad.abs().sum() > 0
    assert representation.weight.grad.abs().sum() > 0


def test_dare_without_sequence_has_no_attention_tables(categorical_data):
    model = _build("dare", categorical_data.features)
    assert len(model.attention_tables) == 0
    assert math.isfinite(model(_first_rows(categorical_data.train)).sum().item())
