"""LLM backends: what answers the agent's prompts.

`load_backend("local")` gives the embedded SmolLM2-135M-Instruct (offline, schema-constrained);
`load_backend("local:PATH.gguf")` another GGUF model; `load_backend("openai:MODEL")` any
OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, hosted APIs). Backends are imported
on first use, so naming one costs nothing until it is built.
"""

from __future__ import annotations

import inspect
from typing import Any

from autorec.agents.llm.base import Completion, LLMBackend, LLMError, Message
from autorec.errors import ConfigError, UnknownNameError

__all__ = [
    "BACKENDS",
    "Completion",
    "LLMBackend",
    "LLMError",
    "Message",
    "load_backend",
]

BACKENDS = {
    "local": "autorec.agents.llm.local:LocalBackend",
    "openai": "autorec.agents.llm.openai_compat:OpenAIBackend",
}


def _backend_class(kind: str) -> type[LLMBackend]:
    import importlib

    if kind not in BACKENDS:
        raise UnknownNameError("LLM backend", kind, list(BACKENDS))
    module_name, _, attr = BACKENDS[kind].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def load_backend(spec: str, base_url: str | None = None, api_key: str | None = None,
                 **options: Any) -> LLMBackend:  # fmt: skip
    """The backend `spec` names: "local", "local:PATH.gguf" or "openai:MODEL".

    `base_url` and `api_key` apply to "openai" (else the environment: AUTOREC_LLM_BASE_URL or
    OPENAI_BASE_URL, AUTOREC_LLM_API_KEY or OPENAI_API_KEY). `options` go to the backend's
    constructor: for "local" `cache_dir`, `max_string_length`; for "openai" `timeout_s`,
    `retries`, `backoff_s`, `price_per_1k_tokens`, `price_per_1k_output_tokens`.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("an LLM backend spec is 'local', 'local:PATH.gguf' or 'openai:MODEL'")
    kind, _, argument = spec.strip().partition(":")
    cls = _backend_class(kind)
    if kind == "local":
        if base_url or api_key:
            raise ConfigError("the 'local' LLM backend takes no base URL or API key")
        arguments: dict[str, Any] = {"gguf": argument or None}
    else:
        arguments = {"model": argument or None, "base_url": base_url, "api_key": api_key}
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(options) - set(accepted) - {"self"})
    if unknown:
        known = sorted(p for p in accepted if p not in ("self", *arguments))
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for the '{kind}' LLM backend; "
            f"known: {', '.join(known)}"
        )
    return cls(**arguments, **options)
