"""The LLM agent carries prompt templates whole: into its prompts, through its reply budget and
constrained decoding, and back out of reply parsing; other spaces keep the agent's caps."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from autorec.agents import CandidateSummary
from autorec.agents.graph import ArchiveGraph
from autorec.agents.llm.base import Completion, LLMBackend
from autorec.agents.prompts import PromptRequest, build_messages, reply_schema
from autorec.agents.reply import ask, text_fields
from autorec.models.llm_ranker import template as tpl
from autorec.space import load_space
from autorec.search_spaces.prompt_template import PromptTemplateSpace

OPTIONS = {"dataset": "ml-100k", "settings": {"max_eval_rows": 8, "history_max": 2}}


class CappedPromptSpace(PromptTemplateSpace):
    """The same space without declaring its text fields: the agent's ordinary caps apply."""

    text_fields: ClassVar[tuple[str, ...]] = ()


def long_template() -> str:
    """A valid template near the 1200-character limit, with a distinct last line."""
    lines = [f"Line {n}: weigh what the viewer rated before against the target film." for n in range(15)]
    text = "\n".join(["Liked: {liked}", "Disliked: {disliked}", *lines, "Target: {target}",
                      "FINAL-LINE Will they like it? {yes} or {no}."])  # fmt: skip
    assert 1100 < len(text) <= tpl.MAX_TEMPLATE_CHARS
    return text


LONG_INSTRUCTION = ("You are a careful movie recommender. " * 15).strip()


@pytest.fixture(scope="module")
def spaces():
    return load_space("prompt_templates", OPTIONS), CappedPromptSpace(load_space(
        "prompt_templates", OPTIONS).options)


def candidate(space, **changes) -> dict:
    return space.validate({**space.reference().model_dump(mode="json"), **changes}).model_dump(
        mode="json"
    )


def archive(space) -> list[CandidateSummary]:
    reference = candidate(space)
    long = candidate(space, template=long_template(), instruction=LONG_INSTRUCTION)
    return [
        CandidateSummary(1, reference, "done", 0.0, {"valid_auc": 0.55}, "reference", [], 0),
        CandidateSummary(2, long, "done", 0.04, {"valid_auc": 0.58}, "llm:refine", [1], 1),
    ]


class Scripted(LLMBackend):
    """Returns one fixed reply and keeps the reply budget it was given."""

    def __init__(self, text: str):
        super().__init__("scripted")
        self.text, self.budgets = text, []

    def complete(self, messages, schema=None, *, max_tokens=512, temperature=0.0, seed=None):
        self.budgets.append(max_tokens)
        return Completion(self.text, "scripted", self.model, messages, tokens_in=1, tokens_out=1)


def test_the_space_declares_its_text_fields_with_their_bounds(spaces):
    whole, capped = spaces
    assert text_fields(whole) == {"instruction": tpl.MAX_INSTRUCTION_CHARS,
                                  "template": tpl.MAX_TEMPLATE_CHARS}  # fmt: skip
    assert text_fields(capped) == {} and text_fields(load_space("architecture")) == {}


def prompt_text(space, mode: str) -> str:
    nodes = archive(space)
    parents = [nodes[1], nodes[0]] if mode == "combine" else [nodes[1]]
    graph = ArchiveGraph(nodes, space.schema())
    return "\n".join(m["content"] for m in build_messages(space, PromptRequest(mode, parents), graph))


def test_a_long_template_reaches_the_prompt_whole_only_where_declared(spaces):
    whole, capped = spaces
    encoded = json.dumps(tpl.normalise(long_template()))[1:-1]  # as the prompt's JSON shows it
    instruction = json.dumps(LONG_INSTRUCTION)[1:-1]
    shown = prompt_text(whole, "refine")
    assert encoded in shown and instruction in shown
    cut = prompt_text(capped, "refine")  # params cut at Limits.params_chars, as before
    assert encoded not in cut and "FINAL-LINE" not in cut


def test_a_rewritten_template_is_named_by_its_length_in_comparisons(spaces):
    whole, _ = spaces
    text = prompt_text(whole, "combine")
    length = len(tpl.normalise(long_template()))
    default = len(tpl.DEFAULT_TEMPLATE)
    assert f"- template {length}-char text (A) vs {default}-char text (B)" in text
    assert text.count("FINAL-LINE") == 1  # shown once, whole, in parent A's params


def test_a_long_template_leaves_the_reply_whole_with_the_budget_to_write_it(spaces):
    whole, capped = spaces
    reply = json.dumps({"rationale": "a longer prompt", **candidate(
        whole, template=long_template(), instruction=LONG_INSTRUCTION)})
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    for space, budget in ((whole, 512 + (tpl.MAX_TEMPLATE_CHARS + tpl.MAX_INSTRUCTION_CHARS) // 2),
                          (capped, 512)):  # fmt: skip
        backend = Scripted(reply)
        answer = ask(backend, messages, space, reply_schema(space), max_tokens=512)
        assert answer.parsed.ok, answer.parsed.error
        assert answer.parsed.params["template"] == tpl.normalise(long_template())
        assert answer.parsed.params["instruction"] == LONG_INSTRUCTION
        assert backend.budgets == [budget]


def smollm2_tokenizer():
    """The agent's tokenizer: read from the user's cached copy of the model when there is one
    (tests run with a fresh $AUTOREC_CACHE, where loading would convert the GGUF again)."""
    from pathlib import Path

    from autorec.lm import cache_folder, load_causal_lm, packaged_gguf, transformers_offline

    folder = cache_folder(packaged_gguf(), Path.home() / ".cache" / "autorec")
    if (folder / "tokenizer.json").is_file():
        return transformers_offline().AutoTokenizer.from_pretrained(str(folder))
    return load_causal_lm().tokenizer


@pytest.mark.slow  # builds llguidance's view of the SmolLM2 tokenizer (a few seconds)
def test_constrained_decoding_accepts_the_template_at_full_length(spaces):
    """The grammar the local backend decodes under lets the whole template through: every
    token of the long reply is allowed, and the document then ends."""
    from autorec.agents.llm.constrained import GuidedTokenizer, JsonConstraint

    whole, _ = spaces
    schema = reply_schema(whole)
    values = candidate(whole, template=long_template(), instruction=LONG_INSTRUCTION)
    reply = json.dumps({"rationale": "a longer prompt", **values}, separators=(",", ":"))
    tokenizer = smollm2_tokenizer()
    constraint = JsonConstraint(GuidedTokenizer(tokenizer), schema)
    for token in tokenizer.encode(reply, add_special_tokens=False):
        constraint.consume(token)  # an LLMError here would mean the grammar cut the text
    assert constraint.done
