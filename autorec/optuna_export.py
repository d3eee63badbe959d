"""A run written as an Optuna study, so optuna-dashboard and Optuna's own plots open it.

Each candidate with a result becomes one trial: done -> COMPLETE with its fitness (validation,
higher is better), stopped early -> PRUNED, failed or invalid -> FAIL; duplicates and candidates
still waiting are left out. Objectives, test figures (reported only), operator and lineage go into
the trial's user attributes. Optuna needs a distribution per parameter: numbers get the range the
run explored (integers stay integers), everything else a categorical over the values seen.
"""

from __future__ import annotations

import json
from typing import Any

from autorec.errors import AutorecError

STATES = {"done": "COMPLETE", "stopped": "PRUNED", "failed": "FAIL", "invalid": "FAIL"}


class OptunaExportError(AutorecError):
    """The study cannot be written (it exists already, or the storage is unreachable)."""


def export_run(archive: Any, run: Any, storage: str, study_name: str | None = None) -> int:
    """Write `run` into `storage` as a new study; return the number of trials written."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    candidates = [c for c in archive.candidates(run.id) if c.status in STATES]
    values: dict[str, list[Any]] = {}
    for c in candidates:
        for key, value in _flat(c.params).items():
            values.setdefault(key, []).append(value)
    distributions = {key: _distribution(seen, CategoricalDistribution, FloatDistribution,
                                        IntDistribution) for key, seen in values.items()}
    name = study_name or run.name
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        raise OptunaExportError(f"a study named '{name}' already exists in {storage}") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's errors for an unusable storage URL
        raise OptunaExportError(f"cannot write to the Optuna storage {storage}: "
                                f"{str(err).splitlines()[0]}") from None
    study.set_user_attr("autorec_run", run.name)
    study.set_user_attr("autorec_space", run.space)
    for c in candidates:
        params = _flat(c.params)
        state = TrialState[STATES[c.status]]
        study.add_trial(create_trial(
            params=params,
            distributions={k: distributions[k] for k in params},
            value=c.fitness if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs={
                "autorec_candidate_id": c.id, "operator": c.operator or "",
                "parents": list(c.parent_ids), "objectives": c.objectives or {},
                "test_metrics_reported_only": c.reported or {}, "error": c.error or "",
            },
        ))
    return len(candidates)


def _flat(params: dict[str, Any]) -> dict[str, Any]:
    """Optuna takes scalars: lists and mappings are kept as their JSON text."""
    return {k: v if isinstance(v, (str, int, float, bool)) or v is None
            else json.dumps(v, sort_keys=True) for k, v in params.items()}


def _distribution(seen: list[Any], categorical, floating, integer):
    numbers = [v for v in seen if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(seen) and min(numbers) < max(numbers):
        if all(isinstance(v, int) for v in numbers):
            return integer(min(numbers), max(numbers))
        return floating(float(min(numbers)), float(max(numbers)))
    return categorical(list(dict.fromkeys(seen)))
