"""The embedded LLM backend: loads SmolLM2 from its package, caches it, decodes under a schema."""

from __future__ import annotations

import json
import statistics
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, ConfigDict, Field

from autorec.agents.llm import LLMError, load_backend
from autorec.agents.llm import local
from autorec.agents.llm.constrained import GuidedTokenizer, JsonConstraint, cap_strings
from autorec.errors import ConfigError, UnknownNameError


class Mlp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(ge=1, le=4)
    activation: Literal["relu", "gelu", "silu"]


class Candidate(BaseModel):
    """The shape of a real search space's candidate: enums, ranges, $defs, an optional block."""

    model_config = ConfigDict(extra="forbid")
    model: Literal["fm", "deepfm", "dcnv2", "din", "sasrec"]
    embedding_dim: int = Field(ge=4, le=128)
    dropout: float = Field(ge=0.0, le=0.5)
    lr: float = Field(ge=1e-4, le=1e-1)
    mlp_depth: int = Field(ge=0, le=4)
    mlp: Optional[Mlp] = None
    rationale: str = Field(max_length=160)


SYSTEM = (
    "You tune recommender models. Reply with one JSON object: model, embedding_dim, dropout, lr, "
    "mlp_depth, optional mlp, and a one-line rationale."
)
PROMPTS = [
    "Propose a strong CTR model for MovieLens.",
    "The parent deepfm with embedding_dim 16 scored AUC 0.78. Refine it.",
    "Give a tiny, fast model for a smoke test.",
    "Suggest a sequential recommender with large embeddings and low dropout.",
    "Combine the parents: dcnv2 (dim 32, lr 0.01) and din (dim 64, lr 0.001).",
]


def chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


@pytest.fixture(scope="module")
def first_load(tmp_path_factory):
    """The process's first load of the packaged model, into an empty cache folder."""
    root = tmp_path_factory.mktemp("llm-cache")
    local.forget_loaded()
    backend = load_backend("local", cache_dir=str(root))
    return root, backend.load()


@pytest.fixture(scope="module")
def backend(first_load):
    root, _ = first_load
    return load_backend("local", cache_dir=str(root))


def test_finds_the_gguf_shipped_in_the_package():
    path = local.packaged_gguf()
    assert path.name == local.GGUF_NAME and path.stat().st_size > 50_000_000


@pytest.mark.slow
def test_first_load_fills_the_cache_and_later_loads_read_it(first_load):
    root, loaded = first_load
    assert loaded.source == "gguf"
    assert loaded.folder.parent == root / "llm"
    assert (loaded.folder / "model.safetensors").is_file()
    assert (loaded.folder / "tokenizer.json").is_file()
    assert not [p for p in loaded.folder.parent.iterdir() if p.name.startswith(".")]  # no staging

    # Within a process the model is loaded once, whichever backend asks.
    again = load_backend("local", cache_dir=str(root)).load()
    assert again is loaded

    # A new process (simulated by forgetting) reads the safetensors copy, not the GGUF file.
    local.forget_loaded()
    cached = load_backend("local", cache_dir=str(root)).load()
    assert cached.source == "cache" and cached.folder == loaded.folder
    print(f"\nload times: gguf {loaded.seconds:.1f}s, cache {cached.seconds:.1f}s")


@pytest.mark.slow  # the real LLM
def test_greedy_decoding_is_reproducible(backend):
    messages = chat("Name one recommender model in a sentence.")
    first = backend.complete(messages, max_tokens=24)
    second = backend.complete(messages, max_tokens=24)
    assert first.text == second.text and first.text.strip()
    assert first.backend == "local" and first.model == local.DEFAULT_MODEL
    assert first.prompt == messages
    assert first.tokens_in > 10 and 0 < first.tokens_out <= 24
    assert first.latency_s > 0 and first.cost == 0.0 and first.error is None


@pytest.mark.slow  # the real LLM
def test_a_shared_prompt_prefix_is_run_once_and_changes_no_reply(backend, first_load):
    root, _ = first_load
    schema = Candidate.model_json_schema()
    long_system = SYSTEM + " " + " ".join(f"Rule {i}: keep the reply short." for i in range(20))
    messages = [[{"role": "system", "content": long_system}, {"role": "user", "content": p}]
                for p in PROMPTS[:3]]  # fmt: skip
    before = backend.reused_tokens
    warm = [backend.complete(m, schema, max_tokens=120) for m in messages]
    reused = backend.reused_tokens - before
    assert reused >= 2 * 100  # the second and third calls ran only what follows the system text
    for m, reply in zip(messages, warm):
        fresh = load_backend("local", cache_dir=str(root))  # no cache kept yet
        assert fresh.complete(m, schema, max_tokens=120).text == reply.text


@pytest.mark.slow  # the real LLM
def test_int8_decoding_predicts_like_the_float_model_and_leaves_it_untouched(backend):
    import torch

    from autorec.lm_int8 import Int8Linear

    loaded = backend.load()
    assert backend.weights == "int8" and loaded.int8 is not None  # the default, built at load
    float_model, int8 = loaded.model, loaded.int8
    assert not any(isinstance(m, Int8Linear) for m in float_model.modules())
    assert not any(type(m) is torch.nn.Linear for m in int8.modules())
    # Everything but the Linear weights is the float model's own tensor, not a copy.
    assert int8.model.embed_tokens.weight is float_model.model.embed_tokens.weight

    text = " ".join(PROMPTS) + " " + SYSTEM * 6
    ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"][:, :256]
    with torch.inference_mode():
        exact = float_model(input_ids=ids).logits[0, :-1].float()
        fast = int8(input_ids=ids).logits[0, :-1].float()
    targets = ids[0, 1:]
    loss = torch.nn.functional.cross_entropy
    assert float(loss(fast, targets)) <= 1.05 * float(loss(exact, targets))
    agree = float((fast.argmax(-1) == exact.argmax(-1)).float().mean())
    assert agree >= 0.85, agree  # dynamic int8 (activations rounded too) scores 0.34


@pytest.mark.slow  # the real LLM
def test_seeded_sampling_is_reproducible(backend):
    messages = chat("Name one recommender model in a sentence.")
    runs = [backend.complete(messages, max_tokens=12, temperature=1.0, seed=seed).text
            for seed in (7, 7, 8, 9)]  # fmt: skip
    assert runs[0] == runs[1]
    assert len(set(runs)) > 1  # the seed matters


@pytest.mark.slow
def test_schema_replies_always_parse_and_validate(backend):
    schema = Candidate.model_json_schema()
    latencies = []
    for prompt in PROMPTS:
        reply = backend.complete(chat(prompt), schema, max_tokens=300)
        assert reply.error is None, reply.error
        candidate = Candidate.model_validate_json(reply.text)  # raises if it does not
        assert candidate.model_dump(mode="json") == json.loads(reply.text)
        assert reply.tokens_in > 50 and 0 < reply.tokens_out <= 300
        latencies.append(reply.latency_s)
    print(f"\nconstrained proposal latency: median {statistics.median(latencies):.2f}s")


@pytest.mark.slow  # the real LLM
def test_max_tokens_bounds_every_reply(backend):
    plain = backend.complete(chat("Write a long essay on recommender systems."), max_tokens=5)
    assert plain.tokens_out == 5 and plain.error is None
    schema = Candidate.model_json_schema()
    # A budget that holds the shortest document: closing mode steers every value to its end.
    tight = backend.complete(chat(PROMPTS[0]), schema, max_tokens=64)
    assert tight.error is None and tight.tokens_out <= 64
    Candidate.model_validate_json(tight.text)
    # One that cannot: the reply says so rather than passing for a whole document.
    for budget in (6, 48):
        cut = backend.complete(chat(PROMPTS[0]), schema, max_tokens=budget)
        assert cut.tokens_out <= budget and "max_tokens" in cut.error


@pytest.mark.slow  # the real LLM
def test_a_looping_model_is_steered_out_of_the_loop(backend):
    """Closing mode, driven by hand: a repeated cycle inside a string makes the next step allow
    only tokens that close the string."""
    import torch

    tokenizer = backend.load().tokenizer
    schema = {"type": "object", "properties": {"note": {"type": "string", "maxLength": 900}},
              "required": ["note"], "additionalProperties": False}  # fmt: skip
    constraint = JsonConstraint(GuidedTokenizer(tokenizer), schema)
    head = tokenizer.decode(constraint.forced())
    assert '{"note":"'.startswith(head)
    for token in tokenizer.encode('{"note":"'[len(head):], add_special_tokens=False):
        constraint.consume(token)
    for token in tokenizer.encode(" (AUC 0.79)" * 3, add_special_tokens=False):
        assert not constraint.stuck
        constraint.consume(token)
    assert constraint.stuck
    logits = constraint.mask_(torch.zeros(len(tokenizer)), closing=True)
    allowed = torch.isfinite(logits).nonzero().flatten().tolist()
    assert allowed and all(tokenizer.decode([t]).startswith('"') for t in allowed)
    constraint.consume(tokenizer.convert_tokens_to_ids('"'))
    constraint.forced()
    assert constraint.done


@pytest.mark.slow  # the real LLM
def test_a_schema_llguidance_cannot_compile_is_an_llm_error(backend):
    with pytest.raises(LLMError, match="schema"):
        backend.complete(chat("hi"), {"type": "object", "properties": {"x": {"$ref": "#/nope"}}})


def test_free_strings_get_a_length_limit():
    schema = {"type": "object", "properties": {
        "free": {"type": "string"}, "short": {"type": "string", "maxLength": 5},
        "choice": {"type": "string", "enum": ["a"]},
        "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    }}  # fmt: skip
    capped = cap_strings(schema, 99)["properties"]
    assert capped["free"]["maxLength"] == 99 and capped["short"]["maxLength"] == 5
    assert "maxLength" not in capped["choice"] and capped["maybe"]["anyOf"][0]["maxLength"] == 99
    assert "maxLength" not in schema["properties"]["free"]  # the caller's schema is untouched


def test_bad_specs_and_options_are_reported():
    with pytest.raises(UnknownNameError):
        load_backend("nope")
    with pytest.raises(ConfigError, match="max_string_length"):
        load_backend("local", temperature=1)
    with pytest.raises(LLMError, match="no GGUF file"):
        load_backend("local:/nonexistent/model.gguf")
    with pytest.raises(ConfigError):
        load_backend("local", base_url="http://localhost:1")
    with pytest.raises(LLMError, match="weights must be one of int8, float32"):
        load_backend("local", weights="int4")
