"""RecSAE (`autorec explain`): the sparse autoencoder, latent naming, and the command on an
archived SASRec candidate retrained on real ML-100K."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from autorec.data.catalog import ItemCatalog
from autorec.explain import ExplainError, SAEConfig, catalog_labels, name_latents, train_sae
from autorec.explain.hidden import HiddenStateProbe
from autorec.explain.sae import explained_variance
from autorec.models.sequential.hstu import HSTU, HSTUConfig
from autorec.models.sequential.popularity import Popularity
from autorec.models.sequential.sasrec import SASRec, SASRecConfig

runner = CliRunner()

ML100K_GENRES = {
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
}
# A tiny SASRec so the command's retraining takes seconds; the run's seed is 5.
SASREC = {"model": "sasrec", "embedding_dim": 16, "num_blocks": 1, "num_heads": 1, "dropout": 0.2,
          "lr": 5e-3, "batch_size": 128, "epochs": 8, "weight_decay": 0.0}
SEQ_SETTINGS = {"seed": 5, "threads": 1}
FAST_SAE = ("--sae-epochs", "8", "--expansion", "4", "--max-sequences", "8000")


def toy_catalog(num_items: int, genres: bool = True, titles: bool = True) -> ItemCatalog:
    """Items cycle through four genres; every seventh is also a Drama."""
    names = ["Comedy", "Drama", "Horror", "Action"]
    values = {}
    if titles:
        values["title"] = ("", *(f"Movie {i}" for i in range(1, num_items + 1)))
    if genres:
        values["genres"] = ("", *(names[i % 4] + (", Drama" if i % 7 == 0 else "")
                                  for i in range(1, num_items + 1)))
    return ItemCatalog("toy", tuple(values), values)


def planted(seed: int = 0, rows: int = 3000, dim: int = 24, items: int = 120):
    """Sequences of ten items, a fifth of them Horror only; hidden states are noise plus one
    direction for exactly the Horror sequences."""
    generator = torch.Generator().manual_seed(seed)
    catalog = toy_catalog(items)
    horror = torch.tensor([i for i in range(1, items + 1) if "Horror" in catalog.value(i, "genres")])
    recent = torch.randint(1, items + 1, (rows, 10), generator=generator)
    is_horror = torch.rand(rows, generator=generator) < 0.2
    recent[is_horror] = horror[torch.randint(0, len(horror), (int(is_horror.sum()), 10),
                                             generator=generator)]
    direction = torch.randn(dim, generator=generator)
    direction /= direction.norm()
    hidden = torch.randn(rows, dim, generator=generator) + 6 * is_horror.float()[:, None] * direction
    return catalog, recent, hidden, direction


def test_the_sae_reconstructs_far_better_than_the_mean_with_at_most_k_active_latents():
    # Rows that are sparse mixtures of 48 atoms in 16 dimensions: what an SAE should recover.
    generator = torch.Generator().manual_seed(1)
    atoms = torch.randn(48, 16, generator=generator)
    weights = torch.rand(2000, 48, generator=generator) * (torch.rand(2000, 48, generator=generator) < 0.06)
    rows = weights @ atoms + 3.0
    fit = train_sae(rows, SAEConfig(expansion=4, k=6, epochs=25, seed=0))
    codes = fit.sae.encode(rows).detach()
    reconstruction = fit.sae.decode(codes).detach()

    mean_error = (rows - rows.mean(dim=0)).pow(2).sum()
    assert (rows - reconstruction).pow(2).sum() < 0.25 * mean_error
    assert fit.explained_variance == pytest.approx(explained_variance(rows, reconstruction), abs=1e-5)
    assert fit.explained_variance > 0.75
    active = (codes > 0).sum(dim=1)
    assert int(active.max()) <= 6 and int(active.min()) >= 1  # TopK: never more than k
    assert torch.allclose(fit.sae.decoder.norm(dim=1), torch.ones(fit.sae.width), atol=1e-4)
    assert fit.losses[-1] < fit.losses[0]


def test_a_latent_planted_for_horror_sequences_is_named_horror_with_high_confidence():
    catalog, recent, hidden, direction = planted()
    labels = catalog_labels(catalog, 120)
    assert labels.kind == "genre"
    fit = train_sae(hidden, SAEConfig(expansion=4, k=4, epochs=20, seed=0))
    named = name_latents(fit.sae.encode(hidden).detach(), recent, labels, seed=0)

    best = named[0]  # most confident first
    assert best.name == "Horror" and best.labels == ["Horror"]
    assert best.confidence >= 0.9
    assert best.top_share > 0.9 and best.base_share < 0.5
    assert all(t.startswith("Movie ") for t in best.top_titles)
    # That latent is the planted direction, and no other name is confidently claimed.
    assert float(fit.sae.decoder[best.latent].detach() @ direction) > 0.8
    assert all(n.name == "Horror" for n in named if n.confidence >= 0.9)
    assert [n.confidence for n in named] == sorted((n.confidence for n in named), reverse=True)


def test_latents_of_noise_get_no_confident_name():
    catalog, recent, _, _ = planted()
    noise = torch.randn(len(recent), 24, generator=torch.Generator().manual_seed(3))
    fit = train_sae(noise, SAEConfig(expansion=4, k=4, epochs=10, seed=0))
    named = name_latents(fit.sae.encode(noise).detach(), recent, catalog_labels(catalog, 120))
    assert named, "every latent fires on enough sequences to be named"
    assert max(n.confidence for n in named) < 0.75  # a lucky first half fails the second


def test_without_genres_latents_are_named_by_titles_and_without_either_it_says_so():
    # A direction planted for exactly the sequences that hold Movie 7 among their recent items.
    generator = torch.Generator().manual_seed(2)
    recent = torch.randint(1, 121, (3000, 10), generator=generator)
    recent[recent == 7] = 8
    holds = torch.rand(3000, generator=generator) < 0.2
    recent[holds, 3] = 7
    direction = torch.randn(24, generator=generator)
    hidden = torch.randn(3000, 24, generator=generator) + 6 * holds.float()[:, None] * direction / direction.norm()
    titles_only = catalog_labels(toy_catalog(120, genres=False), 120)
    assert titles_only.kind == "title"
    fit = train_sae(hidden, SAEConfig(expansion=4, k=4, epochs=20, seed=0))
    named = name_latents(fit.sae.encode(hidden).detach(), recent, titles_only)
    assert named[0].name == "Movie 7" and named[0].confidence >= 0.9
    assert named[0].top_titles[0] == "Movie 7"

    with pytest.raises(ExplainError, match="neither item genres nor titles"):
        catalog_labels(toy_catalog(120, genres=False, titles=False), 120)
    with pytest.raises(ExplainError, match="do not describe the same items"):
        catalog_labels(toy_catalog(120), 99)


@pytest.mark.parametrize("model", [
    SASRec(50, 8, SASRecConfig(hidden_dim=16, num_blocks=1, dropout=0.0)),
    HSTU(50, 8, HSTUConfig(hidden_dim=16, num_blocks=1, dropout=0.0)),
], ids=["sasrec", "hstu"])
def test_scores_rebuilt_from_the_hidden_state_are_the_models_own(model):
    histories = torch.tensor([[0, 0, 0, 3, 9, 4, 7, 1], [5, 6, 7, 8, 9, 10, 11, 12]])
    probe = HiddenStateProbe(model, model.name)
    hidden = probe.represent(histories)
    assert hidden.shape == (2, 16)
    rebuilt = probe.scores_from_hidden(hidden, check=histories)
    assert rebuilt is not None
    torch.testing.assert_close(rebuilt, model.eval().score(histories))


def test_a_model_without_a_hidden_state_is_refused():
    with pytest.raises(ExplainError, match="exposes no hidden state"):
        HiddenStateProbe(Popularity(50, 8), "popularity")


# ----------------------------------------------------------------------------------------------
# The command, on a real archive


ARCHIVED_VALID_NDCG = 0.0615  # what run "seq" stored for candidate 1


@pytest.fixture(scope="module")
def archive_db(tmp_path_factory) -> tuple[str, float]:
    """Run "seq" (architecture, ml-100k sequential): a done SASRec #1, a failed #2. Run "ctr":
    DeepFM #3. Run "syn" (sequential on the synthetic dataset, which has no item text): SASRec #4."""
    valid_ndcg = ARCHIVED_VALID_NDCG
    path = tmp_path_factory.mktemp("explain") / "runs.db"
    with Archive(path) as a:
        seq = a.create_run("architecture", "tpe", name="seq", space_version="1", config={
            "space": "architecture", "dataset": "ml-100k", "task": "sequential",
            "space_settings": SEQ_SETTINGS})
        ref = a.add_candidate(seq.id, SASREC, operator="reference")
        (evaluation,) = a.add_evaluations(ref.id, [("candidate", "ml-100k", "sequential")])
        a.start_evaluation(evaluation.id)
        a.finish_evaluation(evaluation.id, "done", metrics={"valid_ndcg@10": valid_ndcg,
                                                            "ndcg@10": 0.058})
        a.set_candidate_result(ref.id, "done", fitness=0.0,
                               objectives={"valid_ndcg@10": valid_ndcg, "params": 3e4})
        a.set_reference_candidate(seq.id, ref.id)
        failed = a.add_candidate(seq.id, {**SASREC, "lr": 0.9}, operator="mutate")
        a.set_candidate_result(failed.id, "failed",
                               error="Traceback ...\nTrainingError: training loss became nan")

        ctr = a.create_run("architecture", "tpe", name="ctr", space_version="1", config={
            "space": "architecture", "dataset": "ml-100k", "task": "ctr"})
        deepfm = a.add_candidate(ctr.id, {"model": "deepfm"}, operator="reference")
        a.set_candidate_result(deepfm.id, "done", fitness=0.0, objectives={"valid_auc": 0.78})

        syn = a.create_run("architecture", "tpe", name="syn", space_version="1", config={
            "space": "architecture", "dataset": "synthetic", "task": "sequential"})
        plain = a.add_candidate(syn.id, SASREC, operator="reference")
        a.set_candidate_result(plain.id, "done", fitness=0.0, objectives={"valid_ndcg@10": 0.1})
        assert (ref.id, failed.id, deepfm.id, plain.id) == (1, 2, 3, 4)
    return str(path), valid_ndcg


@pytest.mark.slow
def test_explain_names_latents_of_an_archived_sasrec(archive_db):
    import autorec

    db, archived = archive_db
    settings = {k: v for k, v in SASREC.items() if k not in ("model", "embedding_dim")}
    trained = autorec.train("sasrec", "ml-100k", hidden_dim=16, **settings, **SEQ_SETTINGS)
    result = runner.invoke(app, ["explain", "1", "--db", db, "--json", "--top", "5", *FAST_SAE])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["model"], report["dataset"], report["run"], report["seed"]) == (
        "sasrec", "ml-100k", "seq", 5)
    assert "retrained" in report["retrained"] and "seed 5" in report["retrained"]
    # Retraining from the stored settings and seed rebuilds the model a training with those
    # settings gives, to the last digit; the archived figure is shown beside it.
    assert report["retrained_valid"]["valid_ndcg@10"] == trained.valid_metrics["ndcg@10"]
    assert report["archived_valid"] == {"valid_ndcg@10": archived}
    assert (report["hidden_dim"], report["latents"], report["named_by"]) == (16, 64, "genre")
    assert 0.5 < report["explained_variance"] <= 1.0
    ndcg = report["test_ndcg"]
    assert ndcg["model"] > ndcg["mean_state"]  # the state carries what the model ranks by
    assert abs(ndcg["reconstruction"] - ndcg["model"]) < ndcg["model"] - ndcg["mean_state"]

    listed = report["interpretable"]
    assert 1 <= len(listed) <= 5 and report["interpretable_latents"] >= len(listed)
    for latent in listed:
        assert set(latent["labels"]) <= ML100K_GENRES
        assert latent["confidence"] >= report["min_confidence"] and latent["top_titles"]
        assert 0 < latent["frequency"] <= 1
    assert [x["confidence"] for x in listed] == sorted((x["confidence"] for x in listed), reverse=True)


@pytest.mark.slow
def test_explain_prints_a_table_of_named_latents(archive_db):
    db, _ = archive_db
    result = runner.invoke(app, ["explain", "1", "--db", db, "--top", "3", *FAST_SAE],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "weights are not archived" in out and "retrained" in out
    assert "of the hidden states' variance explained" in out
    assert "interpretable latents, named by genre" in out
    table = out[out.index("interpretable latents"):]
    assert any(genre in table for genre in ML100K_GENRES)


@pytest.mark.parametrize("candidate, message", [
    ("99", "no candidate 99"),
    ("2", "candidate 2 is failed (TrainingError: training loss became nan)"),
    ("3", "candidate 3 is a deepfm (ctr) model"),
    ("4", "dataset 'synthetic' has neither item genres nor titles"),
])
def test_what_cannot_be_explained_is_one_error_line(archive_db, candidate, message):
    db, _ = archive_db
    result = runner.invoke(app, ["explain", candidate, "--db", db])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def test_the_api_refuses_a_bad_setting_before_opening_the_archive_and_an_unknown_id(archive_db, tmp_path):
    import autorec
    from autorec.archive.errors import NotFoundError
    from autorec.errors import ConfigError

    missing = tmp_path / "none.db"
    with pytest.raises(ConfigError, match="explain: k:"):
        autorec.explain_candidate(1, db=missing, k=0)
    assert not missing.exists()
    with pytest.raises(NotFoundError, match="no candidate 42"):
        autorec.explain_candidate(42, db=archive_db[0])
