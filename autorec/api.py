"""The Python API: what the `autorec` command line does, as functions.

    import autorec

    result = autorec.search("architecture", dataset="ml-100k", proposer="tpe", budget=6)
    print(result.best.objectives, result.best.reported)   # validation, then test figures
    archive = autorec.open_archive("runs.db")
    frame = archive.dataframe(result.run)                  # one row per candidate
    trained = autorec.train("deepfm", dataset="ml-100k", epochs=3)

Settings are SearchConfig's fields (the CLI's flags, with underscores); a bad one raises
`autorec.ConfigError` before any archive is opened or created.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable


from autorec.errors import ConfigError

if TYPE_CHECKING:
    import pandas

    from autorec.archive import Archive
    from autorec.explain import Explanation
    from autorec.trainer import TrainResult

DEFAULT_DB = "runs.db"


@dataclasses.dataclass
class CandidateView:
    """One candidate as a plain object: `objectives` are the validation figures that ranked it,
    `reported` the test figures shown beside them."""

    id: int
    run: str
    status: str
    fitness: float | None
    params: dict[str, Any]
    operator: str
    parents: list[int]
    generation: int
    objectives: dict[str, float]
    reported: dict[str, float]
    error: str | None

    @classmethod
    def of(cls, row: Any, run_name: str) -> "CandidateView":
        return cls(
            id=row.id, run=run_name, status=row.status, fitness=row.fitness, params=row.params,
            operator=row.operator or "", parents=list(row.parent_ids), generation=row.generation,
            objectives=dict(row.objectives or {}), reported=dict(row.reported or {}),
            error=row.error,
        )

    def as_row(self) -> dict[str, Any]:
        """Flat: params as `param.<name>`, objectives as-is, test figures as `test.<name>`."""
        row = {k: getattr(self, k) for k in ("id", "run", "status", "fitness", "operator",
                                             "generation")}
        row.update({f"param.{k}": v for k, v in self.params.items()})
        row.update(self.objectives)
        row.update({f"test.{k}": v for k, v in self.reported.items()})
        return row


@dataclasses.dataclass
class SearchResult:
    run: str
    stop_reason: str | None
    evaluations: int
    best: CandidateView | None
    top: list[CandidateView]


class ArchiveReader:
    """Review of an archive: runs, candidates and metrics as plain objects or a DataFrame."""

    def __init__(self, archive: "Archive"):
        self.archive = archive

    def runs(self) -> list[dict[str, Any]]:
        return [
            {"name": r.name, "space": r.space, "proposer": r.proposer, "status": r.status,
             "started_at": r.started_at, "finished_at": r.finished_at}
            for r in self.archive.list_runs()
        ]

    def candidates(self, run: str | int, status: str | None = None) -> list[CandidateView]:
        row = self.archive.get_run(run)
        return [CandidateView.of(c, row.name) for c in self.archive.candidates(row.id, status)]

    def top(self, run: str | int, n: int = 10) -> list[CandidateView]:
        """Ranked by fitness, which is computed from validation metrics only."""
        row = self.archive.get_run(run)
        return [CandidateView.of(c, row.name) for c in self.archive.top(row.id, n=n)]

    def best(self, run: str | int) -> CandidateView | None:
        top = self.top(run, n=1)
        return top[0] if top else None

    def evaluations(self, candidate_id: int) -> list[dict[str, Any]]:
        return [
            {"member": e.member, "status": e.status, "metrics": dict(e.metrics or {}),
             "error": e.error, "seconds": e.seconds, "node": e.node}
            for e in self.archive.evaluations_for(candidate_id)
        ]

    def dataframe(self, run: str | int) -> "pandas.DataFrame":
        import pandas

        return pandas.DataFrame([c.as_row() for c in self.candidates(run)])

    def close(self) -> None:
        self.archive.close()


def open_archive(url: str | Path | None = None) -> ArchiveReader:
    """An existing archive for review (never creates one); default $AUTOREC_DB or ./runs.db."""
    from autorec.archive import Archive

    return ArchiveReader(Archive(str(url or default_db()), create=False))


def default_db() -> str:
    import os

    return os.environ.get("AUTOREC_DB") or DEFAULT_DB


def search(
    space: str | None = None,
    *,
    config: str | Path | dict[str, Any] | None = None,
    db: str | Path | None = None,
    resume: str | None = None,
    seed_candidates: str | Path | list[dict[str, Any]] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    on_start: Callable[[Any], None] | None = None,
    **settings: Any,
) -> SearchResult:
    """Run a search to its end (or resume one) and return its best candidates.

    `config` is a search YAML/JSON file or a dict; `settings` override it (`budget=8`,
    `proposer="tpe"`, `space_settings={"max_epochs": 3}`, ...). `seed_candidates` is a list
    of candidate params or a YAML/JSON file holding one.
    """
    from autorec.archive import Archive
    from autorec.engine.search import resumed_config, run_search

    url = str(db or default_db())
    if resume is not None:
        if config is not None or seed_candidates is not None or space is not None:
            raise ConfigError("resume continues a run with its stored config: pass only the "
                              "limits that may change (budget, max_time, workers, ...)")
        archive = Archive(url, create=False)
        run_id, search_config = resumed_config(archive, resume, settings)
        outcome = run_search(search_config, archive, run_id, on_progress=on_progress,
                             on_start=on_start)
    else:
        search_config = search_config_from(space, config, seed_candidates, settings)
        outcome = run_search(search_config, url, on_progress=on_progress, on_start=on_start)
        archive = Archive(url, create=False)
    with archive:
        reader = ArchiveReader(archive)
        top = reader.top(outcome.run_id, n=5)
        return SearchResult(outcome.run_name, outcome.stop_reason, outcome.evaluations,
                            top[0] if top else None, top)


def search_config_from(
    space: str | None,
    config: str | Path | dict[str, Any] | None,
    seed_candidates: str | Path | list[dict[str, Any]] | None,
    settings: dict[str, Any],
):
    """A validated SearchConfig: file or dict, then keyword settings, then the space."""
    from autorec.search_config import build_search_config
    from autorec.train_spec import read_config_file

    source = "settings"
    if isinstance(config, (str, Path)):
        values, source = read_config_file(config), str(config)
    else:
        values = dict(config or {})
    values.update({k: v for k, v in settings.items() if v is not None})
    if space is not None:
        values["space"] = space
    if seed_candidates is not None:
        if isinstance(seed_candidates, (str, Path)):
            values["seed_candidates"] = read_seed_candidates(seed_candidates)
        else:
            values["seed_candidates"] = list(seed_candidates)
    search_config = build_search_config(values, source)
    if isinstance(seed_candidates, (str, Path)):
        # Check the file's entries now, so an error names the file rather than "settings".
        from autorec.engine.search import check_seed_candidates

        check_seed_candidates(search_config.build_space(new_run=True), search_config.seed_candidates,
                              source=str(seed_candidates))
    return search_config


def read_seed_candidates(path: str | Path) -> list[dict[str, Any]]:
    """A YAML or JSON list of candidate params (or {candidates: [...]}), checked for shape."""
    from autorec.train_spec import read_yaml_or_json

    path = Path(path)
    data = read_yaml_or_json(path, "seed candidates file")
    if isinstance(data, dict) and "candidates" in data:
        data = data["candidates"]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"seed candidates file {path} must hold a non-empty list of candidates")
    for index, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"seed candidates file {path}: entry {index} is not a mapping "
                              "of parameter names to values")
    return data


def train(
    model: str,
    dataset: str = "ml-100k",
    *,
    task: str | None = None,
    split: str | None = None,
    **settings: Any,
) -> "TrainResult":
    """Train one model of the suite; `settings` are model and training settings (`epochs=3`)."""
    from autorec.train_spec import validate_spec

    values = {"model": model, "dataset": dataset, "task": task, "split": split,
              "settings": settings}
    spec = validate_spec({k: v for k, v in values.items() if v is not None}, "train")
    return train_spec(spec, check_train_spec(spec))


def explain_candidate(
    candidate_id: int, db: str | Path | None = None, **settings: Any
) -> "Explanation":
    """RecSAE on an archived sequential candidate, as `autorec explain` prints it: the model is
    retrained from the run's stored settings and seed, a sparse autoencoder is fitted to its
    hidden states, and latents are named by genres/titles with a held-out confidence.
    `settings` are ExplainConfig's and SAEConfig's keys (`k=8`, `expansion=8`, `epochs=30`,
    `window=10`, `min_confidence=0.75`). (Not `autorec.explain`: that is the package's name.)"""
    from autorec.archive import Archive
    from autorec.explain import explain_candidate as explain, explain_config

    config = explain_config(**settings)  # a bad setting fails before the archive is opened
    with Archive(str(db or default_db()), create=False) as archive:
        return explain(archive, candidate_id, config)


def check_train_spec(spec) -> str:
    """Everything about a training spec that can be refused before data loads; its task."""
    from autorec.models import MODELS, model_class
    from autorec.trainer import split_settings

    model_class(spec.model)  # an unknown model fails here, listing the known ones
    model_task = MODELS[spec.model].task
    if spec.task and spec.task != model_task:
        raise ConfigError(f"model '{spec.model}' is a {model_task} model, not {spec.task}")
    if spec.split and model_task != "ctr":
        raise ConfigError("--split applies to the ctr task only")
    split_settings(spec.model, spec.settings, model_task)  # bad settings fail before data loads
    return model_task


def train_data(spec, model_task: str):
    """The spec's dataset as its model's task (an unknown or missing dataset fails here)."""
    from autorec.data import load_dataset

    options = {"split": spec.split} if spec.split else {}
    return load_dataset(spec.dataset).task(model_task, **options)


def train_spec(spec, model_task: str) -> "TrainResult":
    """Load the spec's data and train it (after `check_train_spec`)."""
    from autorec.trainer import train_model

    return train_model(spec.model, train_data(spec, model_task), spec.settings)
