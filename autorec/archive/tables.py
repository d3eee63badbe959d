"""The archive's tables, their status vocabularies, and how values are stored.

JSON columns (params, metrics, objectives, config, ...) go through `JSONValue`. JSON has no NaN or
infinity, yet a diverged loss or an unbounded latency is exactly what an archive must keep, so a
non-finite float is stored as a one-key object: ``{"$float": "nan"}``, ``{"$float": "inf"}`` or
``{"$float": "-inf"}``, and read back as the float. The encoding is valid JSON for every database
(SQLite's json functions and PostgreSQL included) and cannot collide with a string value such as a
categorical choice ``"inf"``. The same encoding also turns pydantic models, enums and numpy/torch
scalars and arrays into plain JSON, and it is what `params_hash` hashes.

Timestamps are timezone-aware UTC datetimes on the Python side (stored naive, as UTC).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

NONFINITE_TAG = "$float"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class RunStatus(str, Enum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class CandidateStatus(str, Enum):
    PENDING = "pending"  # recorded, no evaluation started
    RUNNING = "running"  # some evaluation started or finished, fitness not in yet
    DONE = "done"  # every suite member in and fitness computed
    FAILED = "failed"  # a gate failed or an evaluation raised or timed out: never a parent
    INVALID = "invalid"  # the proposal did not validate against the space's Candidate schema
    DUPLICATE = "duplicate"  # same params as an earlier candidate of the run (see duplicate_of)
    STOPPED = "stopped"  # stopped early by successive halving: partial metrics, no fitness
    # A valid proposal the proposer chose not to evaluate (the portfolio's surrogate ranked it
    # below TPE's draw): kept with its LLM calls and the reason; the same params proposed later
    # are a new candidate, not its duplicate.
    SCREENED = "screened"


class EvaluationStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"
    STOPPED = "stopped"  # behind its rung: stopped early, may be promoted (run again) later


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_json(value: Any) -> Any:
    """`value` as plain JSON data, with non-finite floats tagged (see the module docstring)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {NONFINITE_TAG: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, Mapping):
        return {str(to_json(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "model_dump"):  # pydantic models: candidates, configs
        return to_json(value.model_dump(mode="json"))
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return to_json(value.tolist())
    raise TypeError(f"cannot store a {type(value).__name__} in the archive as JSON: {value!r}")


def from_json(value: Any) -> Any:
    """Inverse of `to_json`: tagged non-finite floats become floats again."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get(NONFINITE_TAG) in _NONFINITE:
            return _NONFINITE[value[NONFINITE_TAG]]
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(
        to_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def params_hash(params: Any) -> str:
    """The dedupe key of a candidate: sha256 of its params as canonical JSON.

    Hash validated params (the space's Candidate model, or its model_dump): `1` and `1.0` are
    different JSON, and validation is what makes them the same value.
    """
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


class JSONValue(sa.types.TypeDecorator):
    """A JSON column that keeps NaN and ±inf; Python None is SQL NULL."""

    impl = sa.JSON
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(none_as_null=True)

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else to_json(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else from_json(value)


class UTCDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite has no time zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the archive stores aware UTC datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Run(SQLModel, table=True):
    """One `autorec search`: what it searched, with what, and where it stands."""

    __tablename__ = "run"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    space: str
    space_version: str = ""
    proposer: str
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONValue)
    seed: int | None = None
    status: str = RunStatus.RUNNING.value
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    environment: dict[str, Any] = Field(default_factory=dict, sa_type=JSONValue)
    proposer_state: dict[str, Any] | None = Field(default=None, sa_type=JSONValue)
    # Not a foreign key: run and candidate would reference each other, which SQLite cannot create.
    reference_candidate_id: int | None = None
    # What the space declared when the run started (objectives, gates, selection and reported
    # metrics, candidate schema, description): review and export read it instead of importing
    # the space's plugin or loading its dataset again.
    space_contract: dict[str, Any] | None = Field(default=None, sa_type=JSONValue)


# The candidates that own their params hash: originals (not duplicates) that are not screened.
UNIQUE_HASH_WHERE = "duplicate_of IS NULL AND status <> 'screened'"


class Candidate(SQLModel, table=True):
    """A proposal: its params, where it came from, and (once its suite is in) its fitness."""

    __tablename__ = "candidate"
    __table_args__ = (
        # One original per params hash and run; recorded duplicates point at it via duplicate_of.
        sa.Index(
            "uq_candidate_run_hash",
            "run_id",
            "hash",
            unique=True,
            sqlite_where=sa.text(UNIQUE_HASH_WHERE),
            postgresql_where=sa.text(UNIQUE_HASH_WHERE),
        ),
        # Also the index of the run_id foreign key.
        sa.Index("ix_candidate_run_status", "run_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE")
    hash: str
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSONValue)
    parent_ids: list[int] = Field(default_factory=list, sa_type=JSONValue)
    operator: str | None = None
    generation: int = 0
    rationale: str | None = Field(default=None, sa_type=sa.Text)
    status: str = CandidateStatus.PENDING.value
    fitness: float | None = None
    error: str | None = Field(default=None, sa_type=sa.Text)
    objectives: dict[str, float] | None = Field(default=None, sa_type=JSONValue)
    # Mean over the suite of the space's reported metrics (the test split): shown beside the
    # objectives, never used to rank or shown to a proposer.
    reported: dict[str, float] | None = Field(default=None, sa_type=JSONValue)
    duplicate_of: int | None = Field(
        default=None, foreign_key="candidate.id", index=True, ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Evaluation(SQLModel, table=True):
    """One candidate on one suite member (model, dataset, task)."""

    __tablename__ = "evaluation"
    __table_args__ = (
        sa.UniqueConstraint("candidate_id", "member", name="uq_evaluation_candidate_member"),
        # Also the index of the run_id foreign key.
        sa.Index("ix_evaluation_run_status", "run_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # run_id repeats the candidate's run so that "what is pending in this run" needs no join.
    run_id: int = Field(foreign_key="run.id", ondelete="CASCADE")
    candidate_id: int = Field(foreign_key="candidate.id", index=True, ondelete="CASCADE")
    member: str
    model: str
    dataset: str
    task: str
    status: str = EvaluationStatus.PENDING.value
    metrics: dict[str, Any] | None = Field(default=None, sa_type=JSONValue)
    error: str | None = Field(default=None, sa_type=sa.Text)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    seconds: float | None = None
    node: str | None = None
    attempt: int = 0
    trial_id: str | None = None


class LLMCall(SQLModel, table=True):
    """One completion request: what was asked, what came back, and what it cost."""

    __tablename__ = "llm_call"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True, ondelete="CASCADE")
    candidate_id: int | None = Field(
        default=None, foreign_key="candidate.id", index=True, ondelete="SET NULL"
    )
    backend: str
    model: str
    # A prompt string or the chat messages sent, as JSON.
    prompt: Any = Field(default=None, sa_type=JSONValue, nullable=True)
    response: str | None = Field(default=None, sa_type=sa.Text)
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SchemaVersion(SQLModel, table=True):
    """One row: the schema version the archive was last written with."""

    __tablename__ = "schema_version"

    id: int = Field(default=1, primary_key=True)
    version: int


TABLES = [Run, Candidate, Evaluation, LLMCall, SchemaVersion]
