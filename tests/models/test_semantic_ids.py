"""Semantic-ID generative retrieval: the residual k-means codes, the constrained beam search that
ranks with them, and that the model learns on ML-100K through `autorec train`."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from autorec.cli import app
from autorec.errors import ConfigError
from autorec.models import model_class
from autorec.models.sequential.rq_kmeans import disambiguation_codes, residual_kmeans
from autorec.models.sequential.semantic_ids import SemanticIds, SemanticIdsConfig
from autorec.trainer import _SequentialLoop, split_settings

from tests.models.test_sequential_models import NUM_ITEMS, synthetic_data


def item_vectors(count: int = 400, dim: int = 16, seed: int = 0) -> torch.Tensor:
    """Gaussian points, the last five repeating the first five (items with identical text)."""
    points = torch.randn(count, dim, generator=torch.Generator().manual_seed(seed))
    points[count - 5 :] = points[:5]
    return points


def tiny_model(beam: int = 10) -> SemanticIds:
    torch.manual_seed(0)
    config = SemanticIdsConfig(hidden_dim=16, codebook_size=8, levels=2, beam=beam)
    return SemanticIds(NUM_ITEMS, 20, config)


def hand_made_codes() -> torch.Tensor:
    """NUM_ITEMS items on 2 levels of 4 codes, then the code that tells a shared pair apart."""
    items = torch.arange(NUM_ITEMS)
    codes = torch.stack([items % 4, (items // 4) % 4, items // 16], dim=1)
    return torch.cat([torch.zeros(1, 3, dtype=torch.long), codes])


# -- the quantiser ------------------------------------------------------------------------------


def test_every_item_gets_a_unique_tuple_and_the_same_seed_gives_the_same_codes():
    vectors = item_vectors()
    first = residual_kmeans(vectors, codebook_size=16, levels=2, seed=3)
    again = residual_kmeans(vectors, codebook_size=16, levels=2, seed=3)
    assert first.codes.shape == (400, 3)
    assert torch.unique(first.codes, dim=0).shape[0] == 400
    assert torch.equal(first.codes, again.codes)
    assert not torch.equal(first.codes, residual_kmeans(vectors, 16, 2, seed=4).codes)
    # Duplicated vectors share their cluster codes; only the last code tells them apart.
    assert torch.equal(first.codes[:5, :2], first.codes[-5:, :2])
    assert (first.codes[:5, 2] != first.codes[-5:, 2]).all()
    assert first.codes.min() >= 0 and first.codes.max() < 16


def test_reconstruction_error_falls_with_depth():
    vectors = item_vectors()
    quantised = residual_kmeans(vectors, codebook_size=8, levels=4, seed=0)
    errors = quantised.errors
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[0] < float((vectors**2).sum(dim=1).mean())
    for depth, error in enumerate(errors, start=1):
        gap = ((vectors - quantised.reconstruct(depth)) ** 2).sum(dim=1).mean()
        assert abs(float(gap) - error) < 1e-3 * error


def test_disambiguation_numbers_each_shared_tuple_in_row_order():
    codes = torch.tensor([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    assert disambiguation_codes(codes).tolist() == [0, 0, 1, 2, 0]


def test_too_many_items_on_one_tuple_is_refused_in_one_line():
    same = torch.ones(20, 4)  # twenty items with the same text
    with pytest.raises(ConfigError, match="20 items share one code tuple.*raise codebook_size"):
        residual_kmeans(same, codebook_size=8, levels=2, seed=0)


# -- decoding -----------------------------------------------------------------------------------


HISTORY = torch.tensor([[0, 0, 0, 4, 9, 2], [0, 0, 0, 0, 0, 7], [1, 2, 3, 4, 5, 6]])


def test_sequence_probabilities_form_a_distribution_over_items():
    model = tiny_model()
    model.set_codes(hand_made_codes())
    model.eval()
    exact = model.item_log_probs(HISTORY)
    assert torch.isneginf(exact[:, 0]).all()
    assert torch.allclose(exact[:, 1:].exp().sum(dim=1), torch.ones(3), atol=1e-5)


def test_a_beam_as_wide_as_the_catalog_is_exact_scoring():
    model = tiny_model(beam=NUM_ITEMS)
    model.set_codes(hand_made_codes())
    model.eval()
    items, logp = model.beam_search(HISTORY)
    exact = model.item_log_probs(HISTORY)
    for row, history in enumerate(HISTORY):
        unseen = sorted(set(range(1, NUM_ITEMS + 1)) - set(history.tolist()))
        found = items[row][torch.isfinite(logp[row])]
        assert sorted(found.tolist()) == unseen  # every item not in the history, once
        assert torch.allclose(logp[row][: len(found)], exact[row, found], atol=1e-5)
        assert int(found[0]) == max(unseen, key=lambda item: float(exact[row, item]))


def test_a_repeated_target_is_found_although_the_beam_skips_the_history():
    """On sequences that cycle through a few items the next item is usually one already seen:
    the exactly scored history finds it."""
    model = trained_tiny_model()
    data = synthetic_data(num_users=120)
    loop = _SequentialLoop(model, data, torch.device("cpu"))
    repeated = [int(t) in s.tolist() for t, s in zip(data.test_target, data.test_seen)]
    assert sum(repeated) > len(repeated) / 2
    assert loop.evaluate("test", 512)["hr@10"] > 0.5  # 10 of 50 items at random: 0.2


def test_a_narrow_beam_returns_valid_unseen_items_with_their_exact_scores():
    model = trained_tiny_model()
    items, logp = model.beam_search(HISTORY)
    exact = model.item_log_probs(HISTORY)
    assert items.shape == (3, 10) and torch.isfinite(logp).all()
    for row, history in enumerate(HISTORY):
        assert len(set(items[row].tolist())) == 10
        assert set(items[row].tolist()) <= set(range(1, NUM_ITEMS + 1)) - set(history.tolist())
        assert (logp[row][:-1] >= logp[row][1:]).all()  # best first
        assert torch.allclose(logp[row], exact[row, items[row]], atol=1e-5)
        masked = exact[row].clone()
        masked[history] = float("-inf")
        assert int(items[row, 0]) == int(masked.argmax())


def test_score_ranks_beam_items_above_all_others_and_scores_the_history_exactly():
    model = trained_tiny_model()
    scores = model.score(HISTORY)
    items, logp = model.beam_search(HISTORY)
    exact = model.item_log_probs(HISTORY)
    assert scores.shape == (3, NUM_ITEMS + 1)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    for row, history in enumerate(HISTORY):
        assert torch.allclose(scores[row, items[row]], logp[row])
        seen = history[history != 0]
        assert torch.allclose(scores[row, seen], exact[row, seen], atol=1e-5)
        rest = torch.ones(NUM_ITEMS + 1, dtype=torch.bool)
        rest[items[row]] = rest[seen] = rest[0] = False
        assert scores[row, rest].max() < logp[row].min()


def test_training_loss_is_the_negative_log_probability_scoring_uses():
    model = trained_tiny_model()
    inputs = torch.tensor([[0, 0, 8, 1, 4, 4], [0, 3, 9, 22, 7, 1]])
    targets = torch.tensor([[0, 0, 0, 0, 0, 30], [0, 0, 0, 0, 0, 2]])
    exact = model.item_log_probs(inputs)
    expected = -(exact[0, 30] + exact[1, 2]) / 2
    assert torch.allclose(model.loss(inputs, targets), expected, atol=1e-5)
    empty = model.loss(inputs, torch.zeros_like(targets))
    empty.backward()
    assert empty.item() == 0.0


def test_a_loaded_state_dict_brings_its_codes_and_trie():
    model = trained_tiny_model()
    fresh = SemanticIds(NUM_ITEMS, 20, model.config)
    with pytest.raises(ConfigError, match="call prepare"):
        fresh.score(HISTORY)
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    assert torch.equal(fresh.score(HISTORY), model.score(HISTORY))


_TRAINED: list[SemanticIds] = []


def trained_tiny_model() -> SemanticIds:
    """A tiny model trained on sequences that follow a planted successor rule (cached)."""
    if not _TRAINED:
        data = synthetic_data(num_users=120)
        model = tiny_model()
        model.build_codes(torch.randn(NUM_ITEMS, 8, generator=torch.Generator().manual_seed(0)), 0)
        loop = _SequentialLoop(model, data, torch.device("cpu"))
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        generator = torch.Generator().manual_seed(0)
        model.train()
        first = loop.train_epoch(optimiser, 32, generator)
        for _ in range(14):
            last = loop.train_epoch(optimiser, 32, generator)
        assert last < first - 1.0  # it learns the rule
        model.eval()
        _TRAINED.append(model)
    return _TRAINED[0]


# -- settings and the suite ---------------------------------------------------------------------


def test_registry_entry_and_settings_are_checked():
    assert model_class("semantic_ids") is SemanticIds
    settings = {"codebook_size": 32, "levels": 2, "beam": 20, "hidden_dim": 32}
    model_config, _ = split_settings("semantic_ids", settings, "sequential")
    assert (model_config.codebook_size, model_config.levels, model_config.beam) == (32, 2, 20)
    with pytest.raises(ConfigError, match="beam"):
        split_settings("semantic_ids", {"beam": 5}, "sequential")
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        split_settings("semantic_ids", {"hidden_dim": 30, "num_heads": 4}, "sequential")


def test_a_dataset_without_item_text_is_refused_in_one_line():
    result = CliRunner().invoke(
        app, ["train", "--model", "semantic_ids", "--dataset", "synthetic", "--set", "epochs=1"]
    )
    assert result.exit_code == 2, result.output
    assert "error: semantic_ids needs item text" in result.output


def test_sequential_item_ids_name_the_same_movies_as_the_catalog():
    """The sequential task and the item catalog share one item vocabulary on ML-100K."""
    from autorec.data import load_dataset
    from autorec.data.catalog import catalog_for_label

    dataset = load_dataset("ml-100k")
    data = dataset.task("sequential")
    catalog = catalog_for_label(data.dataset)
    assert catalog.num_items == data.num_items + 1
    assert catalog.value(1, "title") == "Toy Story" and catalog.value(50, "title") == "Star Wars"
    # User 1 (the first sequence): the titles of their items by sequential id are the titles of
    # the movies the raw rating file lists for them.
    raw = dataset.interactions()
    rated = raw.events.loc[raw.events["user_id"] == raw.events["user_id"].min(), "item_id"]
    expected = sorted(raw.items.loc[rated, "title"].tolist())
    sequence = [*data.train[0].tolist(), int(data.valid_target[0]), int(data.test_target[0])]
    assert sorted(catalog.value(item, "title") for item in sequence) == expected


@pytest.mark.slow
def test_a_short_training_on_ml100k_beats_random_ranking():
    result = CliRunner().invoke(app, [
        "train", "--model", "semantic_ids", "--dataset", "ml-100k", "--json",
        "--set", "epochs=2", "--set", "hidden_dim=32", "--set", "num_blocks=1",
        "--set", "beam=20", "--set", "lr=0.01", "--set", "threads=1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    # A random ranking of ML-100K's ~1,600 unseen items scores NDCG@10 = sum over the top ten
    # ranks of 1 / log2(rank + 1), divided by 1,600: about 0.003. Two epochs reach several
    # times that.
    assert payload["valid_metrics"]["ndcg@10"] > 0.01
    assert payload["params"] < 60_000


def test_the_architecture_space_searches_codebook_size_and_levels():
    from autorec.search_spaces.architecture import ArchitectureSpace
    from autorec.space import SpaceOptions

    space = ArchitectureSpace(SpaceOptions(dataset="ml-100k", task="sequential"))
    candidate = space.Candidate.model_validate(
        {"model": "semantic_ids", "embedding_dim": 32, "codebook_size": 128, "levels": 2}
    )
    settings = candidate.trainer_settings()
    assert (settings["codebook_size"], settings["levels"], settings["hidden_dim"]) == (128, 2, 32)
    split_settings("semantic_ids", settings, "sequential")
    # Other families neither read nor store the codebook knobs, so their hashes stay as they were.
    sasrec = space.Candidate.model_validate({"model": "sasrec", "codebook_size": 128})
    assert "codebook_size" not in sasrec.model_dump()
    assert "codebook_size" not in sasrec.trainer_settings()
