"""A screened proposal is stored with its LLM calls and reason, costs no evaluation, and does not
block the same params from being evaluated when they are proposed again."""

import pytest

import autorec
from autorec.agents import PROPOSERS
from autorec.archive import Archive


@pytest.fixture(autouse=True)
def scripted_proposer(monkeypatch):
    monkeypatch.setitem(PROPOSERS._targets, "scripted", "scripted_proposers:Scripted")


def test_screened_proposals_are_kept_but_never_evaluated(ray_tmp, bowl, tmp_path):
    params = [{"x": 1.0, "y": 1}, {"x": 2.0, "y": 2}, {"x": 1.0, "y": 1}, {"x": 0.5, "y": 0}]
    result = autorec.search(
        bowl, proposer="scripted", run_name="screen", db=str(tmp_path / "runs.db"), budget=10,
        proposer_options={"params": params, "screened": [0], "tokens_in": 50, "tokens_out": 5},
    )  # fmt: skip
    archive = Archive(str(tmp_path / "runs.db"), create=False)
    run = archive.get_run("screen")
    rows = [c for c in archive.candidates(run.id) if c.operator == "scripted"]
    assert [c.status for c in rows] == ["screened", "done", "done", "done"]
    assert rows[0].error == "screened by the script" and rows[0].fitness is None
    assert rows[2].params == rows[0].params and rows[2].duplicate_of is None  # evaluated later
    assert result.evaluations == 4  # the reference and three candidates: the screened one is free
    (call,) = archive.llm_calls_for(rows[0].id)  # what the screened proposal cost is kept
    assert call.tokens_in == 50
    assert [b.candidate_id for b in archive.best_so_far(run.id)].count(rows[0].id) == 0
