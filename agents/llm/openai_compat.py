"""Any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server, hosted APIs) over HTTP.

Plain urllib, no SDK: one POST to `{base_url}/chat/completions` per call. Connection errors,
time-outs, 429 and 5xx are retried with exponential back-off (`retries` tries in all), then
raise LLMError naming the URL. Other HTTP errors raise at once with the server's message.

Structured output is asked for as strictly as the server allows, and the level it took is
remembered per backend: `json_schema` with `strict: true`, then `json_schema` without strict,
then `json_object` with the schema beside it (llama-cpp-python's form), then bare `json_object`,
then plain text. A server that answers 400/415/422 to one level is asked again at the next. Below
`json_schema` the server may not see or honour the schema, so it also goes into a system message.
Replies are not trusted to match: the agent validates them and asks for repairs.

Secrets: the API key is registered with autorec.secrets, so it is masked in every error message
this backend raises (some servers echo the Authorization header in their error body), in the
archive and in logs. A failed call raises `FailedCall`, an LLMError that carries the call's record
(prompt, latency, error) for the archive. The first time the endpoint cannot be reached at all,
one warning line goes to stderr: the search goes on, and the console should say why proposals
stopped coming from the LLM.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, ClassVar

from autorec.agents.llm.base import Completion, LLMBackend, LLMError, Message
from autorec.secrets import redact, register

BASE_URL_ENV = ("AUTOREC_LLM_BASE_URL", "OPENAI_BASE_URL")
API_KEY_ENV = ("AUTOREC_LLM_API_KEY", "OPENAI_API_KEY")
MODEL_ENV = "AUTOREC_LLM_MODEL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Structured-output levels, strictest first.
# "json_object_schema" is {"type": "json_object", "schema": ...}, the form llama-cpp-python's
# server (and Anyscale, Together) understand; the others are OpenAI's.
FORMATS = ("json_schema_strict", "json_schema", "json_object_schema", "json_object", "text")
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_FORMAT_REJECTED = {400, 415, 422}  # what servers answer to a response_format they lack
_MAX_RETRY_AFTER_S = 30.0
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_MAX_ERROR_CHARS = 300


def _env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def normalise_base_url(url: str) -> str:
    """'http://host:8000' -> 'http://host:8000/v1'; a URL that has a path keeps it."""
    url = url.strip().rstrip("/")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise LLMError(redact(f"LLM base URL must be http(s)://host[:port][/path], got {url!r}"))
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    elif not parsed.path:
        url += "/v1"
    return url


def _one_line(text: str) -> str:
    # Redacted before it is cut: a cut could split a key and leave half of it unmasked.
    return redact(re.sub(r"\s+", " ", text)).strip()[:_MAX_ERROR_CHARS]


class FailedCall(LLMError):
    """A call that got no answer; `calls` holds its record (a Completion with `error`), which the
    agent stores like any other call."""

    def __init__(self, message: str, call: Completion):
        super().__init__(message)
        self.calls = [call]


def _schema_name(schema: dict[str, Any]) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "reply"))
    return name[:64] or "reply"


def _schema_instruction(schema: dict[str, Any]) -> Message:
    return {
        "role": "system",
        "content": "Reply with one JSON document and nothing else. "
        "It must match this JSON schema:\n" + json.dumps(schema, separators=(",", ":")),
    }


class _HTTPFailure(Exception):
    def __init__(self, status: int | None, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.status, self.reason, self.retry_after = status, reason, retry_after

    @property
    def rejects_format(self) -> bool:
        """The server turned down the response_format. llama-cpp-python answers that with a 500
        whose message names the field, so the message counts as much as the status."""
        if self.status is None:
            return False
        return self.status in _FORMAT_REJECTED or "response_format" in self.reason


class OpenAIBackend(LLMBackend):
    """A chat model behind an OpenAI-compatible HTTP API."""

    name: ClassVar[str] = "openai"
    constrained: ClassVar[bool] = False  # servers may ignore the schema: the agent repairs

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        price_per_1k_tokens: float = 0.0,
        price_per_1k_output_tokens: float | None = None,
    ):
        """`model`, `base_url`, `api_key`: else $AUTOREC_LLM_MODEL, $AUTOREC_LLM_BASE_URL or
        $OPENAI_BASE_URL (default the OpenAI API), $AUTOREC_LLM_API_KEY or $OPENAI_API_KEY (none
        is sent when unset: local servers need none). `retries`: tries per call in all.
        `price_per_1k_tokens` prices input tokens, and output tokens too unless
        `price_per_1k_output_tokens` is given; the cost is in whatever currency they are."""
        model = model or os.environ.get(MODEL_ENV, "").strip()
        if not model:
            raise LLMError(f"the 'openai' LLM backend needs a model: 'openai:MODEL' or {MODEL_ENV}")
        super().__init__(model)
        self.base_url = normalise_base_url(base_url or _env(BASE_URL_ENV) or DEFAULT_BASE_URL)
        self.url = f"{self.base_url}/chat/completions"
        self._api_key = api_key or _env(API_KEY_ENV)
        register(self._api_key)
        self._warned_unreachable = False
        if timeout_s <= 0 or retries < 1 or backoff_s < 0:
            raise LLMError("the 'openai' backend needs timeout_s > 0, retries >= 1, backoff_s >= 0")
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self.backoff_s = float(backoff_s)
        self.price_in = float(price_per_1k_tokens)
        out = price_per_1k_output_tokens
        self.price_out = self.price_in if out is None else float(out)
        self.format_level = 0  # index into FORMATS: the strictest level the server accepted
        # OpenAI's reasoning models refuse `max_tokens` and want `max_completion_tokens`.
        self._budget_field = "max_tokens"
        # A server on this machine is reached directly, even where an HTTP proxy is configured.
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def structured_output(self) -> str:
        """The structured-output level this server is asked for now (see FORMATS)."""
        return FORMATS[self.format_level]

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None = None,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        start = time.perf_counter()
        level = self.format_level if schema is not None else FORMATS.index("text")
        while True:
            sent = list(messages)
            body: dict[str, Any] = {"model": self.model, self._budget_field: int(max_tokens),
                                    "temperature": float(temperature)}  # fmt: skip
            if seed is not None:
                body["seed"] = int(seed)
            if schema is not None:
                response_format = self._response_format(FORMATS[level], schema)
                if response_format is not None:
                    body["response_format"] = response_format
                if not FORMATS[level].startswith("json_schema"):
                    sent = [_schema_instruction(schema), *sent]
            body["messages"] = sent
            try:
                answer = self._post(body)
            except _HTTPFailure as failure:
                if failure.status == 400 and self._budget_field == "max_tokens" and (
                    "max_completion_tokens" in failure.reason
                ):
                    self._budget_field = "max_completion_tokens"
                    continue
                can_relax = schema is not None and level < len(FORMATS) - 1
                if can_relax and failure.rejects_format:
                    level += 1
                    continue
                raise self._failed(failure, sent, start) from None
            break
        if schema is not None and level > self.format_level:
            self.format_level = level  # the server took this level: start there next time
        return self._completion(answer, sent, start)

    def _response_format(self, level: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        if level.startswith("json_schema"):
            spec = {"name": _schema_name(schema), "schema": schema}
            if level == "json_schema_strict":
                spec["strict"] = True
            return {"type": "json_schema", "json_schema": spec}
        if level == "json_object_schema":
            return {"type": "json_object", "schema": schema}
        if level == "json_object":
            return {"type": "json_object"}
        return None

    def _completion(self, answer: dict[str, Any], sent: list[Message], start: float) -> Completion:
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(redact(
                f"LLM endpoint {self.url} answered without choices[0].message: "
                f"{_one_line(json.dumps(answer)[:_MAX_ERROR_CHARS])}"
            )) from None
        usage = answer.get("usage") or {}
        tokens_in = int(usage.get("prompt_tokens") or 0)
        tokens_out = int(usage.get("completion_tokens") or 0)
        error = None
        if choice.get("finish_reason") == "length":
            error = "the reply was cut at max_tokens"
        elif not text and choice["message"].get("refusal"):
            error = f"the model refused: {_one_line(str(choice['message']['refusal']))}"
        return Completion(
            text=text, backend=self.name, model=str(answer.get("model") or self.model), prompt=sent,
            tokens_in=tokens_in, tokens_out=tokens_out, latency_s=time.perf_counter() - start,
            cost=(tokens_in * self.price_in + tokens_out * self.price_out) / 1000.0, error=error,
        )  # fmt: skip

    def _failed(self, failure: _HTTPFailure, sent: list[Message], start: float) -> FailedCall:
        message = redact(self._describe(failure))
        if failure.status is None and not self._warned_unreachable:
            self._warned_unreachable = True
            print(f"warning: {message}; the search goes on, and each failed call is recorded "
                  "in the archive", file=sys.stderr, flush=True)
        call = Completion(text="", backend=self.name, model=self.model, prompt=sent,
                          latency_s=time.perf_counter() - start, error=message)
        return FailedCall(message, call)

    def _describe(self, failure: _HTTPFailure) -> str:
        where = f"LLM endpoint {self.url}"
        if failure.status is None:
            return f"{where} unreachable after {self.retries} tries: {failure.reason}"
        status = f"HTTP {failure.status} {failure.reason}"
        if failure.status in _RETRY_STATUS and not failure.rejects_format:
            return f"{where} kept failing after {self.retries} tries: {status}"
        return f"{where} refused the request: {status}"

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body`; retry what may pass (connection errors, 429, 5xx) with back-off."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        failure: _HTTPFailure | None = None
        for attempt in range(self.retries):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                if failure is not None and failure.retry_after is not None:
                    delay = max(delay, min(failure.retry_after, _MAX_RETRY_AFTER_S))
                time.sleep(delay)
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    raw = response.read()
            except urllib.error.HTTPError as err:
                failure = _HTTPFailure(err.code, _error_text(err), _retry_after(err))
                if err.code not in _RETRY_STATUS or failure.rejects_format:
                    raise failure from None
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", None) or err
                failure = _HTTPFailure(None, _one_line(str(reason)) or type(err).__name__)
                continue
            try:
                answer = json.loads(raw)
            except ValueError:
                raise LLMError(redact(
                    f"LLM endpoint {self.url} answered with something other than JSON: "
                    f"{_one_line(raw[:_MAX_ERROR_CHARS].decode(errors='replace'))}"
                )) from None
            if not isinstance(answer, dict):
                kind = type(answer).__name__
                raise LLMError(redact(f"LLM endpoint {self.url} answered a JSON {kind}, not an object"))
            return answer
        assert failure is not None
        raise failure


def _error_text(err: urllib.error.HTTPError) -> str:
    """The server's error message (OpenAI style {"error": {"message": ...}}) or the HTTP reason."""
    try:
        raw = err.read()
    except Exception:  # a body that cannot be read: the status line says enough
        raw = b""
    try:
        payload = json.loads(raw)
        detail = payload.get("error", payload) if isinstance(payload, dict) else payload
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("detail") or detail
        text = detail if isinstance(detail, str) else json.dumps(detail)
    except ValueError:
        text = raw.decode(errors="replace")
    return _one_line(f"{err.reason}: {text}" if text else str(err.reason))


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    try:
        return float(err.headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
