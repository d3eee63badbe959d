"""Admission is atomic, and resume repairs candidates an older autorec left without evaluations."""

import pytest

from autorec.archive import Archive, ArchiveError
from autorec.engine import run_search
from autorec.engine.search import resumed_config
from autorec.search_config import SearchConfig

SUITE = [("bowl", "toy", "toy")]


def _accounted(archive, run_id):
    """Every candidate is settled, and every evaluated one has its whole suite finished."""
    for candidate in archive.candidates(run_id):
        assert candidate.status in ("done", "failed", "invalid", "duplicate"), candidate
        evaluations = archive.evaluations_for(candidate.id)
        if candidate.status in ("invalid", "duplicate"):
            assert evaluations == []
        else:
            assert evaluations and all(e.status in ("done", "failed", "timeout") for e in evaluations)


def test_admit_writes_candidate_calls_and_evaluations_together(tmp_path):
    archive = Archive(tmp_path / "runs.db")
    run = archive.create_run("bowl", "tpe")
    call = {"backend": "openai", "model": "m", "prompt": "p", "response": "r", "tokens_in": 3}
    candidate, evaluations = archive.admit(run.id, {"x": 1}, members=SUITE, llm_calls=[call],
                                           reference=True, operator="reference")
    assert [e.candidate_id for e in evaluations] == [candidate.id]
    assert archive.get_run(run.id).reference_candidate_id == candidate.id
    assert archive.llm_calls_for(candidate.id)[0].tokens_in == 3
    # A failure inside the transaction (here: a suite naming one member twice) leaves nothing.
    with pytest.raises(ArchiveError):
        archive.admit(run.id, {"x": 2}, members=SUITE * 2, llm_calls=[call])
    assert [c.params for c in archive.candidates(run.id)] == [{"x": 1}]
    assert archive.llm_totals(run.id)["calls"] == 1
    # Duplicates and invalid proposals get no evaluations, but keep their calls.
    duplicate, none = archive.admit(run.id, {"x": 1}, members=SUITE, llm_calls=[call])
    assert duplicate.status == "duplicate" and none == []
    invalid, none = archive.admit(run.id, {"x": 9}, members=SUITE, status="invalid", error="bad")
    assert invalid.status == "invalid" and none == []
    assert archive.llm_totals(run.id)["calls"] == 2


def test_requeue_gives_an_orphan_the_runs_suite(tmp_path):
    archive = Archive(tmp_path / "runs.db")
    run = archive.create_run("bowl", "tpe")
    archive.admit(run.id, {"x": 1}, members=SUITE, reference=True)
    orphan = archive.add_candidate(run.id, {"x": 2})  # what a crash between two writes left
    assert archive.evaluations_for(orphan.id) == []
    archive.requeue_running(run.id)
    [evaluation] = archive.evaluations_for(orphan.id)
    assert (evaluation.member, evaluation.status) == ("bowl/toy/toy", "pending")


def test_admitting_the_reference_again_completes_an_orphaned_one(tmp_path):
    archive = Archive(tmp_path / "runs.db")
    run = archive.create_run("bowl", "tpe")
    orphan = archive.add_candidate(run.id, {"x": 1}, operator="reference")
    archive.requeue_running(run.id)  # no suite known yet: it stays as it is
    assert archive.evaluations_for(orphan.id) == []
    candidate, evaluations = archive.admit(run.id, {"x": 1}, members=SUITE, reference=True,
                                           operator="reference")
    assert candidate.id == orphan.id and len(evaluations) == 1
    assert archive.get_run(run.id).reference_candidate_id == orphan.id
    assert [c.id for c in archive.candidates(run.id)] == [orphan.id]


@pytest.mark.slow
def test_resume_evaluates_candidates_an_older_version_left_pending(ray_tmp, bowl, tmp_path):
    db = tmp_path / "runs.db"
    archive = Archive(db)
    config = SearchConfig(space=bowl, proposer="tpe", budget=3, run_name="old", seed=1)
    run_search(config, archive)
    run = archive.get_run("old")
    # The state an older autorec left when killed between writing a candidate and its suite.
    orphan = archive.add_candidate(run.id, {"x": -1.0, "y": 2, "mode": "ok"}, operator="tpe")
    archive.set_run_status(run.id, "interrupted")

    run_id, resumed = resumed_config(archive, "old", {"budget": 5})
    run_search(resumed, archive, resume_run_id=run_id)
    assert archive.get_run(run.id).status == "finished"
    assert archive.get_candidate(orphan.id).status == "done"
    _accounted(archive, run.id)
    evaluations = sum(len(archive.evaluations_for(c.id)) for c in archive.candidates(run.id))
    assert evaluations == 5
