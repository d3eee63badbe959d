"""`embedding_dims`: one embedding width per field of a CTR dataset.

The fields depend on the dataset, so each space instance builds its Candidate from the dataset's
embeddable fields (`self.Candidate`); the class attribute `EmbeddingDimsSpace.Candidate` is the
field-less base every such schema derives from. Widths come from a ladder of powers of two.

A candidate is scored on every CTR model of the suite (fm, deepfm, dcnv2, din, dare by default),
each with its own defaults and the candidate's `field_dims`, so a width that only suits one
model's interaction does not win.
"""

from __future__ import annotations

import functools
import keyword
from typing import Any, ClassVar, Literal

import optuna
import pydantic

from autorec.errors import ConfigError
from autorec.search_spaces.trained import (
    REPORTED_METRICS, TrainedModelSpace, objectives_line, training_metrics,
)
from autorec.space import Objective, Report, SpaceOptions, SuiteMember

LADDER = (1, 2, 4, 8, 16, 32, 64)
REFERENCE_DIM = 16
SUITE_MODELS = ("fm", "deepfm", "dcnv2", "din", "dare")
DEFAULT_EPOCHS = 3

SETTINGS_KEYS = {
    "models": "CTR models of the suite (default: fm, deepfm, dcnv2, din, dare)",
    "epochs": f"epochs per model; early stopping may end sooner (default {DEFAULT_EPOCHS})",
    "lr": "Adam learning rate for every model (default: the trainer's)",
    "batch_size": "training batch size for every model (default: the trainer's)",
    "threads": "torch threads per evaluation (default: torch's own)",
    "seed": "training seed (default 0)",
    "patience": "early-stopping patience in epochs (default: the trainer's)",
    "max_seconds": "stop each training after this many seconds, keeping its best epoch",
    "split": "CTR split of the dataset, e.g. user_time or global_time (default: the dataset's)",
}

Dim = Literal[LADDER]  # type: ignore[valid-type]


class EmbeddingDimsCandidate(pydantic.BaseModel):
    """Base of the per-dataset Candidates: one ladder width per embeddable field."""

    model_config = pydantic.ConfigDict(extra="forbid", serialize_by_alias=True)

    # The dataset's field names, in order, that the class was built for (to rebuild it anywhere).
    build_key: ClassVar[tuple[str, ...]] = ()

    def field_dims(self) -> dict[str, int]:
        """{field name: width}, the `field_dims` setting of every CTR model."""
        return self.model_dump()

    def __reduce__(self):
        # Candidate classes are built at run time; rebuild the class wherever this is unpickled.
        return (_restore_candidate, (self.build_key, self.model_dump()))


def _restore_candidate(fields: tuple[str, ...], values: dict[str, Any]) -> EmbeddingDimsCandidate:
    return candidate_class(fields).model_validate(values)


@functools.lru_cache(maxsize=None)
def candidate_class(fields: tuple[str, ...]) -> type[EmbeddingDimsCandidate]:
    """The Candidate schema for these field names: each a ladder width, default 16."""
    definitions: dict[str, Any] = {}
    for index, field in enumerate(fields):
        description = f"embedding width of field '{field}'"
        if _plain_name(field):
            definitions[field] = (Dim, pydantic.Field(REFERENCE_DIM, description=description))
        else:  # a column name Python or pydantic cannot take as an attribute: use an alias
            definitions[f"field_{index}"] = (
                Dim, pydantic.Field(REFERENCE_DIM, alias=field, description=description)
            )  # fmt: skip
    cls = pydantic.create_model(
        "EmbeddingDimsCandidate", __base__=EmbeddingDimsCandidate, **definitions
    )
    cls.build_key = fields
    return cls


def _plain_name(name: str) -> bool:
    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and not name.startswith(("_", "model_"))
        and not hasattr(pydantic.BaseModel, name)
    )


class EmbeddingDimsSpace(TrainedModelSpace):
    """Per-field embedding widths, scored on every CTR model of the suite."""

    RUN_SETTINGS = ("lr", "batch_size", "threads", "seed", "patience", "max_seconds")

    name: ClassVar[str] = "embedding_dims"
    version: ClassVar[str] = "1"
    Candidate: ClassVar[type[pydantic.BaseModel]] = EmbeddingDimsCandidate
    # Quality is read on the validation split; the test split is only reported.
    objectives: ClassVar[list[Objective]] = [
        Objective(name="valid_auc", direction="max", weight=1.0),
        Objective(name="embedding_params", direction="min", weight=0.05),
    ]
    reported_metrics: ClassVar[list[str]] = REPORTED_METRICS["ctr"]

    def __init__(self, options: SpaceOptions | None = None):
        super().__init__(options)
        if self.options.task not in (None, "ctr"):
            raise ConfigError(
                f"embedding_dims space: searches the ctr task only, not {self.options.task}"
            )
        self.settings = self._checked_settings(self.options.settings)
        self.models: tuple[str, ...] = tuple(self.settings.get("models") or SUITE_MODELS)
        data = self._data(self.options.dataset)
        from autorec.models.embedding import embeddable_fields

        owners = set(embeddable_fields(data.features))
        # Rows of each field's table: numeric fields own a one-row table (value x vector).
        self.fields: dict[str, dict[str, Any]] = {
            f.name: {"kind": f.kind.value, "rows": max(f.vocab_size, 1)}
            for f in data.features
            if f.name in owners
        }
        self.shared: dict[str, str] = {
            f.name: f.shares_embedding_with for f in data.features if f.name not in owners
        }
        if not self.fields:
            raise ConfigError(f"dataset '{self.options.dataset}' has no embeddable CTR field")
        self.Candidate = self.candidate_class()

    def _checked_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        settings = self.known_settings(settings, SETTINGS_KEYS)
        models = settings.get("models")
        if models is not None:
            if isinstance(models, str):
                models = [m.strip() for m in models.split(",") if m.strip()]
            from autorec.models import model_names

            ctr_models = model_names("ctr")
            wrong = [m for m in models if m not in ctr_models]
            if wrong or not models:
                raise ConfigError(
                    f"embedding_dims space: models must name ctr models among "
                    f"{', '.join(ctr_models)}; got {models}"
                )
            settings["models"] = list(dict.fromkeys(models))
        for key, low in (("epochs", 1), ("batch_size", 1), ("threads", 1), ("seed", 0),
                         ("patience", 0)):  # fmt: skip
            if key in settings:
                value = settings[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ConfigError(f"embedding_dims space: {key} must be an integer >= {low}")
        for key in ("lr", "max_seconds"):
            if key in settings:
                value = settings[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise ConfigError(f"embedding_dims space: {key} must be a positive number")
        return settings

    def _data(self, dataset: str):
        from autorec.data import load_dataset

        options = {"split": self.settings["split"]} if "split" in self.settings else {}
        return load_dataset(dataset).task("ctr", **options)

    # The six methods of the interface.

    def describe(self) -> str:
        epochs = self.settings.get("epochs", DEFAULT_EPOCHS)
        reference_params = sum(info["rows"] * REFERENCE_DIM for info in self.fields.values())
        lines = [
            f"Embedding-dimension search on dataset '{self.options.dataset}' (ctr): choose the "
            f"embedding width of every field, each one of {', '.join(map(str, LADDER))}. Each "
            f"candidate trains every suite model ({', '.join(self.models)}) with its default "
            f"settings and these widths, for at most {epochs} epochs, and is scored on "
            "validation AUC.",
            f"Objectives: {objectives_line(self)}. embedding_params counts the model's "
            "embedding-table entries: the fields' tables, sum over fields "
            "of rows x width, plus a few width-independent ones (FM's per-id weights, DARE's "
            "attention table). Each is normalised against the reference (every field at 16: "
            f"{reference_params:,} field-table entries) per model and combined by weight.",
            "",
            "Fields (name: kind, table rows, entries at width 16):",
        ]
        for name, info in self.fields.items():
            lines.append(
                f"- {name}: {info['kind']}, {info['rows']:,} rows, "
                f"{info['rows'] * REFERENCE_DIM:,} entries at 16"
            )
        for name, owner in self.shared.items():
            lines.append(f"  ({name} has no width of its own: it reuses {owner}'s table)")
        lines += [
            "",
            "Trade-off: a field's cost is its rows times its width, so the few fields with large "
            "vocabularies dominate embedding_params, while widening a small field is almost free. "
            "A field that carries signal needs roughly as many dimensions as the rank of its "
            "interactions with other fields; a field that carries no signal is best at width 1 or "
            "2, where it also cannot overfit. Large widths on large, rarely repeated ids tend to "
            "overfit in few epochs. Widths are shared by all suite models; FM-style models project "
            "every field to width 16 for their inner products.",
        ]
        return "\n".join(lines)

    def reference(self) -> pydantic.BaseModel:
        return self.Candidate.model_validate({name: REFERENCE_DIM for name in self.fields})

    def sample(self, trial: optuna.Trial) -> pydantic.BaseModel:
        return self.Candidate.model_validate(
            {name: trial.suggest_categorical(name, list(LADDER)) for name in self.fields}
        )

    def suite(self) -> list[SuiteMember]:
        options = (("split", self.settings["split"]),) if "split" in self.settings else ()
        return [SuiteMember(model, self.options.dataset, "ctr", options) for model in self.models]

    def evaluate(
        self, candidate: pydantic.BaseModel, member: SuiteMember, report: Report
    ) -> dict[str, float]:
        from autorec.data import load_dataset
        from autorec.trainer import train_model

        candidate = self.validate(candidate.model_dump())
        data = load_dataset(member.dataset).task("ctr", **dict(member.options))
        result = train_model(
            member.model, data, self.trainer_settings(candidate, member), on_epoch=report
        )
        return training_metrics(result)

    def trainer_settings(self, candidate: pydantic.BaseModel, member: SuiteMember) -> dict[str, Any]:
        """The flat `train_model` settings `evaluate` uses (and `autorec export` writes)."""
        settings: dict[str, Any] = {
            "field_dims": candidate.field_dims(),
            "embedding_dim": REFERENCE_DIM,
            "epochs": self.settings.get("epochs", DEFAULT_EPOCHS),
        }
        return {**settings, **self.run_settings()}

    def candidate_class(self) -> type[pydantic.BaseModel]:
        return candidate_class(tuple(self.fields))
