"""The default proposer end to end, through `autorec search`: the agent on the embedded model,
and on a real OpenAI-compatible server (llama.cpp's, serving the same GGUF on loopback); an API
key never stored nor printed."""

import importlib.util
import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autorec.agents.reply import extract_json
from autorec.archive import Archive
from autorec.cli import app
from autorec.space import load_space

runner = CliRunner()


def _openai_backend_tests():
    path = Path(__file__).parents[1] / "agents" / "test_llm_openai.py"
    spec = importlib.util.spec_from_file_location("autorec_tests_llm_openai", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_openai = _openai_backend_tests()
# The real llama.cpp server those tests start, and their scripted HTTP server, as fixtures here.
server_url, scripted = _openai.server_url, _openai.scripted


def written_by_the_llm(archive, candidates, space):
    """The candidates whose params are the LLM's own last reply (not a mutation of a repeat)."""
    written = []
    for candidate in candidates:
        calls = archive.llm_calls_for(candidate.id)
        if not calls or "+mutate" in candidate.operator or candidate.status == "invalid":
            continue
        reply, _ = extract_json(calls[-1].response)  # the first JSON object in the reply
        reply = {k: v for k, v in (reply or {}).items() if k != "rationale"}
        if reply and space.validate(reply).model_dump(mode="json") == candidate.params:
            written.append(candidate)
    return written


@pytest.mark.slow
def test_search_without_a_proposer_flag_runs_the_llm_agent(ray_tmp, bowl, tmp_path):
    config = tmp_path / "search.yaml"
    # Only the LLM operator, so every proposal after the reference comes from the local model;
    # `differ` off, since it could bar the bowl's test switch `mode` from "ok".
    config.write_text("proposer_options: {operators: llm, differ: false}\n")
    result = runner.invoke(app, ["search", "--space", bowl, "--config", str(config),
                                 "--budget", "3", "--run-name", "agent", "--json"])
    assert result.exit_code == 0, result.output
    archive = Archive("runs.db", create=False)
    run = archive.get_run("agent")
    assert run.proposer == "agent"
    proposed = [c for c in archive.candidates(run.id) if c.operator != "reference"]
    assert proposed and all(c.operator.startswith("llm") for c in proposed)
    # Schema-constrained decoding: every local proposal parsed and validated.
    assert all(c.status in ("done", "duplicate") for c in proposed), [
        (c.status, c.error) for c in proposed
    ]
    calls = [call for c in proposed for call in archive.llm_calls_for(c.id)]
    assert calls and all(call.tokens_in > 0 and call.tokens_out > 0 for call in calls)
    assert all(call.backend == "local" for call in calls)
    assert written_by_the_llm(archive, proposed, load_space(bowl)), [
        (c.operator, c.params, [call.response for call in archive.llm_calls_for(c.id)])
        for c in proposed
    ]
    shown = runner.invoke(app, ["archive", "show", str(proposed[0].id), "--json"])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["llm_calls"]


@pytest.mark.slow
def test_a_whole_search_with_an_openai_compatible_server(ray_tmp, bowl, tmp_path, server_url):
    config = tmp_path / "search.yaml"
    config.write_text("proposer_options: {operators: llm}\n")
    result = runner.invoke(app, ["search", "--space", bowl, "--config", str(config),
                                 "--llm", "openai:smollm2", "--llm-base-url", server_url,
                                 "--budget", "3", "--run-name", "remote", "--json"])
    assert result.exit_code == 0, result.output
    archive = Archive("runs.db", create=False)
    run = archive.get_run("remote")
    assert run.config["proposer_options"]["llm"] == "openai:smollm2"
    proposed = [c for c in archive.candidates(run.id) if c.operator != "reference"]
    calls = [call for c in proposed for call in archive.llm_calls_for(c.id)]
    assert calls and all(call.backend == "openai" and call.tokens_out > 0 for call in calls)
    assert written_by_the_llm(archive, proposed, load_space(bowl)), [
        (c.operator, c.status, c.error, [call.response for call in archive.llm_calls_for(c.id)])
        for c in proposed
    ]
    assert json.loads(result.stdout)["evaluations"] == 3


MARKER = "sk-marker-5f1e2d"


def stored_text(db) -> str:
    """Everything in the archive, every table and column, as SQL text."""
    with sqlite3.connect(db) as connection:
        return "\n".join(connection.iterdump())


def agent_search_args(bowl, base_url, run_name, operators="llm,tpe,mutate"):
    with open(f"{run_name}.yaml", "w") as out:
        yaml.safe_dump({"proposer_options": {"operators": operators}}, out)
    return ["search", "--space", bowl, "--config", f"{run_name}.yaml", "--llm", "openai:echo",
            "--llm-base-url", base_url, "--budget", "3", "--run-name", run_name]


def test_an_api_key_is_never_stored_nor_printed(ray_tmp, bowl, scripted, monkeypatch):
    """A server that echoes the Authorization header: in its first answer an error, in every
    later one the reply's rationale."""

    def echo(body):
        auth = scripted.requests[-1][1].get("Authorization", "")
        n = len(scripted.requests)
        if n == 1:
            return 401, {"error": {"message": f"invalid key: {auth}"}}
        reply = {"x": round(0.5 * n - 4, 2), "y": 1, "rationale": f"{auth} asked for this"}
        return 200, _openai.answer(json.dumps(reply))

    scripted.script = echo
    monkeypatch.delenv("AUTOREC_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    url = f"http://127.0.0.1:{scripted.server_port}/v1"
    # Only the LLM proposes: its first call is refused with the key in the error, the next two
    # replies carry the key in their rationale.
    result = runner.invoke(app, agent_search_args(bowl, url, "env-key", operators="llm"))
    assert result.exit_code == 0, result.output
    assert scripted.requests[0][1]["Authorization"] == f"Bearer {MARKER}"  # it could leak
    archive = Archive("runs.db", create=False)
    statuses = [c.status for c in archive.candidates(archive.get_run("env-key").id)]
    assert statuses.count("invalid") == 1 and statuses.count("done") == 3
    assert MARKER not in stored_text("runs.db")
    assert MARKER not in result.output

    # A key inside the base URL, as some hosted endpoints take it, and so inside argv too.
    monkeypatch.delenv("OPENAI_API_KEY")
    url_with_key = f"http://autorec:{MARKER}@127.0.0.1:{scripted.server_port}/v1"
    args = agent_search_args(bowl, url_with_key, "url-key")
    monkeypatch.setattr(sys, "argv", ["autorec", *args])  # what the archive records as argv
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert MARKER not in stored_text("runs.db")
    assert MARKER not in result.output
