"""The one dispatch: what `autorec.kernels.op` returns under each `kernels` setting, how bad
settings are refused, and that the models give the same outputs and gradients with the Triton
kernels (under the interpreter) as with the references."""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before any Triton kernel module is imported

import pytest
import torch
from typer.testing import CliRunner

from autorec import kernels
from autorec.cli import app
from autorec.data.features import Feature, FeatureKind
from autorec.errors import ConfigError, UnknownNameError
from autorec.kernels import dispatch
from autorec.kernels.common import TritonImplementation
from autorec.kernels.registry import OP_NAMES
from autorec.models import model_class


class CountingTriton:
    """The op's default Triton kernel, counting its calls: proof that a model ran it."""

    def __init__(self, spec):
        self.spec, self.calls = spec, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.spec.triton_default(*args, **kwargs)


@pytest.fixture(autouse=True)
def _reference_selection():
    kernels.configure({})
    yield
    kernels.configure({})


def test_every_op_defaults_to_its_reference():
    for name in OP_NAMES:
        assert kernels.op(name) is kernels.get_op(name).reference


def test_using_selects_inside_the_block_and_restores_after():
    with kernels.using({"fm_interaction": "triton", "dcn_cross": {"BLOCK_M": 64}}):
        assert kernels.op("fm_interaction") is kernels.get_op("fm_interaction").triton_default
        cross = kernels.op("dcn_cross")
        assert isinstance(cross, TritonImplementation) and cross.knobs["BLOCK_M"] == 64
        assert cross.knobs["BLOCK_N"] == kernels.get_op("dcn_cross").default_knobs["BLOCK_N"]
        assert kernels.op("hstu_attention") is kernels.get_op("hstu_attention").reference
    assert kernels.op("fm_interaction") is kernels.get_op("fm_interaction").reference


def test_configure_replaces_the_whole_selection():
    kernels.configure({"fm_interaction": "triton"})
    kernels.configure({"dcn_cross": "triton"})
    assert kernels.op("fm_interaction") is kernels.get_op("fm_interaction").reference
    assert isinstance(kernels.op("dcn_cross"), TritonImplementation)


@pytest.mark.parametrize(
    "setting, error, message",
    [
        ({"fm_intreaction": "triton"}, UnknownNameError, "unknown op 'fm_intreaction'"),
        ({"fm_interaction": "fastest"}, UnknownNameError, "unknown fm_interaction kernel"),
        ({"fm_interaction": {"BLOCK_B": 3}}, ConfigError, "BLOCK_B=3 is not one of"),
        ({"fm_interaction": {"BLOCK_X": 16}}, ConfigError, "has no knob BLOCK_X"),
        ("triton", ConfigError, "must map op names"),
    ],
)
def test_bad_settings_are_one_line_errors(setting, error, message):
    with pytest.raises(error, match=message):
        kernels.select(setting)


def test_registered_resolver_names_archived_variants():
    fm = kernels.get_op("fm_interaction")

    def archive(spec, variant_id):
        return fm.build({"BLOCK_B": 64}) if (spec.name, variant_id) == ("fm_interaction", "v7") else None

    dispatch.register_variant_resolver(archive)
    try:
        assert kernels.resolve("fm_interaction", "v7").knobs["BLOCK_B"] == 64
        with pytest.raises(UnknownNameError):
            kernels.resolve("dcn_cross", "v7")
    finally:
        dispatch._resolvers.remove(archive)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        kernels.select({"fm_interaction": "triton"}, torch.device("cpu"))
    kernels.select({"fm_interaction": "reference"}, torch.device("cpu"))  # fine anywhere
    with pytest.raises(ConfigError, match="TRITON_INTERPRET"):
        kernels.get_op("fm_interaction").triton_default(torch.ones(2, 3, 4))


@pytest.mark.parametrize(
    "setting, message",
    [("kernels.fm_interaction=fastest", "unknown fm_interaction kernel 'fastest'"),
     ("kernels.bogus=triton", "unknown op 'bogus'")],
)
def test_train_cli_refuses_unknown_ops_and_variants(setting, message):
    result = CliRunner().invoke(app, ["train", "--model", "fm", "--dataset", "synthetic",
                                      "--set", setting])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {message}; known: ")
    assert len(result.output.strip().splitlines()) == 1


# A small CTR feature set with every field kind the models pool: multi-hot genres, a left-padded
# history that shares item_id's table, a numeric field.
FEATURES = [
    Feature("user_id", FeatureKind.CATEGORICAL, 9),
    Feature("item_id", FeatureKind.CATEGORICAL, 13),
    Feature("genres", FeatureKind.MULTI_HOT, 6, max_len=3),
    Feature("price", FeatureKind.NUMERIC),
    Feature("hist_items", FeatureKind.SEQUENCE, 13, 5, "item_id"),
]


def _ctr_batch(rows: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.arange(rows) % 6  # 0..5 items, so some histories are empty
    history = torch.randint(1, 13, (rows, 5), generator=g)
    return {
        "user_id": torch.randint(1, 9, (rows,), generator=g),
        "item_id": torch.randint(1, 13, (rows,), generator=g),
        "genres": torch.randint(0, 6, (rows, 3), generator=g),  # 0 is padding: ragged bags
        "price": torch.randn(rows, generator=g),
        "hist_items": torch.where(torch.arange(5) >= 5 - lengths[:, None], history, 0),
    }


def _outputs_and_grads(model: torch.nn.Module, forward) -> tuple[torch.Tensor, dict]:
    model.zero_grad()
    out = forward(model)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * weights).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same_with_triton(model: torch.nn.Module, forward, ops: set[str]) -> None:
    """Outputs and parameter gradients match with every op on Triton, and `ops` ran Triton."""
    model.eval()  # no dropout, so both passes see the same function
    expected, expected_grads = _outputs_and_grads(model, forward)
    counters = {name: CountingTriton(kernels.get_op(name)) for name in OP_NAMES}
    dispatch.register_variant_resolver(resolver := lambda spec, _: counters[spec.name])
    try:
        with kernels.using({name: "counted" for name in OP_NAMES}):
            actual, grads = _outputs_and_grads(model, forward)
    finally:
        dispatch._resolvers.remove(resolver)
    assert {name for name, counter in counters.items() if counter.calls} == ops
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "name, ops",
    [("fm", {"fm_interaction", "embedding_pool"}), ("deepfm", {"fm_interaction", "embedding_pool"}),
     ("dcnv2", {"dcn_cross", "embedding_pool"}), ("din", {"embedding_pool"})],
)
def test_ctr_models_match_with_triton_kernels(name, ops):
    torch.manual_seed(0)
    config = {"embedding_dim": 8, "hidden_units": [16]} if name != "fm" else {"embedding_dim": 8}
    model = model_class(name)(FEATURES, config)
    with torch.no_grad():  # real-sized embeddings, so the crosses and interactions matter
        for table in model.embedding.tables.values():
            table.weight.normal_()
    batch = _ctr_batch()
    _assert_same_with_triton(model, lambda m: m(batch), ops)


def test_hstu_matches_with_triton_attention():
    torch.manual_seed(0)
    cls = model_class("hstu")
    model = cls(20, 10, cls.Config(hidden_dim=16, num_heads=2, num_blocks=2))
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([0, 1, 4, 10])
    items = torch.randint(1, 21, (4, 10), generator=g)
    inputs = torch.where(torch.arange(10) >= 10 - lengths[:, None], items, 0)
    _assert_same_with_triton(model, lambda m: m.encode(inputs), {"hstu_attention"})
