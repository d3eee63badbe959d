"""Read-side questions about a run: rankings, failures, lineage, Pareto front, progress.

Each function takes an open session and returns detached rows or plain data; `Archive` exposes
them as methods.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from autorec.archive.errors import NotFoundError
from autorec.archive.pareto import non_dominated
from autorec.archive.tables import (
    NONFINITE_TAG,
    Candidate,
    CandidateStatus,
    Evaluation,
    EvaluationStatus,
    LLMCall,
    from_json,
)

DONE = CandidateStatus.DONE.value
FAILED_STATUSES = (CandidateStatus.FAILED.value, CandidateStatus.INVALID.value)
# What benchmarks count: proposals that consumed (or will consume) an evaluation.
_UNEVALUATED = (
    CandidateStatus.INVALID.value, CandidateStatus.DUPLICATE.value, CandidateStatus.SCREENED.value
)


class BestSoFar(NamedTuple):
    candidate_id: int
    fitness: float | None  # this candidate's
    best: float | None  # the best fitness among it and every earlier candidate


def top(s: Session, run_id: int | None, n: int) -> list[Candidate]:
    query = select(Candidate).where(
        Candidate.status == DONE, col(Candidate.fitness).is_not(None)
    )
    if run_id is not None:
        query = query.where(Candidate.run_id == run_id)
    query = query.order_by(col(Candidate.fitness).desc(), col(Candidate.id)).limit(n)
    return list(s.exec(query).all())


def failures(s: Session, run_id: int, n: int) -> list[Candidate]:
    query = (
        select(Candidate)
        .where(Candidate.run_id == run_id, col(Candidate.status).in_(FAILED_STATUSES))
        .order_by(col(Candidate.id).desc())
        .limit(n)
    )
    return list(s.exec(query).all())


def children(s: Session, candidate: Candidate) -> list[Candidate]:
    # parent_ids is a JSON list, so the filter runs here; children always come later in the run.
    later = select(Candidate).where(
        Candidate.run_id == candidate.run_id, col(Candidate.id) > candidate.id
    )
    rows = s.exec(later.order_by(col(Candidate.id))).all()
    return [c for c in rows if candidate.id in c.parent_ids]


class _NodeRow(NamedTuple):
    id: int
    parent_ids: list[int]
    generation: int
    operator: str | None
    status: str
    fitness: float | None


def _node_rows(s: Session, *where: Any, ordered: bool = False) -> list[_NodeRow]:
    """Lineage rows; parent_ids read raw and parsed in one call (a run's later candidates can
    be 100,000 rows)."""
    query = select(Candidate.id, sa.type_coerce(Candidate.parent_ids, sa.Text),
                   Candidate.generation, Candidate.operator, Candidate.status,
                   Candidate.fitness).where(*where)
    if ordered:
        query = query.order_by(col(Candidate.id))
    rows = s.exec(query).all()
    parents = json_column([r[1] for r in rows])
    return [_NodeRow(r[0], list(p or []), r[2], r[3], r[4], r[5]) for r, p in zip(rows, parents)]


def _node(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "generation": row.generation,
        "operator": row.operator,
        "status": row.status,
        "fitness": row.fitness,
    }


def lineage(s: Session, candidate_id: int, where: str) -> dict[str, Any]:
    """{"candidate": node, "ancestors": [node + "parents"], "descendants": [node + "children"]}.

    A node is {"id", "generation", "operator", "status", "fitness"}. Ancestors nest through
    "parents" (several per node after a combine), descendants through "children"; a node reached
    twice is the same dict both times. Descendants are looked up in the candidate's own run.
    """
    found = _node_rows(s, Candidate.id == candidate_id)
    if not found:
        raise NotFoundError("candidate", candidate_id, where)
    root = found[0]
    run_id = s.exec(select(Candidate.run_id).where(Candidate.id == candidate_id)).one()

    rows: dict[int, Any] = {root.id: root}
    frontier = set(root.parent_ids)
    while frontier:
        fetched = _node_rows(s, col(Candidate.id).in_(frontier))
        rows.update((r.id, r) for r in fetched)
        frontier = {p for r in fetched for p in r.parent_ids if p not in rows}

    up: dict[int, dict[str, Any]] = {}

    def ancestors_of(row: Any) -> list[dict[str, Any]]:
        out = []
        for pid in row.parent_ids:
            if pid not in rows:  # a parent id that no longer exists
                continue
            if pid not in up:
                up[pid] = _node(rows[pid]) | {"parents": ancestors_of(rows[pid])}
            out.append(up[pid])
        return out

    later = _node_rows(s, Candidate.run_id == run_id, col(Candidate.id) > candidate_id,
                       ordered=True)
    kids: dict[int, list[Any]] = {}
    for r in later:
        for pid in r.parent_ids:
            kids.setdefault(pid, []).append(r)
    down: dict[int, dict[str, Any]] = {}

    def descendants_of(node_id: int) -> list[dict[str, Any]]:
        out = []
        for r in kids.get(node_id, []):
            if r.id not in down:
                down[r.id] = _node(r) | {"children": descendants_of(r.id)}
            out.append(down[r.id])
        return out

    return {
        "candidate": _node(root),
        "ancestors": ancestors_of(root),
        "descendants": descendants_of(root.id),
    }


def objective_pairs(objectives: Iterable[Any]) -> list[tuple[str, str]]:
    """(name, direction) pairs from tuples or from objects with .name and .direction."""
    pairs = []
    for o in objectives:
        name, direction = (o.name, o.direction) if hasattr(o, "name") else o
        pairs.append((str(name), str(getattr(direction, "value", direction))))
    return pairs


def pareto_front(
    s: Session, run_id: int, objectives: Sequence[tuple[str, str]]
) -> list[Candidate]:
    # Ids and objectives only: full rows (params, rationale, test figures) are read for the
    # front alone, which keeps a run of 100,000 candidates a column scan.
    done = s.exec(
        select(Candidate.id, sa.type_coerce(Candidate.objectives, sa.Text))
        .where(Candidate.run_id == run_id, Candidate.status == DONE)
        .order_by(col(Candidate.id))
    ).all()
    front = front_ids(zip([r[0] for r in done], json_column([r[1] for r in done])), objectives)
    rows = {c.id: c for c in s.exec(select(Candidate).where(col(Candidate.id).in_(front))).all()}
    return [rows[i] for i in front]


def front_ids(
    rows: Iterable[tuple[int, dict[str, Any] | None]], objectives: Sequence[tuple[str, str]]
) -> list[int]:
    """The ids of the non-dominated (id, objectives) rows; a row missing an objective, or with
    a non-finite value, is left out. Best first on the first objective."""
    names = [name for name, _ in objectives]
    scored, points = [], []
    for candidate_id, stored in rows:
        values = [(stored or {}).get(name) for name in names]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            scored.append(candidate_id)
            points.append(values)
    return [scored[i] for i in non_dominated(points, [d for _, d in objectives])]


def json_column(values: list[Any]) -> list[Any]:
    """A JSON column's values selected raw (``sa.type_coerce(column, sa.Text)``): SQLite gives
    text, parsed here in one json.loads call instead of one per row; PostgreSQL's driver gives
    them parsed. Tagged non-finite floats are decoded either way."""
    if not all(v is None or isinstance(v, str) for v in values):
        return [None if v is None else from_json(v) for v in values]
    parsed = json.loads("[" + ",".join("null" if v is None else v for v in values) + "]")
    return [from_json(p) if v is not None and NONFINITE_TAG in v else p
            for v, p in zip(values, parsed)]


def counts(s: Session, run_id: int) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, table, statuses in (
        ("candidates", Candidate, CandidateStatus),
        ("evaluations", Evaluation, EvaluationStatus),
    ):
        found = dict(
            s.exec(
                select(table.status, func.count())
                .where(table.run_id == run_id)
                .group_by(table.status)
            ).all()
        )
        out[key] = {status.value: found.get(status.value, 0) for status in statuses}
    return out


def best_so_far(s: Session, run_id: int) -> list[BestSoFar]:
    rows = s.exec(
        select(Candidate.id, Candidate.fitness)
        .where(Candidate.run_id == run_id, col(Candidate.status).not_in(_UNEVALUATED))
        .order_by(col(Candidate.id))
    ).all()
    series, best = [], None
    for cid, fitness in rows:
        if fitness is not None and (best is None or fitness > best):
            best = fitness
        series.append(BestSoFar(cid, fitness, best))
    return series


def llm_totals(s: Session, run_id: int) -> dict[str, float]:
    row = s.exec(
        select(
            func.count(),
            func.coalesce(func.sum(LLMCall.tokens_in), 0),
            func.coalesce(func.sum(LLMCall.tokens_out), 0),
            func.coalesce(func.sum(LLMCall.cost), 0.0),
            func.coalesce(func.sum(LLMCall.latency_s), 0.0),
        ).where(LLMCall.run_id == run_id)
    ).one()
    calls, tokens_in, tokens_out, cost, latency = row
    return {
        "calls": int(calls),
        "tokens_in": int(tokens_in),
        "tokens_out": int(tokens_out),
        "cost": float(cost),
        "latency_s": float(latency),
    }

