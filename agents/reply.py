"""Turning an LLM's reply into a candidate: extract, validate, and repair.

`parse_reply` never raises: whatever the text (prose around the JSON, code fences, truncated or
nested garbage, huge numbers, prompt-injection attempts), it returns a `ParsedReply` with either
the validated params (the space's canonical form) or a readable reason. `ask` sends one prompt
and, when the reply is unusable and repairs are allowed, feeds the reason back to the model.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
from typing import Any

from autorec.agents.llm.base import Completion, LLMBackend, LLMError, Message

MAX_SCAN_CHARS = 100_000  # replies longer than this are cut before looking for JSON
MAX_STARTS = 64  # opening braces tried before giving up on finding an object
MAX_RATIONALE = 200
MAX_ERROR = 600
MAX_STORED_CHARS = 4_000  # an invalid reply's object is stored as params only up to this size
REPAIR_ECHO_CHARS = 2_000  # the failed reply, as repeated back to the model in a repair round
# Reply tokens per character of a whole-text field, counted low (JSON escapes, odd words) so the
# budget holds the field at its full length: SmolLM2's tokenizer writes English prose at about 4.
TEXT_CHARS_PER_TOKEN = 2.0


@dataclasses.dataclass
class ParsedReply:
    """What a reply amounts to: validated params, or the reason it is unusable."""

    params: dict[str, Any] | None
    rationale: str = ""
    error: str | None = None
    raw: Any = None  # the JSON object found, if any (kept with an invalid proposal)

    @property
    def ok(self) -> bool:
        return self.error is None


def extract_json(text: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The first JSON object in `text`, or None and why there is none."""
    objects, error = extract_objects(text, limit=1)
    return (objects[0], None) if objects else (None, error)


def extract_objects(text: Any, limit: int = 4) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` JSON objects in `text`, in order (none: the reason)."""
    if not isinstance(text, str):
        return [], f"the reply is not text but {type(text).__name__}"
    if not text.strip():
        return [], "the reply is empty"
    text = text[:MAX_SCAN_CHARS]
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"\{", text)][:MAX_STARTS]
    if not starts:
        return [], "the reply contains no JSON object"
    found: list[dict[str, Any]] = []
    end = -1
    for start in starts:
        if start < end:
            continue  # inside an object already found
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            found.append(value)
            if len(found) >= limit:
                break
    if found:
        return found, None
    # Lenient pass for remote models: single quotes, True/None, trailing commas.
    for start in starts[:8]:
        span = _balanced(text, start)
        if span is None or len(span) > 20_000:
            continue
        try:
            value = ast.literal_eval(span)
        except Exception:  # SyntaxError, ValueError, MemoryError, RecursionError: not a literal
            continue
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return [value], None
    return [], "the reply contains no complete JSON object (truncated or malformed)"


def _balanced(text: str, start: int) -> str | None:
    """text[start:] up to the brace that closes the one at `start` (quotes respected)."""
    depth, quote, escaped = 0, "", False
    for i in range(start, min(len(text), start + 20_000)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def parse_reply(text: Any, space) -> ParsedReply:
    """Find the JSON object(s) in `text`, take the "rationale", validate the rest with the space.

    The first object that validates wins (a model may write an example before its answer);
    when none does, the first object's problem is the reason."""
    objects, error = extract_objects(text)
    if not objects:
        return ParsedReply(None, error=error)
    first: ParsedReply | None = None
    for obj in objects:
        parsed = _parse_object(obj, space)
        if parsed.ok:
            return parsed
        first = first or parsed
    return first


def _parse_object(obj: dict[str, Any], space) -> ParsedReply:
    obj = dict(obj)
    rationale = clean_rationale(obj.pop("rationale", ""))
    params, error = validate(space, obj)
    if params is None:
        # A common wrapping: {"candidate": {...}}; accept the inner object if it validates.
        inner = [v for v in obj.values() if isinstance(v, dict)]
        if len(obj) == 1 and len(inner) == 1:
            inner_obj = dict(inner[0])
            rationale = rationale or clean_rationale(inner_obj.pop("rationale", ""))
            params, _ = validate(space, inner_obj)
            if params is not None:
                return ParsedReply(params, rationale, None, obj)
        return ParsedReply(None, rationale, error, obj)
    return ParsedReply(params, rationale, None, obj)


def validate(space, obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(canonical params, None) or (None, reason); nothing a space raises escapes."""
    try:
        candidate = space.validate(obj)
        params = candidate.model_dump(mode="json")
    except RecursionError:
        return None, "the candidate is nested too deeply to validate"
    except Exception as err:  # InvalidCandidate, or a space's validator tripping on odd input
        from autorec.space import InvalidCandidate

        if isinstance(err, InvalidCandidate):
            reason = str(err) or "the candidate does not fit the space"
        else:
            reason = f"the space could not validate it ({type(err).__name__}: {err})"
        return None, shorten(reason, MAX_ERROR)
    if not _finite_json(params):
        return None, "the candidate has a non-finite number"
    return params, None


def _finite_json(value: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_json(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_finite_json(v, depth + 1) for v in value)
    return True


def text_fields(space) -> dict[str, int]:
    """The space's whole-text fields (`SearchSpace.text_fields`) with their schema `maxLength`:
    the agent carries these whole, so each must declare its bound (a pydantic `max_length`)."""
    names = tuple(getattr(space, "text_fields", ()) or ())
    if not names:
        return {}
    properties = space.schema().get("properties") or {}
    bounds = {}
    for name in names:
        node = properties.get(name) or {}
        options = [node, *node.get("anyOf", [])]
        limit = next((o["maxLength"] for o in options if isinstance(o.get("maxLength"), int)), None)
        if limit is None:
            from autorec.errors import SpaceError

            raise SpaceError(
                f"space '{getattr(space, 'name', '?')}': text field '{name}' needs a max_length "
                "in its Candidate (the agent sizes its replies from it)"
            )
        bounds[name] = limit
    return bounds


def reply_tokens(space, max_tokens: int) -> int:
    """The reply budget for `space`: `max_tokens` for everything else, plus room for each
    whole-text field at its maximum length (other spaces: `max_tokens` as given)."""
    chars = sum(text_fields(space).values())
    return max_tokens + math.ceil(chars / TEXT_CHARS_PER_TOKEN)


def clean_rationale(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return shorten(" ".join(value.split()), MAX_RATIONALE)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def stored_params(parsed: ParsedReply, text: Any) -> dict[str, Any]:
    """What the archive keeps as an invalid proposal's params: the object when it is small,
    plain JSON, else the start of the raw reply."""
    if isinstance(parsed.raw, dict):
        try:
            encoded = json.dumps(parsed.raw, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            encoded = None
        if encoded is not None and len(encoded) <= MAX_STORED_CHARS:
            return json.loads(encoded)
    raw = (text if isinstance(text, str) else repr(text))[:MAX_STORED_CHARS]
    while len(json.dumps(raw)) > MAX_STORED_CHARS:  # escapes (quotes, control characters) grow it
        raw = raw[: len(raw) // 2]
    return {"raw": raw}


@dataclasses.dataclass
class Answer:
    """The outcome of `ask`: the parsed reply, the calls it took, and the text it came from."""

    parsed: ParsedReply
    calls: list[Completion]
    text: str


def ask(
    backend: LLMBackend,
    messages: list[Message],
    space,
    schema: dict[str, Any] | None,
    *,
    repairs: int = 0,
    repair_prompt=None,
    max_tokens: int = 512,
    temperature: float = 0.0,
    seed: int | None = None,
) -> Answer:
    """One completion, parsed; then up to `repairs` more, each told what was wrong.

    An LLMError (backend unreachable) ends the exchange as an unusable reply with its message:
    failures are data, the search goes on.
    """
    calls: list[Completion] = []
    conversation = list(messages)
    # A space with whole-text fields (a prompt template) gets the tokens to write them in full,
    # and a repair round repeats its failed reply whole.
    max_tokens = reply_tokens(space, max_tokens)
    echo_chars = REPAIR_ECHO_CHARS + 2 * sum(text_fields(space).values())
    parsed, text = ParsedReply(None, error="no reply"), ""
    for attempt in range(repairs + 1):
        try:
            completion = backend.complete(
                conversation,
                schema,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=None if seed is None else seed + attempt,
            )
        except LLMError as err:
            calls.extend(getattr(err, "calls", []))  # a failed call's record, for the archive
            reason = f"the LLM backend failed: {err}"
            return Answer(ParsedReply(None, error=shorten(reason, MAX_ERROR)), calls, text)
        calls.append(completion)
        text = completion.text if isinstance(completion.text, str) else ""
        parsed = parse_reply(text, space)
        if parsed.ok:
            break
        if completion.error and not text.strip():
            parsed.error = shorten(f"the LLM call failed: {completion.error}", MAX_ERROR)
        if attempt < repairs and repair_prompt is not None:
            conversation = [
                *conversation,
                {"role": "assistant", "content": shorten(text, echo_chars)},
                {"role": "user", "content": repair_prompt(parsed.error)},
            ]
    return Answer(parsed, calls, text)
