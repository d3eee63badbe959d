"""A candidate as the training configs that retrain it: one TrainSpec per suite member.

A candidate is scored on every member of its space's suite (architecture: one member, whose model
the candidate chooses; embedding_dims: one per CTR model). `autorec train --config FILE` trains one
model, so a candidate exports as one TrainSpec per member, each a complete file on its own:

    specs = candidate_specs(archive, candidate_id)
    text = render(specs[0], "yaml")   # what `autorec train --config` reads back

The space is rebuilt from the run's stored options (dataset, task, space settings), so the
settings are the ones the search trained with, not today's defaults. Each spec is checked against
the trainer's schema before it is returned: an exported file always passes `autorec train`'s
validation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import yaml

from autorec.errors import AutorecError
from autorec.train_spec import TrainSpec, validate_spec

if TYPE_CHECKING:
    import pydantic

    from autorec.archive import Archive, Candidate, Run
    from autorec.space import SearchSpace, SuiteMember

FORMATS = ("yaml", "json")


class ExportError(AutorecError):
    """A candidate that cannot be turned into a training config."""


@dataclasses.dataclass(frozen=True)
class MemberSpec:
    """The TrainSpec that retrains a candidate on one suite member (`member` is its key)."""

    member: str
    spec: TrainSpec


@dataclasses.dataclass(frozen=True)
class Export:
    """Every member's spec of one candidate, and what a user should know about them."""

    run: str
    candidate_id: int
    members: list[MemberSpec]
    notes: list[str]

    def select(self, key: str | None) -> list[MemberSpec]:
        """The members named by `key`: a member key, a model name, or "all"; None: the first."""
        if key is None:
            return self.members[:1]
        if key == "all":
            return list(self.members)
        chosen = [m for m in self.members if key in (m.member, m.spec.model)]
        if not chosen:
            known = ", ".join(m.member for m in self.members)
            raise ExportError(f"candidate {self.candidate_id} has no suite member {key!r}; "
                              f"its members: {known}")
        return chosen[:1]


def candidate_specs(archive: Archive, candidate_id: int) -> Export:
    """The TrainSpecs of one archived candidate, in suite order."""
    from autorec.space import load_space_class

    candidate = archive.get_candidate(candidate_id)
    run = archive.get_run(candidate.run_id)
    notes: list[str] = []
    installed = load_space_class(run.space).version
    if run.space_version and str(installed) != run.space_version:
        notes.append(f"run '{run.name}' searched space '{run.space}' version {run.space_version}; "
                     f"version {installed} is installed, and its settings are the ones exported")
    if candidate.status != "done":
        notes.append(f"candidate {candidate.id} is {candidate.status}, not done")
    space = rebuild_space(run)
    try:
        validated = space.validate(dict(candidate.params))
    except AutorecError as err:
        raise ExportError(f"candidate {candidate.id} does not fit space '{run.space}': {err}") from None
    metrics = {e.member: e.metrics for e in archive.evaluations_for(candidate.id)
               if e.status == "done" and e.metrics}
    members = []
    for member in space.suite():
        model, settings = member_training(space, validated, member)
        member_metrics = metrics.get(member.key) or metrics.get(member.base_key)  # older archives
        spec = _spec(run, candidate, member, model, settings, member_metrics)
        members.append(MemberSpec(member.key, spec))
    if not members:
        raise ExportError(f"space '{run.space}' has an empty suite: nothing to export")
    return Export(run.name, candidate.id, members, notes)


def rebuild_space(run: Run) -> SearchSpace:
    """The run's space with the options it was searched with (dataset, task, space settings)."""
    import pydantic

    from autorec.search_config import SearchConfig

    try:
        config = SearchConfig.model_validate({**(run.config or {}), "space": run.space})
        return config.build_space()
    except (AutorecError, pydantic.ValidationError) as err:
        raise ExportError(f"cannot rebuild space '{run.space}' of run '{run.name}': {err}") from None


def member_training(
    space: SearchSpace, candidate: pydantic.BaseModel, member: SuiteMember
) -> tuple[str, dict[str, Any]]:
    """(model, flat trainer settings) with which `space.evaluate` trains `candidate` on `member`.

    A space says so with a method ``trainer_settings(candidate, member) -> dict``, the one its
    own `evaluate` uses, so an export always matches what was evaluated.
    """
    from autorec.space import CANDIDATE_MODEL

    settings = space.trainer_settings(candidate, member)  # SearchSpace's default: None
    if settings is None:
        raise ExportError(
            f"space '{space.name}' does not say how it trains a candidate: give it a method "
            "trainer_settings(candidate, member) returning the flat trainer settings"
        )
    settings = dict(settings)
    model = member.model
    if model == CANDIDATE_MODEL:
        model = getattr(candidate, "model", None)
        if not isinstance(model, str):
            raise ExportError(f"space '{space.name}': the suite leaves the model to the candidate, "
                              "but the candidate has no `model` field")
    return model, settings


def _spec(
    run: Run,
    candidate: Candidate,
    member: SuiteMember,
    model: str,
    settings: dict[str, Any],
    metrics: dict[str, Any] | None,
) -> TrainSpec:
    from autorec import __version__
    from autorec.trainer import split_settings

    options = dict(member.options)
    split = options.pop("split", None)
    if options:
        raise ExportError(f"suite member {member.key} has options a training config cannot "
                          f"express: {', '.join(sorted(options))}")
    provenance: dict[str, Any] = {
        "run": run.name,
        "candidate_id": candidate.id,
        "member": member.key,
        "status": candidate.status,
        "fitness": candidate.fitness,
        "objectives": candidate.objectives,
        "space": run.space,
        "space_version": run.space_version,
        "proposer": run.proposer,
        "operator": candidate.operator,
        "parents": list(candidate.parent_ids),
        "generation": candidate.generation,
        "params": candidate.params,
    }
    split_hash = (metrics or {}).get("split_hash")
    if split_hash is not None:
        provenance["split_hash"] = split_hash
    provenance["autorec_version"] = __version__
    provenance["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")

    values = {"model": model, "dataset": member.dataset, "task": member.task, "split": split,
              "settings": settings, "metrics": metrics, "provenance": provenance}
    source = f"export of candidate {candidate.id} on {member.key}"
    spec = validate_spec({k: v for k, v in values.items() if v is not None}, source)
    try:  # what `autorec train` does with the file next: fail here, not there
        split_settings(spec.model, spec.settings, spec.task)
    except AutorecError as err:
        raise ExportError(f"{source}: {err}") from None
    return spec


def render(member: MemberSpec, fmt: str = "yaml") -> str:
    """One spec as the text of a file `autorec train --config` reads."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    spec = member.spec
    data = {k: v for k, v in spec.model_dump(mode="python").items() if v is not None}
    if fmt == "json":
        return json.dumps(_finite(data), indent=2, default=str) + "\n"
    provenance = spec.provenance or {}
    # The comment holds names from the archive: escaped to one line, so no text can end the
    # comment and start a key (the document itself is YAML-quoted by safe_dump).
    header = (
        f"# autorec export: candidate {provenance.get('candidate_id')} of run "
        f"{_one_line(provenance.get('run'))} on suite member {_one_line(member.member)}\n"
        "# retrain it with: autorec train --config THIS_FILE\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _one_line(value: Any) -> str:
    """`value` quoted, with every character that is not printable (newlines, U+2028, controls)
    written as its escape."""
    text = str(value)
    escaped = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
    return "'" + escaped.replace("'", "''") + "'"


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
