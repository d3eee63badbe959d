"""Prompt synthesis: the templates, the retrieved context, and the length caps."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from autorec.agents import CandidateSummary
from autorec.agents.graph import ArchiveGraph
from autorec.agents.prompts import (
    MODES,
    Limits,
    PromptRequest,
    build_messages,
    compact_schema,
    estimate_tokens,
    reply_schema,
    template,
)

from autorec.space import load_space


@pytest.fixture(scope="module")
def space():
    return load_space("architecture")


def params(space, **changes):
    return space.validate({**space.reference().model_dump(mode="json"), **changes}).model_dump(
        mode="json"
    )


def summary(i, p, status="done", fitness=0.0, parents=(), operator="tpe", error=None, auc=0.75):
    objectives = {"auc": auc, "params": 12345.0} if status == "done" else {}
    return CandidateSummary(i, p, status, fitness, objectives, operator, list(parents), 1, error)


def archive_of(space):
    return [
        summary(1, params(space), fitness=0.0, operator="reference"),
        summary(
            2, params(space, lr=0.003), fitness=0.02, parents=[1], operator="llm:refine", auc=0.76
        ),
        summary(
            3, params(space, lr=0.0005), fitness=-0.01, parents=[1], operator="mutate", auc=0.74
        ),
        summary(
            4, params(space, model="fm", embedding_dim=8), fitness=0.05, operator="tpe", auc=0.78
        ),
        summary(
            5,
            params(space, epochs=9),
            status="failed",
            fitness=None,
            parents=[2],
            error="TrainingError: NaN loss in epoch 3",
        ),
        summary(
            6,
            {"model": "gpt"},
            status="invalid",
            fitness=None,
            operator="llm:restart",
            error="model: Input should be 'fm', 'deepfm', 'dcnv2', 'din' or 'dare'",
        ),
    ]


def text_of(messages):
    return "\n".join(m["content"] for m in messages)


def first_line(mode):
    source = resources.files("autorec.agents.prompt_templates").joinpath(f"{mode}.txt").read_text()
    return source.splitlines()[0]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_uses_its_own_template(space, mode):
    graph = ArchiveGraph(archive_of(space), space.schema())
    parents = {
        "refine": [graph.nodes[2]],
        "compare": [graph.nodes[1]],
        "combine": [graph.nodes[4], graph.nodes[2]],
        "restart": [],
    }[mode]
    messages = build_messages(space, PromptRequest(mode, parents), graph)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].startswith(first_line(mode))
    for other in MODES:
        if other != mode:
            assert first_line(other) not in text_of(messages)
    # Everything the model needs to answer: the space, the objectives, the schema, the format.
    system = messages[0]["content"]
    assert space.describe().splitlines()[0] in system
    assert "auc: maximise" in system and "params: minimise" in system
    assert compact_schema(reply_schema(space)) in system
    assert '"rationale"' in system


def test_refine_prompt_carries_the_parent_its_children_and_the_failures(space):
    graph = ArchiveGraph(archive_of(space), space.schema())
    parent = graph.nodes[2]
    user = build_messages(space, PromptRequest("refine", [parent]), graph)[1]["content"]
    assert json.dumps(parent.params, separators=(",", ":")) in user
    assert "fitness 0.02" in user and "auc 0.76" in user
    assert "TrainingError: NaN loss in epoch 3" in user  # a failure's error text
    assert "model: Input should be 'fm'" in user
    assert "#5 via" in user and "epochs 5 -> 9" in user  # what was tried from this parent
    assert "#4 " in user  # the global top-k
    assert "Nearest neighbours" in user


def test_compare_prompt_says_what_helped_and_what_hurt(space):
    graph = ArchiveGraph(archive_of(space), space.schema())
    user = build_messages(space, PromptRequest("compare", [graph.nodes[1]]), graph)[1]["content"]
    assert "#2 via llm:refine: changed lr 0.001 -> 0.003 -> fitness 0.02" in user
    assert "(helped: +0.02 vs parent)" in user
    assert "#3 via mutate: changed lr 0.001 -> 0.0005" in user and "(hurt: -0.01 vs parent)" in user


def test_combine_prompt_shows_both_parents_and_their_differences(space):
    graph = ArchiveGraph(archive_of(space), space.schema())
    a, b = graph.nodes[4], graph.nodes[2]
    user = build_messages(space, PromptRequest("combine", [a, b]), graph)[1]["content"]
    assert json.dumps(a.params, separators=(",", ":")) in user
    assert json.dumps(b.params, separators=(",", ":")) in user
    assert "- model fm (A) vs deepfm (B)" in user


def test_restart_prompt_carries_no_archive_content(space):
    graph = ArchiveGraph(archive_of(space), space.schema())
    messages = build_messages(
        space, PromptRequest("restart", [], hint="For variety, use lr = 0.01"), graph
    )
    text = text_of(messages)
    assert "For variety, use lr = 0.01" in text
    for needle in ("#1", "#2", "#4", "NaN loss", "fitness 0.02"):
        assert needle not in text
    assert messages == build_messages(
        space, PromptRequest("restart", [], hint="For variety, use lr = 0.01"), ArchiveGraph([])
    )


def test_sections_are_capped_and_the_prompt_stays_under_its_cap(space):
    reference = params(space)
    archive = [summary(1, reference, fitness=0.0, operator="reference")]
    for i in range(2, 80):
        archive.append(
            summary(
                i,
                params(space, lr=0.0001 * i, embedding_dim=4 + i),
                fitness=i / 100,
                parents=[1],
                operator="tpe",
            )
        )
    for i in range(80, 100):
        archive.append(
            summary(
                i,
                params(space, batch_size=16 + i),
                status="failed",
                fitness=None,
                parents=[1],
                error=f"error {i}: " + "very long traceback " * 200,
            )
        )
    graph = ArchiveGraph(archive, space.schema())
    parent = graph.nodes[1]
    user = build_messages(space, PromptRequest("refine", [parent]), graph)[1]["content"]
    top = user.split("# Best candidates so far")[1].split("# Nearest")[0]
    assert top.count("\n#") + top.startswith("#") <= 5
    failures = user.split("# Recent failures")[1]
    assert failures.count("error: ") == 3
    assert "error 99:" in failures and "error 96:" not in failures  # the newest first
    assert max(len(line) for line in failures.splitlines()) < 300  # each error text is cut

    for cap in (12_000, 6_000, 4_000, 2_500):
        messages = build_messages(
            space, PromptRequest("refine", [parent]), graph, Limits(max_chars=cap)
        )
        length = sum(len(m["content"]) for m in messages)
        assert length <= cap
        assert json.dumps(parent.params, separators=(",", ":")) in messages[1]["content"]
        assert '"rationale"' in messages[0]["content"]  # the reply format survives any cut
        assert estimate_tokens(messages) <= cap / 2


def test_knowledge_notes_appear_only_when_the_space_has_them(space):
    graph = ArchiveGraph([])
    plain = text_of(build_messages(space, PromptRequest("restart", []), graph))
    assert "# Knowledge notes" not in plain

    class Knowing(type(space)):
        knowledge = "On ml-100k, fm with lr 0.005 is hard to beat."

    class KnowingMethod(type(space)):
        def knowledge(self):
            return "Prefer small embeddings."

    text = text_of(build_messages(Knowing(), PromptRequest("restart", []), graph))
    assert "# Knowledge notes\nOn ml-100k, fm with lr 0.005 is hard to beat." in text
    assert "Prefer small embeddings." in text_of(
        build_messages(KnowingMethod(), PromptRequest("restart", []), graph)
    )


def test_reply_schema_adds_a_short_rationale_and_requires_every_key(space):
    schema = reply_schema(space)
    assert list(schema["properties"])[0] == "rationale"  # the reason first, then the values
    assert schema["properties"]["rationale"] == {
        "type": "string",
        "maxLength": 120,
        "description": "one sentence: why this candidate should score well",
    }
    assert set(schema["required"]) == set(space.schema()["properties"]) | {"rationale"}
    assert "rationale" not in space.schema()["properties"]  # the space's schema is not touched


def test_templates_are_text_files():
    for name in ("system", "refine", "compare", "combine", "restart", "repair", "duplicate"):
        assert template(name).template.strip()
    with pytest.raises(KeyError):
        template("nope")


def test_prompts_show_floats_to_four_significant_digits():
    from autorec.agents.prompts import show_params

    shown = show_params({"lr": 0.00025264732377173723, "depth": 3, "dropout": 0.1}, 400)
    assert shown == '{"lr":0.0002526,"depth":3,"dropout":0.1}'
