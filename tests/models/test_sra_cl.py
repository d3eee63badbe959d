"""SRA-CL: semantic-neighbour substitution views, the contrastive term, and that it learns."""

from __future__ import annotations

import json

import pydantic
import pytest
import torch
from typer.testing import CliRunner

from autorec.cli import app
from autorec.errors import ConfigError, DatasetError
from autorec.models import model_class
from autorec.models.sequential.sra_cl import SRACL, substitute, text_neighbours

NUM_ITEMS = 12


def clustered_vectors() -> torch.Tensor:
    """Hand-made 'text' vectors: items 1-4, 5-8 and 9-12 lie around three orthogonal axes, so
    each item's nearest neighbours are the other items of its group."""
    vectors = torch.zeros(NUM_ITEMS + 1, 3)
    for item in range(1, NUM_ITEMS + 1):
        group = (item - 1) // 4
        vectors[item, group] = 1.0
        vectors[item, (group + 1) % 3] = 0.01 * item  # breaks ties inside a group
    return vectors


def group(item: int) -> int:
    return (item - 1) // 4


def test_neighbours_are_the_nearest_other_items_by_text():
    neighbours = text_neighbours(clustered_vectors(), 3)
    assert neighbours.shape == (NUM_ITEMS + 1, 3)
    assert neighbours[0].tolist() == [0, 0, 0]  # padding has none
    for item in range(1, NUM_ITEMS + 1):
        row = neighbours[item].tolist()
        assert item not in row and 0 not in row
        same_group = [i for i in range(1, NUM_ITEMS + 1) if group(i) == group(item) and i != item]
        assert sorted(row) == same_group
    # Asking for more neighbours than other items exist repeats the nearest, never padding.
    assert (text_neighbours(clustered_vectors()[:4], 5)[1:] != 0).all()


def test_substitution_keeps_padding_and_swaps_the_given_share_for_text_neighbours():
    neighbours = text_neighbours(clustered_vectors(), 3)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randint(1, NUM_ITEMS + 1, (400, 10), generator=generator)
    inputs[:, :4] = 0  # four padding positions, six real items per row
    inputs[::7] = 0  # and some all-padding rows
    view = substitute(inputs, neighbours, rate=0.5, generator=generator)

    assert torch.equal(view == 0, inputs == 0)
    changed = view != inputs
    real_rows = (inputs != 0).any(dim=1)
    # round(0.5 * 6) = 3 swaps per real row (a neighbour is never the item itself).
    assert changed[real_rows].sum(dim=1).eq(3).all()
    assert not changed[~real_rows].any()
    for old, new in zip(inputs[changed].tolist(), view[changed].tolist()):
        assert new in neighbours[old].tolist() and group(new) == group(old)
    # The swapped positions differ between rows: they are drawn, not fixed.
    assert len({tuple(row) for row in changed[real_rows].int().tolist()}) > 5

    assert torch.equal(substitute(inputs, neighbours, rate=0.0), inputs)
    assert (substitute(inputs, neighbours, rate=1.0) != inputs)[inputs != 0].all()


def build(**config) -> SRACL:
    torch.manual_seed(0)
    return SRACL(NUM_ITEMS, 8, SRACL.Config(hidden_dim=16, **config))


def test_cl_weight_zero_is_sasrec_loss_exactly():
    sasrec_cls = model_class("sasrec")
    torch.manual_seed(0)
    sasrec = sasrec_cls(NUM_ITEMS, 8, sasrec_cls.Config(hidden_dim=16))
    model = build(cl_weight=0.0)
    model.set_text_vectors(clustered_vectors())
    missing = model.load_state_dict(sasrec.state_dict(), strict=False)
    assert missing.missing_keys == ["neighbours"] and not missing.unexpected_keys
    inputs = torch.tensor([[0, 0, 3, 5, 7, 9, 11, 2], [0, 4, 4, 8, 1, 6, 10, 12]])
    targets = torch.tensor([[0, 0, 5, 7, 9, 11, 2, 6], [0, 4, 8, 1, 6, 10, 12, 3]])
    sasrec.train(), model.train()  # dropout on: the same random draws must be consumed
    torch.manual_seed(5)
    expected = sasrec.loss(inputs, targets)
    torch.manual_seed(5)
    assert torch.equal(model.loss(inputs, targets), expected)
    # With the contrastive term on, the loss is SASRec's plus a positive InfoNCE term.
    model.config.cl_weight = 1.0
    model.eval(), sasrec.eval()
    assert model.loss(inputs, targets).item() > sasrec.loss(inputs, targets).item()


def test_contrastive_term_trains_the_encoder():
    model = build(cl_weight=1.0, substitution_rate=0.5, dropout=0.0)
    model.set_text_vectors(clustered_vectors())
    inputs = torch.tensor([[0, 0, 3, 5, 7, 9], [0, 4, 4, 8, 1, 6], [1, 2, 3, 4, 5, 6]])
    only_cl = model.loss(inputs, torch.zeros_like(inputs).index_fill_(1, torch.tensor([5]), 1))
    only_cl.backward()
    assert model.layers[0].qkv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bad",
    [{"cl_weight": -0.1}, {"substitution_rate": 1.5}, {"temperature": 0}, {"neighbours": 0},
     {"num_heads": 3}, {"typo": 1}],
)
def test_bad_knobs_are_one_line_config_errors(bad):
    from autorec.trainer import split_settings

    with pytest.raises(ConfigError) as err:
        split_settings("sra_cl", bad, "sequential")
    assert "\n" not in str(err.value)
    with pytest.raises(pydantic.ValidationError):
        SRACL.Config(**bad)


def test_dataset_without_item_text_is_refused():
    from autorec.data import load_dataset

    data = load_dataset("synthetic").task("sequential")
    with pytest.raises(DatasetError, match="needs item text"):
        SRACL(data.num_items, data.max_len).prepare(data)


def test_cli_refuses_a_bad_knob_in_one_line():
    result = CliRunner().invoke(app, ["train", "--model", "sra_cl", "--dataset", "synthetic",
                                      "--set", "substitution_rate=2"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "substitution_rate" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_trains_from_the_cli_on_ml100k_and_beats_random_ranking():
    args = ["train", "--model", "sra_cl", "--dataset", "ml-100k", "--json", "--set", "epochs=2",
            "--set", "threads=1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    # Random ranking of 1,682 items scores NDCG@10 of about 0.003; popularity about 0.04.
    assert trained["valid_metrics"]["ndcg@10"] > 0.03
    assert trained["config"]["model"]["cl_weight"] > 0
