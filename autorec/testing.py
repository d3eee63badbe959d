"""A conformance suite for search spaces: a plugin proves itself in five lines.

    from autorec.testing import SpaceConformance

    class TestMySpace(SpaceConformance):
        space_spec = "path/to/my_space.py:MySpace"   # or: space_class = MySpace
        options = {"dataset": "synthetic", "settings": {"epochs": 1}}

pytest collects every `test_*` method of the mixin in the subclass. Set `run_evaluate = False`
for a space whose evaluation is too expensive for a unit test; the other checks still run.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import optuna
import pydantic
import pytest

from autorec.space import (
    InvalidCandidate,
    Objective,
    SearchSpace,
    SpaceOptions,
    SuiteMember,
    candidate_hash,
    load_space,
    load_space_class,
)

SAMPLES = 20


class SpaceConformance:
    """Mixin of checks every search space must pass. Subclass it in a class named Test*."""

    space_spec: ClassVar[str | None] = None
    space_class: ClassVar[type[SearchSpace] | None] = None
    options: ClassVar[dict[str, Any] | SpaceOptions | None] = None
    run_evaluate: ClassVar[bool] = True

    # Building a space may load a dataset: build it once per test class.
    _built: ClassVar[dict[type, SearchSpace]] = {}

    def space_type(self) -> type[SearchSpace]:
        if self.space_class is not None:
            return self.space_class
        if self.space_spec is None:
            pytest.fail(f"{type(self).__name__}: set space_spec or space_class")
        return load_space_class(self.space_spec)

    def make_space(self) -> SearchSpace:
        """A fresh instance of the space under test, with `options`."""
        options = self.options
        if isinstance(options, dict):
            options = SpaceOptions.model_validate(options)
        if self.space_class is None and self.space_spec is not None:
            return load_space(self.space_spec, options)
        return self.space_type()(options)

    @property
    def space(self) -> SearchSpace:
        key = type(self)
        if key not in SpaceConformance._built:
            SpaceConformance._built[key] = self.make_space()
        return SpaceConformance._built[key]

    def sampled(self, count: int = SAMPLES) -> list[pydantic.BaseModel]:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        return [self.space.sample(study.ask()) for _ in range(count)]

    # The checks.

    def test_class_attributes(self) -> None:
        cls = self.space_type()
        assert issubclass(cls, SearchSpace)
        assert isinstance(cls.name, str) and cls.name, "name must be a non-empty string"
        assert isinstance(cls.version, str) and cls.version, "version must be a non-empty string"
        assert isinstance(cls.Candidate, type) and issubclass(cls.Candidate, pydantic.BaseModel)
        assert not getattr(cls, "__abstractmethods__", None)
        assert isinstance(cls.gates, list)

    def test_objectives(self) -> None:
        objectives = self.space.objectives
        assert objectives, "a space needs at least one objective"
        names = [o.name for o in objectives]
        assert len(set(names)) == len(names), f"objective names repeat: {names}"
        for objective in objectives:
            assert isinstance(objective, Objective)
            assert objective.direction in ("max", "min")
            assert math.isfinite(objective.weight) and objective.weight >= 0
        assert any(o.weight > 0 for o in objectives), "every objective has weight 0"

    def test_candidate_forbids_unknown_keys(self) -> None:
        params = self.space.reference().model_dump()
        params["no_such_knob_xyz"] = 1
        with pytest.raises(InvalidCandidate):
            self.space.validate(params)
        with pytest.raises(InvalidCandidate):
            self.space.validate(["not", "an", "object"])  # type: ignore[arg-type]

    def test_schema_is_json(self) -> None:
        schema = self.space.schema()
        json.dumps(schema)
        assert schema.get("additionalProperties") is False, "the Candidate must use extra='forbid'"
        assert schema.get("properties"), "the Candidate has no fields"

    def test_reference_round_trips(self) -> None:
        space = self.space
        reference = space.reference()
        assert isinstance(reference, space.Candidate)
        params = reference.model_dump()
        json.dumps(params)
        again = space.validate(params)
        assert again.model_dump() == params
        assert space.validate(json.loads(json.dumps(params))).model_dump() == params

    def test_sample_gives_valid_candidates(self) -> None:
        space = self.space
        hashes = set()
        for candidate in self.sampled():
            assert isinstance(candidate, space.Candidate)
            params = candidate.model_dump()
            assert space.validate(json.loads(json.dumps(params))).model_dump() == params
            hashes.add(candidate_hash(params))
        assert len(hashes) > 1, f"{SAMPLES} samples gave a single candidate"

    def test_sample_is_reproducible(self) -> None:
        first = [c.model_dump() for c in self.sampled(5)]
        assert first == [c.model_dump() for c in self.sampled(5)]

    def test_suite(self) -> None:
        suite = self.space.suite()
        assert suite, "the suite is empty"
        keys = []
        for member in suite:
            assert isinstance(member, SuiteMember)
            assert member.model and member.dataset and member.task
            assert SuiteMember.from_dict(json.loads(json.dumps(member.to_dict()))) == member
            keys.append(member.key)
        assert len(set(keys)) == len(keys), f"suite members repeat: {keys}"

    def test_describe_mentions_every_field(self) -> None:
        text = self.space.describe()
        assert isinstance(text, str) and text.strip()
        fields = self.space.Candidate.model_fields
        missing = [
            name for name, info in fields.items() if (info.alias or name) not in text
        ]
        assert not missing, f"describe() does not mention {missing}"

    def test_candidate_hash_is_stable(self) -> None:
        params = self.space.reference().model_dump()
        reordered = dict(reversed(list(params.items())))
        assert candidate_hash(params) == candidate_hash(reordered)
        assert candidate_hash(params) == candidate_hash(self.make_space().reference().model_dump())
        assert candidate_hash(params) == candidate_hash(json.loads(json.dumps(params)))

    def test_evaluate_reference(self) -> None:
        if not self.run_evaluate:
            pytest.skip("run_evaluate = False")
        space = self.space
        member = space.suite()[0]
        reports: list[dict[str, float]] = []
        metrics = space.evaluate(space.reference(), member, reports.append)
        assert isinstance(metrics, dict)
        for name in [o.name for o in space.objectives] + list(space.gates):
            assert name in metrics, f"evaluate() returned no '{name}'"
            value = float(metrics[name])
            assert math.isfinite(value), f"'{name}' is {value}"
        for report in reports:
            assert isinstance(report, dict)
