from __future__ import annotations

import pickle

import optuna
import pytest

from autorec.data import load_dataset
from autorec.errors import ConfigError
from autorec.search_spaces.embedding_dims import (
    LADDER,
    EmbeddingDimsCandidate,
    EmbeddingDimsSpace,
    candidate_class,
)
from autorec.space import InvalidCandidate, SpaceOptions, candidate_hash, load_space_class

FIELDS = [f"f{i}" for i in range(12)]  # the synthetic CTR dataset's fields


def space(**settings) -> EmbeddingDimsSpace:
    return EmbeddingDimsSpace(SpaceOptions(dataset="synthetic", settings=settings))


def test_candidate_has_one_ladder_width_per_dataset_field():
    s = space()
    assert list(s.Candidate.model_fields) == FIELDS
    assert s.reference().model_dump() == {name: 16 for name in FIELDS}
    assert s.schema()["properties"]["f0"]["enum"] == list(LADDER)
    # The class attribute stays the field-less base the instance schemas derive from.
    assert load_space_class("embedding_dims").Candidate is EmbeddingDimsCandidate
    assert issubclass(s.Candidate, EmbeddingDimsCandidate)


def test_off_ladder_widths_and_unknown_fields_are_rejected():
    s = space()
    with pytest.raises(InvalidCandidate, match=r"f3: Input should be 1, 2, 4, 8, 16, 32 or 64"):
        s.validate({**s.reference().model_dump(), "f3": 12})
    with pytest.raises(InvalidCandidate, match="user_id"):
        s.validate({"user_id": 8})


def test_suite_is_every_ctr_model_unless_restricted():
    assert [m.model for m in space().suite()] == ["fm", "deepfm", "dcnv2", "din", "dare"]
    members = space(models=["dare", "fm"]).suite()
    assert [m.key for m in members] == ["dare/synthetic/ctr", "fm/synthetic/ctr"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"settings": {"max_epochs": 2}}, "unknown setting"),
        ({"settings": {"models": ["sasrec"]}}, "ctr models"),
        ({"settings": {"epochs": 0}}, "epochs"),
        ({"task": "sequential"}, "ctr task only"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        EmbeddingDimsSpace(SpaceOptions(dataset="synthetic", **options))


def test_sample_draws_from_the_ladder():
    s = space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(1))
    drawn = [s.sample(study.ask()).model_dump() for _ in range(10)]
    assert all(set(d) == set(FIELDS) and set(d.values()) <= set(LADDER) for d in drawn)
    assert len({candidate_hash(d) for d in drawn}) == 10


def test_describe_lists_fields_with_vocabularies():
    text = space().describe()
    rows = {f.name: f.vocab_size for f in load_dataset("synthetic").task("ctr").features}
    for name, size in rows.items():
        assert f"- {name}: categorical, {size:,} rows" in text
    assert "embedding_params" in text and "auc" in text


def test_evaluate_passes_the_widths_to_the_model():
    s = space(epochs=1, threads=1, models=["fm"])
    member = s.suite()[0]
    rows = sum(f.vocab_size for f in load_dataset("synthetic").task("ctr").features)
    wide = s.evaluate(s.reference(), member, lambda m: None)
    narrow = s.evaluate(s.validate({name: 8 for name in FIELDS}), member, lambda m: None)
    assert wide["embedding_params"] - narrow["embedding_params"] == 8 * rows
    assert {"auc", "embedding_params", "params", "valid_auc"} <= set(wide)


def test_awkward_field_names_use_aliases():
    cls = candidate_class(("user id", "model_x", "json", "item_id"))
    candidate = cls.model_validate({"user id": 4, "model_x": 2, "json": 1, "item_id": 64})
    assert candidate.model_dump() == {"user id": 4, "model_x": 2, "json": 1, "item_id": 64}
    assert set(cls.model_json_schema()["properties"]) == {"user id", "model_x", "json", "item_id"}
    assert pickle.loads(pickle.dumps(candidate)) == candidate


def test_space_pickles_and_rebuilds_its_candidate():
    s = space(models=["fm"])
    clone = pickle.loads(pickle.dumps(s))
    assert clone.Candidate is s.Candidate
    assert pickle.loads(pickle.dumps(s.reference())) == s.reference()
