"""Fitness: each member's raw objectives relative to the reference candidate, weighted.

For an objective to maximise, a member contributes weight * (value - ref) / |ref|; to minimise,
weight * (ref - value) / |ref|. The reference itself therefore scores 0, a candidate that is 1%
better in AUC at equal size scores +0.01, and one that halves the parameters at a weight of 0.05
gains 0.025. A candidate's fitness is the mean over its suite; one failed member, a failed gate or a
non-finite objective means no fitness at all, so such a candidate is never chosen as a parent.
"""

from __future__ import annotations

import math
from typing import Mapping

from autorec.space import Constraint, Objective


def relative_gain(value: float, reference: float, direction: str) -> float:
    scale = abs(reference) if reference != 0 else 1.0
    gain = (value - reference) / scale
    return gain if direction == "max" else -gain


def member_fitness(
    metrics: Mapping[str, float], reference: Mapping[str, float], objectives: list[Objective]
) -> float | None:
    total = 0.0
    for objective in objectives:
        value, ref = metrics.get(objective.name), reference.get(objective.name)
        if value is None or ref is None or not _finite(value) or not _finite(ref):
            return None
        total += objective.weight * relative_gain(float(value), float(ref), objective.direction)
    return total


def candidate_fitness(
    member_metrics: Mapping[str, Mapping[str, float]],
    reference_metrics: Mapping[str, Mapping[str, float]],
    objectives: list[Objective],
    gates: list[str] = (),
    constraints: list[Constraint] = (),
) -> float | None:
    """Mean member fitness over the suite, or None when any member cannot be scored."""
    if not member_metrics:
        return None
    scores = []
    for member, metrics in member_metrics.items():
        if any(not metrics.get(gate) for gate in gates):
            return None
        if violated_constraints(metrics, constraints):
            return None
        if member not in reference_metrics:
            return None
        score = member_fitness(metrics, reference_metrics[member], objectives)
        if score is None:
            return None
        scores.append(score)
    return sum(scores) / len(scores)


def raw_objectives(
    member_metrics: Mapping[str, Mapping[str, float]], objectives: list[Objective]
) -> dict[str, float]:
    """Each objective's mean raw value over the suite: the coordinates of the Pareto front."""
    return mean_metrics(member_metrics, [o.name for o in objectives])


def mean_metrics(
    member_metrics: Mapping[str, Mapping[str, float]], names: list[str]
) -> dict[str, float]:
    """Each named metric's mean over the members that report it."""
    out = {}
    for name in names:
        values = [m[name] for m in member_metrics.values() if name in m]
        if values:
            out[name] = sum(float(v) for v in values) / len(values)
    return out


def violated_constraints(metrics: Mapping[str, float], constraints: list[Constraint]) -> list[str]:
    """The constraints `metrics` miss, as 'name<=bound (got value)'; a missing or non-finite
    value misses its constraint."""
    missed = []
    for constraint in constraints:
        value = metrics.get(constraint.name)
        if not _finite(value) or not constraint.holds(float(value)):
            got = "missing" if value is None else f"got {float(value):.6g}"
            missed.append(f"{constraint.text()} ({got})")
    return missed


def why_no_fitness(
    member_metrics: Mapping[str, Mapping[str, float]],
    objectives: list[Objective],
    gates: list[str] = (),
    constraints: list[Constraint] = (),
) -> str:
    """The first reason `candidate_fitness` gave None, for the archive."""
    for member, metrics in member_metrics.items():
        failed = [gate for gate in gates if not metrics.get(gate)]
        if failed:
            return f"{member}: gate {', '.join(failed)} failed"
        missed = violated_constraints(metrics, constraints)
        if missed:
            return f"{member}: constraint {'; '.join(missed)} not met"
        bad = non_finite_objectives(metrics, objectives)
        if bad:
            return f"{member}: objective(s) {', '.join(bad)} missing or not finite"
    return "the reference has no value for an objective"


def non_finite_objectives(metrics: Mapping[str, float], objectives: list[Objective]) -> list[str]:
    """Objectives missing from `metrics` or not finite: the reasons an evaluation failed."""
    return [o.name for o in objectives if not _finite(metrics.get(o.name))]


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
