"""JSON-schema-constrained decoding for the local backend, through llguidance.

llguidance (guidance-ai, the grammar engine inside llama.cpp, vLLM and SGLang) compiles a JSON
schema into a token-level matcher: before each step it says which tokens may come next, and after
the last closing brace it says the document is finished. It supports what pydantic emits: `$defs`
and `$ref`, enums and Literal, `anyOf` with null, integer and number ranges, `maxLength`,
`additionalProperties: false`.

A grammar alone does not make a small model stop: it can repeat one token inside a string or a
number until `max_tokens` cuts the document. Three rules keep every reply whole:
- no whitespace between JSON tokens, and every free-text string gets a `maxLength`;
- *closing mode* near the end of the budget (the last `reserve` tokens): of the tokens the grammar
  allows, only those that end the current value are kept (a quote inside a string; `}`, `]`, then
  `,` outside one), so the document closes along its shortest path;
- the same mode whenever the model is looping: one token `REPEAT_LIMIT` times in a row, or a
  cycle of up to `MAX_CYCLE` tokens three times in a row; this cuts degenerate runs ("]]]]]]",
  "0.00000000", "(AUC 0.79) (AUC 0.79) (AUC 0.79)") short instead of letting them fill the budget.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from autorec.agents.llm.base import LLMError

DEFAULT_MAX_STRING_LENGTH = 256
REPEAT_LIMIT = 8
MAX_CYCLE = 12
_TOKENS_PER_PROPERTY = 8  # a forced key ("embedding_dim":) plus a short value, with room

# Options for llguidance's JSON compiler. `lenient` ignores keywords it does not implement (e.g. an
# unknown "format") instead of refusing the schema; the caller validates the result anyway.
_JSON_OPTIONS = {"whitespace_flexible": False, "lenient": True}


def _llguidance():
    try:
        import llguidance
        import llguidance.hf
    except ImportError as err:
        raise LLMError(
            f"schema-constrained decoding needs the package 'llguidance' ({err}); "
            "install it with: pip install llguidance"
        ) from None
    return llguidance


def cap_strings(schema: dict[str, Any], max_length: int) -> dict[str, Any]:
    """A copy of `schema` where every free-text string has at most `max_length` characters."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            types = node.get("type")
            is_string = types == "string" or (isinstance(types, list) and "string" in types)
            bounded = any(key in node for key in ("maxLength", "enum", "const", "format"))
            if is_string and not bounded:
                node["maxLength"] = max_length
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


def closing_reserve(schema: dict[str, Any]) -> int:
    """Tokens to keep for closing a document of `schema` from anywhere inside it: a few per
    property the schema declares (in `$defs` too), which over-counts rather than under-counts."""
    count = 0

    def visit(node: Any) -> None:
        nonlocal count
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                count += len(properties)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return _TOKENS_PER_PROPERTY * (count + 1)


class GuidedTokenizer:
    """llguidance's view of a fast Hugging Face tokenizer, with the token classes closing mode
    needs. Building it takes about a second: keep one per tokenizer."""

    def __init__(self, hf_tokenizer):
        self.ll = _llguidance().hf.from_tokenizer(hf_tokenizer)
        self.vocab = self.ll.vocab_size
        self.bytes = [
            b"" if self.ll.is_special_token(i) else self.ll.decode_bytes([i])
            for i in range(self.vocab)
        ]
        first = np.array([text[:1] for text in self.bytes], dtype=object)
        self.quote = torch.from_numpy(first == b'"')
        self.close = torch.from_numpy((first == b"}") | (first == b"]"))
        self.comma = torch.from_numpy(first == b",")


class JsonConstraint:
    """One decoding run under a JSON schema: masks logits, consumes tokens, knows when it ends."""

    def __init__(self, tokenizer: GuidedTokenizer, schema: dict[str, Any], *,
                 max_string_length: int = DEFAULT_MAX_STRING_LENGTH):  # fmt: skip
        llguidance = _llguidance()
        schema = cap_strings(schema, max_string_length)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=_JSON_OPTIONS)
        self._matcher = llguidance.LLMatcher(tokenizer.ll, grammar, log_level=0)
        self._check("the JSON schema cannot be compiled into a grammar")
        self._tokens = tokenizer
        self.reserve = closing_reserve(schema)
        self._in_string = False
        self._escaped = False
        self._recent: list[int] = []

    def _check(self, what: str) -> None:
        if self._matcher.is_error():
            raise LLMError(f"{what}: {self._matcher.get_error()}")

    @property
    def done(self) -> bool:
        """The document is complete and nothing may follow it."""
        return self._matcher.is_stopped()

    @property
    def stuck(self) -> bool:
        """The latest tokens repeat: one token REPEAT_LIMIT times, or a longer cycle 3 times."""
        recent = self._recent
        if len(recent) >= REPEAT_LIMIT and len(set(recent[-REPEAT_LIMIT:])) == 1:
            return True
        return any(
            recent[-3 * period :] == recent[-period:] * 3
            for period in range(2, MAX_CYCLE + 1)
            if len(recent) >= 3 * period
        )

    def mask_(self, logits: torch.Tensor, closing: bool = False) -> torch.Tensor:
        """Set the logits of every token the schema forbids next to -inf (in place). `closing`
        also forbids every token that does not end the current value, where one may."""
        bits = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        self._check("constrained decoding failed")
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool)
        vocab = min(self._tokens.vocab, logits.shape[-1])
        allowed[:vocab] = torch.from_numpy(
            np.unpackbits(bits, bitorder="little")[:vocab].astype(bool)
        )
        if closing:
            table = self._tokens
            enders = [table.quote] if self._in_string else [table.close, table.comma]
            for ender in enders:
                narrowed = allowed.clone()
                narrowed[:vocab] &= ender[:vocab]
                if narrowed.any():
                    allowed = narrowed
                    break
        return logits.masked_fill_(~allowed, float("-inf"))

    def consume(self, token: int) -> None:
        self._matcher.consume_token(token)
        self._check("constrained decoding rejected a token")
        self._track([token])

    def forced(self) -> list[int]:
        """Tokens the schema dictates next (keys, punctuation), consumed already: the caller feeds
        them to the model in one forward pass instead of one pass each."""
        tokens = list(self._matcher.compute_ff_tokens())
        if tokens:
            self._matcher.consume_tokens(tokens)
            self._check("constrained decoding rejected a forced token")
            self._track(tokens)
        return tokens

    def _track(self, tokens: list[int]) -> None:
        """Follow whether the text so far ends inside a JSON string, and the latest tokens."""
        for token in tokens:
            for byte in self._tokens.bytes[token] if token < self._tokens.vocab else b"":
                if self._escaped:
                    self._escaped = False
                elif self._in_string and byte == 0x5C:  # backslash
                    self._escaped = True
                elif byte == 0x22:  # double quote
                    self._in_string = not self._in_string
        self._recent = (self._recent + tokens)[-max(REPEAT_LIMIT, 3 * MAX_CYCLE) :]
