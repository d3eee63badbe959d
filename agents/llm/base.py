"""The LLM backend interface: one method, `complete`, and what a call costs."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

from autorec.errors import AutorecError


class LLMError(AutorecError):
    """A backend that cannot answer: unreachable after retries, a model that is not installed."""


Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclasses.dataclass
class Completion:
    """One answer and its cost. `prompt` is what was sent, kept so the archive can store it."""

    text: str
    backend: str
    model: str
    prompt: list[Message]
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    error: str | None = None  # set when the call failed but produced a record worth keeping


class LLMBackend(abc.ABC):
    name: ClassVar[str]
    # True when decoding itself guarantees schema-valid JSON, so the agent asks for no repairs.
    constrained: ClassVar[bool] = False
    # The longest rationale the agent asks for in a reply (its `rationale_chars` option wins).
    rationale_chars: ClassVar[int] = 120

    def __init__(self, model: str):
        self.model = model

    @abc.abstractmethod
    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None = None,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        """Answer the chat `messages`. With `schema` (a JSON schema) the reply should be one JSON
        document of that schema: local backends guarantee it by constrained decoding, remote ones
        ask the server for structured output where supported. temperature 0 means greedy."""
