"""The default proposer end to end: the agent on the embedded model, through `autorec search`."""

import json

import pytest
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_search_without_a_proposer_flag_runs_the_llm_agent(ray_tmp, bowl, tmp_path):
    config = tmp_path / "search.yaml"
    # Only the LLM operator, so every proposal after the reference comes from the local model.
    config.write_text("proposer_options: {operators: llm}\n")
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
    shown = runner.invoke(app, ["archive", "show", str(proposed[0].id), "--json"])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["llm_calls"]
