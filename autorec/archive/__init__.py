"""The archive: every run, candidate, evaluation and LLM call of a search, in SQLite (or any
SQLAlchemy database).

    archive = Archive("runs.db")
    run = archive.create_run("embedding-dims", "llm", config=config, seed=0)
    c = archive.add_candidate(run.id, params, parents=[parent.id], operator="refine")
    if c.status != "duplicate":
        archive.add_evaluations(c.id, suite)

Non-finite floats in JSON columns are stored as {"$float": "nan" | "inf" | "-inf"} and read back
as floats (see tables.py).
"""

from autorec.archive.errors import ArchiveError, NotFoundError
from autorec.archive.migrations import latest_version
from autorec.archive.queries import BestSoFar
from autorec.archive.store import Archive, check_run_name, collect_environment
from autorec.archive.tables import (
    Candidate,
    CandidateStatus,
    Evaluation,
    EvaluationStatus,
    LLMCall,
    Run,
    RunStatus,
    params_hash,
)

__all__ = [
    "Archive",
    "ArchiveError",
    "BestSoFar",
    "Candidate",
    "CandidateStatus",
    "Evaluation",
    "EvaluationStatus",
    "LLMCall",
    "NotFoundError",
    "Run",
    "RunStatus",
    "check_run_name",
    "collect_environment",
    "latest_version",
    "params_hash",
]
