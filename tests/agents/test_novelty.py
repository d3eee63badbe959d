"""Decoding away from the parent: the schema bars one hinted field from the parent's value."""

from __future__ import annotations

import json

import pytest
from autorec.agents import CandidateSummary, ProposalContext
from autorec.agents.agent import LLMProposer
from autorec.agents.llm.base import Completion, LLMBackend
from autorec.agents.graph import rounded
from autorec.agents.novelty import excluding
from autorec.agents.prompts import reply_schema
from autorec.space import load_space


@pytest.fixture(scope="module")
def space():
    return load_space("architecture")


def test_each_kind_of_field_is_barred_from_one_value(space):
    schema = reply_schema(space)
    reference = space.reference().model_dump(mode="json")

    model = excluding(schema, "model", reference["model"])["properties"]["model"]
    assert reference["model"] not in model["enum"] and len(model["enum"]) >= 2

    depth = excluding(schema, "mlp_depth", 2)["properties"]["mlp_depth"]
    assert depth == {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 1},
                               {"type": "integer", "minimum": 3, "maximum": 4}],
                     "title": "Mlp Depth", "description": depth["description"]}
    lowest = excluding(schema, "mlp_depth", 0)["properties"]["mlp_depth"]
    assert (lowest["minimum"], lowest["maximum"]) == (1, 4)  # one side left: no anyOf

    lr = excluding(schema, "lr", 0.001)["properties"]["lr"]["anyOf"]
    assert lr[0]["maximum"] < 0.001 < lr[1]["minimum"]
    # The gap is wider than the rounding that makes two values near-duplicates.
    assert rounded(lr[0]["maximum"]) != 0.001 and rounded(lr[1]["minimum"]) != 0.001

    # The rest of the schema is the caller's, untouched.
    assert schema["properties"]["model"]["enum"] == space.schema()["properties"]["model"]["enum"]


def test_fields_that_cannot_be_barred_are_left_alone():
    schema = {"type": "object", "properties": {
        "only": {"enum": ["a"]},
        "maybe": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "null"}]},
        "free": {"type": "number"},
        "flag": {"type": "boolean"},
        "n": {"type": "integer", "minimum": 1, "maximum": 1},
    }}
    assert excluding(schema, "only", "a") is None  # its only value
    assert excluding(schema, "maybe", 3) is None  # optional: null would be a way out anyway
    assert excluding(schema, "free", 1.0) is None  # unbounded
    assert excluding(schema, "n", 1) is None  # nothing else in range
    assert excluding(schema, "missing", 1) is None
    assert excluding(schema, "flag", True)["properties"]["flag"] == {"enum": [False]}
    assert excluding(schema, "flag", 1) is None  # 1 is not true in JSON


class Recorder(LLMBackend):
    name = "local"
    constrained = True

    def __init__(self, text):
        super().__init__("recorder")
        self.text, self.requests = text, []

    def complete(self, messages, schema=None, *, max_tokens=512, temperature=0.0, seed=None):
        self.requests.append((messages, schema))
        return Completion(self.text, self.name, self.model, messages, tokens_in=10, tokens_out=10)


def test_a_refine_call_cannot_write_the_parents_value_of_its_hinted_field(space):
    parent = space.reference().model_dump(mode="json")
    archive = [CandidateSummary(1, parent, "done", 0.0, {"valid_auc": 0.78}, "reference", [], 0)]
    child = {**parent, "lr": 0.003, "rationale": "faster"}
    for differ, barred in ((True, 1), (False, 0)):
        backend = Recorder(json.dumps(child))
        proposer = LLMProposer(space, backend=backend, modes="refine", differ=differ)
        proposer.propose(ProposalContext(space, 1, archive, None, 0), 1)
        messages, schema = backend.requests[0]
        changed = [name for name, prop in schema["properties"].items()
                   if prop != proposer.schema["properties"][name]]
        assert len(changed) == barred
        if differ:
            assert f"{changed[0]} must differ from the parent's value" in messages[-1]["content"]
            assert excluding(proposer.schema, changed[0], parent[changed[0]]) == schema


def test_combine_bars_both_parents_and_restart_pins_its_anchor(space):
    first = space.reference().model_dump(mode="json")
    second = space.validate({**first, "model": "dcnv2", "mlp_depth": 3, "lr": 0.01,
                             "dropout": 0.1}).model_dump(mode="json")
    archive = [CandidateSummary(1, first, "done", 0.0, {"valid_auc": 0.78}, "reference", [], 0),
               CandidateSummary(2, second, "done", 0.01, {"valid_auc": 0.79}, "tpe", [1], 1)]
    reply = json.dumps({**first, "lr": 0.003, "rationale": "mix"})
    for mode in ("combine", "restart"):
        backend = Recorder(reply)
        proposer = LLMProposer(space, backend=backend, modes=mode)
        proposer.propose(ProposalContext(space, 1, archive, None, 0), 1)
        messages, schema = backend.requests[0]
        changed = {name: prop for name, prop in schema["properties"].items()
                   if prop != proposer.schema["properties"][name]}
        if mode == "combine":
            assert len(changed) == 2  # one field barred from each parent's value
        else:  # the hint's value is the schema's only choice
            (name, prop), = changed.items()
            assert f"use {name} = {json.dumps(prop['enum'][0])}" in messages[-1]["content"]
            assert len(prop["enum"]) == 1


@pytest.mark.slow  # the real LLM under the real grammar
def test_the_embedded_model_never_writes_the_barred_value(space):
    from autorec.agents.llm import load_backend

    backend = load_backend("local")
    parent = space.reference().model_dump(mode="json")
    base = reply_schema(space, 48)
    prompt = ("Refine this candidate (copy it, changing what you think helps): "
              + json.dumps(parent))
    for name in ("model", "mlp_depth", "dropout"):
        schema = excluding(base, name, parent[name])
        reply = json.loads(backend.complete([{"role": "user", "content": prompt}], schema,
                                            max_tokens=300).text)
        assert reply[name] != parent[name], name
