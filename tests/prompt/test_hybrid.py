"""llm_hybrid: DeepFM that reads the real llm_ranker's score of a row as one more feature."""

from pathlib import Path

import pytest
import torch

from autorec.data import load_dataset
from autorec.errors import ConfigError
from autorec.lm import cache_folder, load_causal_lm, packaged_gguf
from autorec.models import model_names
from autorec.models.ctr import llm_hybrid
from autorec.models.ctr.llm_hybrid import MISSING, PRESENT, LLMHybrid, LLMHybridConfig
from autorec.models.llm_ranker import LLMRanker, LLMRankerConfig
from autorec.trainer import train_model

LLM = {"history_length": 1, "fields": ["title"]}
SETTINGS = {"llm": LLM, "llm_rows": 4, "llm_train_rows": 8, "embedding_dim": 4, "epochs": 2,
            "hidden_units": [8]}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def lm(tmp_path_factory):
    """The packaged model, from the user's autorec cache when it holds the dequantised copy."""
    home = Path.home() / ".cache" / "autorec"
    if not (cache_folder(packaged_gguf(), home) / "config.json").is_file():
        home = tmp_path_factory.mktemp("lm-cache")
    return load_causal_lm(cache_root=home)


@pytest.fixture
def data(csv_spec):
    return load_dataset(csv_spec).task("ctr")


def model_settings() -> dict:
    return {k: v for k, v in SETTINGS.items() if k != "epochs"}


@pytest.mark.slow  # the real LLM scores 16 rows, DeepFM trains 2 epochs
def test_scored_rows_carry_the_rankers_standardised_logit_and_the_rest_are_missing(data):
    result = train_model("llm_hybrid", data, SETTINGS)
    hybrid: LLMHybrid = result.module.cpu()
    assert 0.0 <= result.metrics["auc"] <= 1.0 and hybrid.scored_rows == {"train": 8, "valid": 4,
                                                                           "test": 4}  # fmt: skip
    rows = llm_hybrid.scored_rows(data, LLMHybridConfig(**model_settings()))
    ranker = LLMRanker(data.features, LLMRankerConfig(**LLM))
    ranker.prepare(data)
    with torch.no_grad():
        train_logits = ranker(data.train.batch(rows["train"]))
        valid_logits = ranker(data.valid.batch(rows["valid"]))
    expected = (valid_logits - train_logits.mean()) / train_logits.std()
    score, flag = hybrid.llm_features(data.valid.batch(rows["valid"]))
    assert torch.allclose(score, expected, atol=1e-4) and (flag == PRESENT).all()
    others = torch.tensor([i for i in range(len(data.valid)) if i not in set(rows["valid"].tolist())])
    score, flag = hybrid.llm_features(data.valid.batch(others))
    assert (score == 0).all() and (flag == MISSING).all()
    # The score is an input the trained model reads: moving it moves scored rows only.
    with torch.no_grad():
        before = hybrid(data.valid.batch(rows["valid"])), hybrid(data.valid.batch(others))
        hybrid._scores += 3.0
        after = hybrid(data.valid.batch(rows["valid"])), hybrid(data.valid.batch(others))
    assert not torch.allclose(before[0], after[0]) and torch.equal(before[1], after[1])


@pytest.mark.slow  # the real LLM
def test_scores_are_computed_once_per_process_for_the_same_template(data, monkeypatch):
    calls = []
    forward = LLMRanker.forward
    monkeypatch.setattr(LLMRanker, "forward", lambda self, batch: calls.append(1) or forward(self, batch))
    monkeypatch.setattr(llm_hybrid, "_CACHE", {})
    settings = model_settings()
    for _ in range(2):
        LLMHybrid(data.features, settings).prepare(data)
    first = len(calls)
    assert first == 3  # one call per split, the second model read the cache
    other = {**settings, "llm": {**LLM, "template": "Seen: {history}\nTarget: {target}\n{yes} or {no}?"}}
    LLMHybrid(data.features, other).prepare(data)
    assert len(calls) == 2 * first


def test_registered_and_bad_llm_settings_are_refused_before_scoring():
    assert "llm_hybrid" in model_names("ctr")
    with pytest.raises(ConfigError, match="template"):
        LLMHybrid(load_dataset("ml-100k").task("ctr").features, {"llm": {"template": "{target}"}})

