"""The OpenAI-compatible backend, against a real llama.cpp server serving SmolLM2 on loopback.

A few protocol details a real server cannot be made to show on demand (a 503 that passes, a 401,
a server with no structured output at all) are checked against a small scripted HTTP handler.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from autorec.agents.llm import LLMError, load_backend
from autorec.agents.llm.local import packaged_gguf
from autorec.agents.llm.openai_compat import FORMATS, normalise_base_url

SERVER_START_S = 120


class Pick(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: Literal["fm", "deepfm", "dcnv2", "din", "sasrec"]
    embedding_dim: int = Field(ge=4, le=128)
    dropout: float = Field(ge=0.0, le=0.5)
    rationale: str = Field(max_length=120)


MESSAGES = [
    {"role": "system", "content": "You tune recommender models and answer in JSON."},
    {"role": "user", "content": "Propose a CTR model: model, embedding_dim, dropout, rationale."},
]


def tail(log) -> str:
    return log.read_text(errors="replace")[-2000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server with the packaged SmolLM2 GGUF."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable: pip install 'llama-cpp-python[server]'")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_gguf()),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
               "--n_threads", "1", "--verbose", "False"]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({process.returncode}):\n{tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not up after {SERVER_START_S}s:\n{tail(log)}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow  # the real LLM
def test_plain_completion_from_a_real_server(server_url):
    backend = load_backend("openai:smollm2", base_url=server_url, price_per_1k_tokens=0.5)
    reply = backend.complete(MESSAGES, max_tokens=24, seed=0)
    assert reply.text.strip() and reply.backend == "openai"
    assert reply.tokens_in > 10 and 0 < reply.tokens_out <= 24
    assert reply.cost == pytest.approx((reply.tokens_in + reply.tokens_out) * 0.5 / 1000)
    assert reply.prompt == MESSAGES and reply.latency_s > 0


@pytest.mark.slow  # the real LLM
def test_schema_completion_from_a_real_server(server_url):
    backend = load_backend("openai:smollm2", base_url=server_url, timeout_s=120)
    schema = Pick.model_json_schema()
    for _ in range(2):  # the second call starts at the level the first one found
        reply = backend.complete(MESSAGES, schema, max_tokens=160, seed=0)
        assert reply.error is None, reply.error
        data = json.loads(reply.text)
        assert set(data) == set(schema["required"])
        assert data["model"] in schema["properties"]["model"]["enum"]
        assert reply.tokens_in > 0 and reply.tokens_out > 0
    # llama-cpp-python rejects response_format type json_schema (with a 500 naming the field) and
    # takes {"type": "json_object", "schema": ...}: the schema still reaches its grammar.
    assert backend.structured_output in FORMATS[:3]
    print(f"\nllama_cpp.server structured output: {backend.structured_output}")


def test_unreachable_endpoint_fails_fast_with_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    backend = load_backend("openai:any", base_url=url, retries=3, backoff_s=0.2, timeout_s=2)
    start = time.monotonic()
    with pytest.raises(LLMError) as caught:
        backend.complete(MESSAGES, max_tokens=8)
    elapsed = time.monotonic() - start
    message = str(caught.value)
    assert f"{url}/chat/completions" in message and "after 3 tries" in message
    assert "\n" not in message
    assert 0.6 <= elapsed < 5  # two back-offs (0.2 s, 0.4 s), then give up


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from `self.server.script(body) -> (status, payload)`; records every request."""

    def do_POST(self):  # noqa: N802 (the http.server hook name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        status, payload = self.server.script(body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def answer(text: str, tokens_in: int = 10, tokens_out: int = 5) -> dict:
    return {
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out},
    }


def test_a_server_without_structured_output_gets_the_schema_in_the_prompt(scripted):
    def script(body):
        if "response_format" in body:
            return 400, {"error": {"message": "response_format is not supported"}}
        return 200, answer('{"model": "fm"}')

    scripted.script = script
    backend = load_backend("openai:m", base_url=f"http://127.0.0.1:{scripted.server_port}")
    reply = backend.complete(MESSAGES, Pick.model_json_schema())
    assert reply.text == '{"model": "fm"}' and backend.structured_output == "text"
    sent = [body.get("response_format", {}).get("type") for _, _, body in scripted.requests]
    assert sent == ["json_schema", "json_schema", "json_object", "json_object", None]
    assert reply.prompt[0]["role"] == "system" and '"embedding_dim"' in reply.prompt[0]["content"]
    scripted.requests.clear()
    backend.complete(MESSAGES, Pick.model_json_schema())
    assert len(scripted.requests) == 1  # remembered: no more rejected requests


def test_transient_errors_are_retried_and_usage_priced(scripted, monkeypatch):
    statuses = iter([503, 429, 200])

    def script(body):
        status = next(statuses)
        return status, answer("ok", 1000, 500) if status == 200 else {"error": "busy"}

    scripted.script = script
    monkeypatch.setenv("AUTOREC_LLM_BASE_URL", f"http://127.0.0.1:{scripted.server_port}")
    monkeypatch.setenv("AUTOREC_LLM_API_KEY", "sk-test")
    backend = load_backend("openai:m", backoff_s=0.01, price_per_1k_tokens=0.01,
                           price_per_1k_output_tokens=0.03)  # fmt: skip
    reply = backend.complete(MESSAGES, seed=3)
    assert reply.text == "ok" and len(scripted.requests) == 3
    assert (reply.tokens_in, reply.tokens_out) == (1000, 500)
    assert reply.cost == pytest.approx(0.01 + 0.015)
    path, headers, body = scripted.requests[-1]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body["seed"] == 3 and body["model"] == "m" and "response_format" not in body


def test_client_errors_are_not_retried(scripted):
    scripted.script = lambda body: (401, {"error": {"message": "invalid api key"}})
    backend = load_backend("openai:m", base_url=f"http://127.0.0.1:{scripted.server_port}/v1")
    with pytest.raises(LLMError, match="HTTP 401.*invalid api key"):
        backend.complete(MESSAGES)
    assert len(scripted.requests) == 1


def test_a_server_that_wants_max_completion_tokens_gets_it(scripted):
    def script(body):
        if "max_tokens" in body:
            message = "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."
            return 400, {"error": {"message": message}}
        return 200, answer("{}")

    scripted.script = script
    backend = load_backend("openai:m", base_url=f"http://127.0.0.1:{scripted.server_port}")
    assert backend.complete(MESSAGES, Pick.model_json_schema(), max_tokens=7).text == "{}"
    bodies = [body for _, _, body in scripted.requests]
    assert len(bodies) == 2 and bodies[1]["max_completion_tokens"] == 7
    assert backend.structured_output == "json_schema_strict"  # the 400 was not about the format


def test_base_urls_are_normalised():
    assert normalise_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalise_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    full = "https://api.example.com/openai/v1/chat/completions"
    assert normalise_base_url(full) == "https://api.example.com/openai/v1"
    with pytest.raises(LLMError):
        normalise_base_url("localhost:8000")
