"""What a report shows about one run, read from the archive in a few column queries.

A run may hold 100,000 candidates, so the loader selects only the columns the figures need (no
params, no rationales, no prompts) and reads full rows only for the few candidates shown in
tables (the top N, the incumbents, the latest failures). Everything selection-related comes from
the validation side (`fitness`, `objectives`); test figures (`reported`) are only carried along
to be printed beside the candidates validation chose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from autorec.archive.queries import front_ids, json_column
from autorec.archive.tables import Candidate, CandidateStatus, LLMCall, Run
from autorec.errors import AutorecError

# Proposals that cost no evaluation: left out of the evaluation axis (as Archive.best_so_far).
UNEVALUATED = (
    CandidateStatus.INVALID.value, CandidateStatus.DUPLICATE.value, CandidateStatus.SCREENED.value
)
FAILED = (CandidateStatus.FAILED.value, CandidateStatus.INVALID.value)
DONE = CandidateStatus.DONE.value


@dataclass
class Node:
    """One candidate as the figures see it."""

    id: int
    parents: list[int]
    operator: str
    status: str
    fitness: float | None
    objectives: dict[str, float]
    seconds: float | None  # when it finished, in seconds since the run started


@dataclass
class Incumbent:
    """A candidate that was the best so far when it finished: what validation chose then."""

    evaluation: int  # 1-based index among evaluated candidates
    seconds: float | None
    candidate: Candidate


@dataclass
class LLMUsage:
    tokens_in: list[int] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def calls(self) -> int:
        return len(self.tokens_in)


@dataclass
class RunData:
    run: Run
    objectives: list[Any]  # the space's Objective objects (name, direction, weight)
    nodes: list[Node]  # every candidate, creation order
    top: list[Candidate]  # best validation fitness first, full rows
    incumbents: list[Incumbent]
    failures: list[Candidate]  # latest first, full rows
    failure_reasons: Counter
    llm: LLMUsage
    front_ids: list[int]  # the Pareto front over the raw objectives
    notes: list[str] = field(default_factory=list)  # what the report could not show, and why

    @property
    def chosen(self) -> Candidate | None:
        """The candidate validation chose: the best fitness."""
        return self.top[0] if self.top else None

    @property
    def evaluated(self) -> list[Node]:
        return [n for n in self.nodes if n.status not in UNEVALUATED]

    def status_counts(self) -> dict[str, int]:
        return dict(Counter(n.status for n in self.nodes))


def load_run(archive, run: Run, top: int = 10, failures: int = 20) -> RunData:
    """Everything a report shows about `run` (a Run row of `archive`)."""
    from autorec.cli.archive import run_objectives  # one rule for which objectives a run used

    notes = []
    try:
        objectives = run_objectives(archive, run)
    except AutorecError as err:  # an old run whose space plugin is gone: no Pareto front
        objectives = []
        notes.append(f"no Pareto front: {err}")
    # A private session: the report reads columns, not the full rows Archive's methods return.
    with archive._read() as s:
        nodes = _nodes(s, run)
        failed = s.exec(
            select(Candidate)
            .where(Candidate.run_id == run.id, col(Candidate.status).in_(FAILED))
            .order_by(col(Candidate.id).desc())
            .limit(failures)
        ).all()
        reasons = Counter(
            reason(e) for (e,) in s.execute(
                select(Candidate.error)
                .where(Candidate.run_id == run.id, col(Candidate.status).in_(FAILED))
            ).all()
        )
        llm = _llm(s, run.id)
    best = archive.top(run.id, top)
    incumbents = _incumbents(archive, nodes)
    pairs = [(o.name, getattr(o.direction, "value", o.direction)) for o in objectives]
    front = front_ids(((n.id, n.objectives) for n in nodes if n.status == DONE), pairs)
    return RunData(
        run=run, objectives=objectives, nodes=nodes, top=best, incumbents=incumbents, failures=list(failed),
        failure_reasons=reasons, llm=llm, front_ids=front, notes=notes,
    )


def _nodes(s, run: Run) -> list[Node]:
    # JSON and timestamps come back raw and are parsed here in bulk: SQLAlchemy's per-value type
    # processing, then json.loads per value, were most of a 100,000-candidate report's time.
    raw = [sa.type_coerce(c, sa.Text) for c in (
        Candidate.parent_ids, Candidate.objectives, Candidate.finished_at)]
    rows = s.execute(
        select(Candidate.id, Candidate.operator, Candidate.status, Candidate.fitness, *raw)
        .where(Candidate.run_id == run.id)
        .order_by(col(Candidate.id))
    ).all()
    parents = json_column([r[4] for r in rows])
    objectives = json_column([r[5] for r in rows])
    start = run.started_at
    return [
        Node(id=r[0], parents=list(p or []), operator=r[1] or "-", status=r[2], fitness=r[3],
             objectives=dict(o or {}), seconds=_since(start, r[6]))
        for r, p, o in zip(rows, parents, objectives)
    ]


def _since(start: datetime | None, when: datetime | str | None) -> float | None:
    if start is None or when is None:
        return None
    if isinstance(when, str):  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC)
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - start).total_seconds())


def _incumbents(archive, nodes: list[Node]) -> list[Incumbent]:
    """Each evaluated candidate that raised the best validation fitness, in order."""
    found, best, k = [], None, 0
    for node in nodes:
        if node.status in UNEVALUATED:
            continue
        k += 1
        if node.fitness is not None and (best is None or node.fitness > best):
            best = node.fitness
            found.append((k, node))
    return [Incumbent(k, n.seconds, archive.get_candidate(n.id)) for k, n in found]


def _llm(s, run_id: int) -> LLMUsage:
    usage = LLMUsage()
    for tin, tout, cost, latency, error in s.execute(
        select(LLMCall.tokens_in, LLMCall.tokens_out, LLMCall.cost, LLMCall.latency_s,
               LLMCall.error)
        .where(LLMCall.run_id == run_id)
        .order_by(col(LLMCall.id))
    ).all():
        usage.tokens_in.append(int(tin or 0))
        usage.tokens_out.append(int(tout or 0))
        usage.cost.append(float(cost or 0.0))
        usage.latency_s.append(float(latency or 0.0))
        usage.errors += bool(error)
    return usage


def reason(error: str | None, limit: int = 90) -> str:
    """A failure's reason: the last line of its error (a traceback's summary), shortened."""
    lines = [line.strip() for line in (error or "").strip().splitlines() if line.strip()]
    text = lines[-1] if lines else "(no error recorded)"
    return text if len(text) <= limit else text[: limit - 1] + "…"
