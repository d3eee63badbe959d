"""API keys and other secrets never reach the archive, an error message or a log."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import sys
import threading
from pathlib import Path

import pytest

from autorec.agents.llm import LLMError
from autorec.agents.llm.openai_compat import OpenAIBackend
from autorec.archive import Archive
from autorec.secrets import redact, redact_data, register

KEY = "sk-test-4f9a1c7e2b8d6a0e3c5f"  # a made-up key of OpenAI's shape
MESSAGES = [{"role": "user", "content": "Propose x and y as JSON."}]


class EchoHeaders(http.server.BaseHTTPRequestHandler):
    """A careless server: a 500 whose body echoes the request's headers, Authorization included."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sent = f"Authorization: {self.headers.get('Authorization')}; {dict(self.headers)}"
        body = json.dumps({"error": {"message": f"internal error; request headers: {sent}"}})
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def echo_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHeaders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redact_masks_registered_env_and_url_credentials(monkeypatch):
    monkeypatch.setenv("AUTOREC_SERVICE_KEY", "service-secret-123")
    register("registered-secret-456")
    text = ("key service-secret-123, registered-secret-456, https://alice:pa55word@db.example/x, "
            "https://api.example/v1?api_key=abcdef123&model=m, Authorization: Bearer tok_abcdefgh, "
            f"{KEY}")
    cleaned = redact(text)
    for secret in ("service-secret-123", "registered-secret-456", "pa55word", "abcdef123",
                   "tok_abcdefgh", KEY):
        assert secret not in cleaned, secret
    assert "model=m" in cleaned and "db.example/x" in cleaned  # the rest stays readable
    assert redact_data({"argv": ["--llm-base-url", "https://u:pw123456@h"]}) == {
        "argv": ["--llm-base-url", "https://***@h"]
    }


def test_a_server_that_echoes_the_key_does_not_get_it_into_the_error(echo_server):
    backend = OpenAIBackend("m", echo_server, api_key=KEY, retries=1, backoff_s=0)
    with pytest.raises(LLMError) as raised:
        backend.complete(MESSAGES)
    message = str(raised.value)
    assert "HTTP 500" in message and "request headers" in message  # the server's text is kept
    assert KEY not in message and "***" in message
    [call] = raised.value.calls  # the failed call's record, for the archive
    assert call.error == message and call.text == ""


def test_an_unreachable_endpoint_warns_once_on_stderr(capsys):
    backend = OpenAIBackend("m", f"http://127.0.0.1:{closed_port()}", api_key=KEY, retries=1,
                            backoff_s=0)
    for _ in range(3):
        with pytest.raises(LLMError):
            backend.complete(MESSAGES)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "unreachable" in err
    assert KEY not in err


def test_the_archive_stores_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(sys, "argv", ["autorec", "search", "--llm-base-url", "https://u:hunter2pass@h"])
    archive = Archive(tmp_path / "runs.db")
    run = archive.create_run("bowl", "agent", config={"proposer_options": {
        "llm_base_url": "https://h/v1?api_key=query-secret-789"}})
    candidate = archive.add_candidate(run.id, {"x": 1}, rationale=f"I was told {KEY}")
    archive.record_llm_call(run.id, "openai", "m", [{"role": "user", "content": KEY}],
                            f"echo {KEY}", candidate_id=candidate.id, error=f"HTTP 500: Bearer {KEY}")
    archive.finish_evaluation(archive.add_evaluation(candidate.id, "bowl", "toy", "toy").id,
                              "failed", error=f"boom {KEY}")
    archive.set_candidate_result(candidate.id, "failed", error=f"boom {KEY}")
    archive.close()
    for path in tmp_path.glob("runs.db*"):
        data = path.read_bytes()
        for secret in (KEY, "hunter2pass", "query-secret-789"):
            assert secret.encode() not in data, (path.name, secret)


def test_log_records_are_redacted(caplog):
    register(KEY)
    with caplog.at_level(logging.INFO):
        logging.getLogger("autorec.test").info("calling with %s", KEY)
    assert KEY not in caplog.text and "***" in caplog.text


@pytest.mark.slow
def test_a_search_against_an_echoing_server_keeps_the_key_out(ray_tmp, bowl, echo_server, tmp_path,
                                                               monkeypatch):
    from autorec.agents.agent import LLMProposer
    from autorec.engine import run_search
    from autorec.search_config import SearchConfig
    from autorec.space import load_space

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = OpenAIBackend("m", echo_server, retries=1, backoff_s=0)  # the key from the env
    space = load_space(bowl)
    proposer = LLMProposer(space, 0, backend=backend, repairs=0)
    config = SearchConfig(space=bowl, proposer="llm", budget=3, run_name="echo",
                          proposer_options={"llm": "openai:m", "llm_base_url": echo_server})
    archive = Archive(tmp_path / "runs.db")
    run_search(config, archive, proposer=proposer)
    run = archive.get_run("echo")
    invalid = archive.candidates(run.id, status="invalid")
    assert invalid, "the LLM's failures are recorded as invalid proposals"
    calls = archive.llm_calls_for(invalid[0].id)
    assert calls and "HTTP 500" in calls[0].error and "***" in calls[0].error
    archive.close()
    for path in Path(tmp_path).glob("runs.db*"):
        assert KEY.encode() not in path.read_bytes(), path.name
