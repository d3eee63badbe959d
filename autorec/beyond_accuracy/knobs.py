"""The beyond-accuracy knobs as candidate fields of a search space (the architecture space).

Sequential candidates get the two re-rankers, CTR candidates the two fairness regularisers.
Every knob defaults to off, and a knob at its off value is left out of the candidate's dump, so
a candidate that does not use them keeps the params, the hash and the training settings it had
before the knobs existed. A search samples them only when it optimises or constrains a metric
of their family (or the space setting `knobs` names it): otherwise they would only cost
accuracy that no objective pays for.
"""

from __future__ import annotations

from typing import Any

import pydantic

F = pydantic.Field

# family -> (task, knob -> (type, field))
KNOBS: dict[str, tuple[str, dict[str, tuple[type, Any]]]] = {
    "diversity": ("sequential", {
        "rerank_mmr_weight": (float, F(0.0, ge=0.0, le=1.0, description=(
            "MMR re-ranking of the top-10 over item genres: 0 = the model's order, higher "
            "trades relevance for genre diversity"))),
        "rerank_target_genres": (int, F(0, ge=0, le=19, description=(
            "re-rank each top-10 to cover this many genres (DLCRec's control number); 0 = off; "
            "not together with rerank_mmr_weight"))),
    }),
    "fairness": ("ctr", {
        "fair_adversary_weight": (float, F(0.0, ge=0.0, le=100.0, description=(
            "adversarial gender head on the user_id embedding: the embeddings learn to leave "
            "its scores no spread; 0 = off"))),
        "fair_orthogonality_weight": (float, F(0.0, ge=0.0, le=100.0, description=(
            "penalise the user_id embedding along the gender head's direction (FairRec's "
            "orthogonality); 0 = off"))),
    }),
}  # fmt: skip
OFF: dict[str, Any] = {
    name: field.default for _, knobs in KNOBS.values() for name, (_, field) in knobs.items()
}


def knob_fields(task: str) -> dict[str, tuple[type, Any]]:
    """The pydantic fields of the knobs that apply to `task`."""
    return {name: spec for t, knobs in KNOBS.values() if t == task for name, spec in knobs.items()}


def drop_off(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the knobs that are off (the dump and the hash of an older candidate)."""
    return {k: v for k, v in values.items() if k not in OFF or v != OFF[k]}


def sample(trial: Any, task: str, families: list[str]) -> dict[str, Any]:
    """Knob values for an Optuna trial, for the families a search is judged on."""
    values: dict[str, Any] = {}
    if task == "sequential" and "diversity" in families:
        mode = trial.suggest_categorical("rerank", ["off", "mmr", "target_genres"])
        if mode == "mmr":
            values["rerank_mmr_weight"] = trial.suggest_float("rerank_mmr_weight", 0.05, 0.9)
        elif mode == "target_genres":
            values["rerank_target_genres"] = trial.suggest_int("rerank_target_genres", 2, 14)
    if task == "ctr" and "fairness" in families:
        values["fair_adversary_weight"] = _off_or_log(trial, "fair_adversary_weight", 0.1, 100.0)
        values["fair_orthogonality_weight"] = _off_or_log(
            trial, "fair_orthogonality_weight", 0.1, 10.0
        )
    return values


def _off_or_log(trial: Any, name: str, low: float, high: float) -> float:
    if not trial.suggest_categorical(f"{name}_on", [False, True]):
        return 0.0
    return trial.suggest_float(name, low, high, log=True)
