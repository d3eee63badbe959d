"""`architecture`: choose a model family and its hyperparameters.

One flat Candidate serves every family, so an LLM fills one small JSON object: `model` plus
generic knobs (embedding_dim, mlp_depth, mlp_width, dropout, cross_layers, attention_dim,
num_blocks, num_heads; reloop2's memory_size, neighbours, mix) and training knobs (lr,
batch_size, epochs, weight_decay).
`ArchitectureCandidate.trainer_settings()` turns a candidate into the flat settings
`autorec.trainer.train_model` takes for that family, dropping the knobs the family does not use.

A knob the chosen family does not use is reset to its default when the candidate is validated,
so two proposals that train the same model are one candidate (same hash, deduplicated).

The Candidate depends on the options (the task picks the families, `models` narrows them,
`max_epochs` bounds `epochs`), so each space instance builds its own `self.Candidate`; the class
attribute is the one for the default options (task ctr).
"""

from __future__ import annotations

import functools
import math
import typing
from typing import Any, ClassVar, Literal

import optuna
import pydantic

from autorec.beyond_accuracy import knobs as beyond_knobs
from autorec.errors import ConfigError
from autorec.metrics_extra import FAMILIES as EXTRA_FAMILIES
from autorec.metrics_extra import families_of
from autorec.search_spaces.trained import (
    REPORTED_METRICS, TrainedModelSpace, objectives_line, training_metrics,
)
from autorec.space import CANDIDATE_MODEL, Objective, Report, SpaceOptions, SuiteMember

CTR_FAMILIES = ("fm", "deepfm", "dcnv2", "din", "dare", "reloop2")
SEQUENTIAL_FAMILIES = ("sasrec", "hstu", "semantic_ids", "sra_cl", "bm3")
FAMILIES = {"ctr": CTR_FAMILIES, "sequential": SEQUENTIAL_FAMILIES}
TASK_OF = {name: task for task, names in FAMILIES.items() for name in names}

MLP_FAMILIES = ("deepfm", "dcnv2", "din", "dare", "reloop2")  # reloop2: around a deepfm
TRAINING_KNOBS = ("lr", "batch_size", "epochs", "weight_decay")
RELOOP2_KNOBS = ("memory_size", "neighbours", "mix")  # the error memory around its deepfm
SEMANTIC_ID_KNOBS = ("codebook_size", "levels")  # the residual k-means item codes
SRA_CL_KNOBS = ("cl_weight", "substitution_rate")  # its contrastive text-neighbour views
# The architecture knobs each family reads; every other architecture knob is reset to default.
USES: dict[str, tuple[str, ...]] = {
    "fm": ("embedding_dim",),
    "deepfm": ("embedding_dim", "mlp_depth", "mlp_width", "dropout"),
    "dcnv2": ("embedding_dim", "mlp_depth", "mlp_width", "dropout", "cross_layers"),
    "din": ("embedding_dim", "mlp_depth", "mlp_width", "dropout", "attention_dim"),
    "dare": ("embedding_dim", "mlp_depth", "mlp_width", "dropout", "attention_dim"),
    "reloop2": ("embedding_dim", "mlp_depth", "mlp_width", "dropout", *RELOOP2_KNOBS),
    "sasrec": ("embedding_dim", "num_blocks", "num_heads", "dropout"),
    "hstu": ("embedding_dim", "num_blocks", "num_heads", "dropout"),
    "semantic_ids": ("embedding_dim", "num_blocks", "num_heads", "dropout", *SEMANTIC_ID_KNOBS),
    "sra_cl": ("embedding_dim", "num_blocks", "num_heads", "dropout", *SRA_CL_KNOBS),
    "bm3": ("embedding_dim", "num_blocks", "dropout"),  # num_blocks: its graph layers
}
ARCHITECTURE_KNOBS = (
    "embedding_dim", "mlp_depth", "mlp_width", "dropout", "cross_layers", "attention_dim",
    "num_blocks", "num_heads", *RELOOP2_KNOBS, *SEMANTIC_ID_KNOBS, *SRA_CL_KNOBS,
)  # fmt: skip

# The reference candidate of each task: the model's own defaults, trained briefly.
REFERENCE: dict[str, dict[str, Any]] = {
    "ctr": {
        "model": "deepfm", "embedding_dim": 16, "mlp_depth": 2, "mlp_width": 256, "dropout": 0.2,
        "lr": 1e-3, "batch_size": 1024, "epochs": 5, "weight_decay": 0.0,
    },
    "sequential": {
        "model": "sasrec", "embedding_dim": 64, "num_blocks": 2, "num_heads": 1, "dropout": 0.2,
        "lr": 1e-3, "batch_size": 128, "epochs": 30, "weight_decay": 0.0,
    },
}  # fmt: skip
# Defaults of the knobs a reference does not set (what unused knobs are reset to).
KNOB_DEFAULTS: dict[str, Any] = {
    "mlp_depth": 2, "mlp_width": 256, "cross_layers": 2, "attention_dim": 32,
    "memory_size": 10000, "neighbours": 32, "mix": 0.5,
    "codebook_size": 64, "levels": 3, "cl_weight": 0.1, "substitution_rate": 0.2,
}  # fmt: skip
MAX_EPOCHS = {"ctr": 10, "sequential": 50}

SETTINGS_KEYS = {
    "models": "families the candidate may choose (default: every family of the task)",
    "max_epochs": "upper bound of the candidate's `epochs` (default: 10 ctr, 50 sequential)",
    "threads": "torch threads per evaluation (default: torch's own)",
    "seed": "training seed (default 0)",
    "patience": "early-stopping patience in epochs (default: the trainer's per task)",
    "max_seconds": "stop each training after this many seconds, keeping its best epoch",
    "split": "CTR split of the dataset, e.g. user_time or global_time (default: the dataset's)",
    "extra_metrics": "beyond-accuracy families to report (diversity, fairness, cold_start); an "
    "objective or constraint on one adds its family",
    "knobs": "beyond-accuracy knob families to search (diversity: re-rankers, sequential; "
    "fairness: attribute head, ctr); an objective or constraint on one adds its family",
}


class ArchitectureCandidate(pydantic.BaseModel):
    """Base of every architecture Candidate: the knob-to-settings mapping and the checks.

    Fields are added per (task, families, max_epochs) by `candidate_class`.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    # (task, families, max_epochs) the class was built for; lets candidates pickle by value.
    build_key: ClassVar[tuple[str, tuple[str, ...], int]]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _reset_unused(cls, values: Any) -> Any:
        """Drop the knobs the chosen family does not read, so their defaults fill in."""
        if not isinstance(values, dict):
            return values
        model = values.get("model", cls.model_fields["model"].default)
        if not isinstance(model, str) or model not in USES:
            return values  # the Literal check reports it
        used = set(USES[model])
        if "mlp_depth" in used and values.get("mlp_depth") == 0:
            used -= {"mlp_width", "dropout"}  # no hidden layer: no width, nothing to drop out
        return {k: v for k, v in values.items() if k not in ARCHITECTURE_KNOBS or k in used}

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> ArchitectureCandidate:
        if TASK_OF[self.model] == "sequential":
            if self.embedding_dim % self.num_heads:
                heads = [h for h in range(1, 9) if self.embedding_dim % h == 0]
                raise ValueError(
                    f"embedding_dim ({self.embedding_dim}) must be divisible by num_heads "
                    f"({self.num_heads}); num_heads could be one of {heads}"
                )
        # The model's own config is the final judge; its message names the offending key.
        from autorec.trainer import split_settings

        try:
            split_settings(self.model, self.trainer_settings(), TASK_OF[self.model])
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self

    @pydantic.model_serializer(mode="wrap")
    def _without_off_knobs(self, handler: Any) -> Any:
        # Knobs at their off value are left out, so older candidates keep their hash.
        dumped = beyond_knobs.drop_off(handler(self))
        if dumped.get("model") != "reloop2":
            dumped = {k: v for k, v in dumped.items() if k not in RELOOP2_KNOBS}
        if dumped.get("model") != "semantic_ids":
            dumped = {k: v for k, v in dumped.items() if k not in SEMANTIC_ID_KNOBS}
        if dumped.get("model") != "sra_cl":
            dumped = {k: v for k, v in dumped.items() if k not in SRA_CL_KNOBS}
        return dumped

    def hidden_units(self) -> list[int]:
        """The MLP tower: `mlp_depth` layers halving from `mlp_width` (at least 8 wide)."""
        return [max(8, self.mlp_width >> i) for i in range(self.mlp_depth)]

    def trainer_settings(self) -> dict[str, Any]:
        """The flat `train_model` settings of this candidate's family (unused knobs left out)."""
        settings: dict[str, Any] = {k: getattr(self, k) for k in TRAINING_KNOBS}
        model = self.model
        if TASK_OF[model] == "ctr":
            settings["embedding_dim"] = self.embedding_dim
        else:
            settings.update(
                hidden_dim=self.embedding_dim, num_blocks=self.num_blocks,
                num_heads=self.num_heads, dropout=self.dropout,
            )  # fmt: skip
        if model in MLP_FAMILIES:
            settings.update(hidden_units=self.hidden_units(), dropout=self.dropout)
        if model == "dcnv2":
            settings["cross_layers"] = self.cross_layers
        elif model == "din":
            # The activation unit's MLP; [64, 32] (DIN's default) at attention_dim 32.
            settings["attention_units"] = [2 * self.attention_dim, self.attention_dim]
        elif model == "dare":
            settings["attention_dim"] = self.attention_dim
        elif model == "reloop2":
            settings.update({k: getattr(self, k) for k in RELOOP2_KNOBS})
        elif model == "semantic_ids":
            settings.update({k: getattr(self, k) for k in SEMANTIC_ID_KNOBS})
        elif model == "sra_cl":
            settings.update({k: getattr(self, k) for k in SRA_CL_KNOBS})
        elif model == "bm3":  # graph propagation layers where attention models stack blocks
            settings["layers"] = settings.pop("num_blocks")
            del settings["num_heads"]
        knobs = beyond_knobs.knob_fields(TASK_OF[model])
        settings.update(beyond_knobs.drop_off({k: getattr(self, k) for k in knobs}))
        return settings

    def __reduce__(self):
        # Candidate classes are built at run time; rebuild the class wherever this is unpickled.
        return (_restore_candidate, (self.build_key, self.model_dump()))


def _restore_candidate(build_key: tuple, values: dict[str, Any]) -> ArchitectureCandidate:
    return candidate_class(*build_key).model_validate(values)


@functools.lru_cache(maxsize=None)
def candidate_class(
    task: str, families: tuple[str, ...], max_epochs: int
) -> type[ArchitectureCandidate]:
    """The Candidate schema for one task, a subset of its families and an epoch bound."""
    reference = REFERENCE[task]
    default_model = reference["model"] if reference["model"] in families else families[0]
    defaults = {**KNOB_DEFAULTS, **reference, "epochs": min(reference["epochs"], max_epochs)}
    F = pydantic.Field
    fields: dict[str, Any] = {
        "model": (
            Literal[families],  # type: ignore[valid-type]
            F(default_model, description="model family"),
        ),
    }
    if task == "ctr":
        fields.update({
            "embedding_dim": (int, F(defaults["embedding_dim"], ge=4, le=256,
                description="width of every field's embedding")),
            "mlp_depth": (int, F(defaults["mlp_depth"], ge=0, le=4,
                description="hidden layers of the MLP tower (deepfm, dcnv2, din, dare)")),
            "mlp_width": (int, F(defaults["mlp_width"], ge=8, le=1024,
                description="width of the first MLP layer; each next layer is half as wide")),
            "dropout": (float, F(defaults["dropout"], ge=0.0, le=0.6,
                description="dropout after each MLP layer")),
            "cross_layers": (int, F(defaults["cross_layers"], ge=0, le=6,
                description="dcnv2 only: explicit feature-cross layers")),
            "attention_dim": (int, F(defaults["attention_dim"], ge=4, le=128,
                description="din: activation-unit width; dare: attention-embedding width")),
            "memory_size": (int, F(defaults["memory_size"], ge=100, le=100000,
                description="reloop2 only: recent rows its error memory keeps")),
            "neighbours": (int, F(defaults["neighbours"], ge=1, le=256,
                description="reloop2 only: stored rows whose errors correct a score")),
            "mix": (float, F(defaults["mix"], ge=0.0, le=1.0,
                description="reloop2 only: weight of the error correction; 0 = plain deepfm")),
        })  # fmt: skip
    else:
        fields.update({
            "embedding_dim": (int, F(defaults["embedding_dim"], ge=4, le=256,
                description="item embedding width, which is also the hidden width")),
            "num_blocks": (int, F(defaults["num_blocks"], ge=1, le=4,
                description="stacked attention blocks (bm3: LightGCN graph layers)")),
            "num_heads": (int, F(defaults["num_heads"], ge=1, le=8,
                description="attention heads; must divide embedding_dim")),
            "dropout": (float, F(defaults["dropout"], ge=0.0, le=0.6,
                description="dropout on embeddings and inside every block")),
            "codebook_size": (int, F(defaults["codebook_size"], ge=32, le=256,
                description="semantic_ids only: codes per residual k-means level")),
            "levels": (int, F(defaults["levels"], ge=2, le=4,
                description="semantic_ids only: residual k-means levels of an item's code")),
            "cl_weight": (float, F(defaults["cl_weight"], ge=0.0, le=2.0,
                description="sra_cl only: weight of the contrastive loss; 0 = plain sasrec")),
            "substitution_rate": (float, F(defaults["substitution_rate"], ge=0.0, le=0.8,
                description="sra_cl only: share of items swapped for a text neighbour")),
        })  # fmt: skip
    fields.update({
        "lr": (float, F(defaults["lr"], ge=1e-5, le=0.1, description="Adam learning rate")),
        "batch_size": (int, F(defaults["batch_size"], ge=16, le=8192,
            description="training batch size")),
        "epochs": (int, F(defaults["epochs"], ge=1, le=max_epochs,
            description="epochs at most; early stopping may end sooner")),
        "weight_decay": (float, F(defaults["weight_decay"], ge=0.0, le=0.01,
            description="Adam L2 penalty")),
    })  # fmt: skip
    fields.update(beyond_knobs.knob_fields(task))  # off by default (autorec.beyond_accuracy)
    name = f"{task.capitalize()}ArchitectureCandidate"
    cls = pydantic.create_model(name, __base__=ArchitectureCandidate, **fields)
    cls.build_key = (task, families, max_epochs)
    return cls


class ArchitectureSpace(TrainedModelSpace):
    """Model family plus hyperparameters, scored on one (dataset, task)."""

    name: ClassVar[str] = "architecture"
    version: ClassVar[str] = "1"
    Candidate: ClassVar[type[pydantic.BaseModel]] = candidate_class(
        "ctr", CTR_FAMILIES, MAX_EPOCHS["ctr"]
    )
    # AUC moves by about 1% between good CTR models while parameters move by 80%: at 0.01 a
    # model a fifth the size is worth 0.8% relative AUC, so size breaks ties but never buys a
    # clearly worse model. Sequential NDCG moves by tens of percent, so size weighs 0.05 there.
    # Quality is read on the validation split; the test split is only reported.
    objectives: ClassVar[list[Objective]] = [
        Objective(name="valid_auc", direction="max", weight=1.0),
        Objective(name="params", direction="min", weight=0.01),
    ]
    reported_metrics: ClassVar[list[str]] = REPORTED_METRICS["ctr"]
    OBJECTIVES: ClassVar[dict[str, list[Objective]]] = {
        "ctr": objectives,
        "sequential": [
            Objective(name="valid_ndcg@10", direction="max", weight=1.0),
            Objective(name="params", direction="min", weight=0.05),
        ],
    }

    def __init__(self, options: SpaceOptions | None = None):
        super().__init__(options)
        self.task = self.options.task or "ctr"
        self.settings = self._checked_settings(self.options.settings)
        self.families: tuple[str, ...] = tuple(self.settings.get("models") or FAMILIES[self.task])
        self.max_epochs: int = self.settings.get("max_epochs", MAX_EPOCHS[self.task])
        self.Candidate = self.candidate_class()
        self.objectives = list(self.OBJECTIVES[self.task])
        self.reported_metrics = list(REPORTED_METRICS[self.task])

    def _checked_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        settings = self.known_settings(settings, SETTINGS_KEYS)
        models = settings.get("models")
        if models is not None:
            if isinstance(models, str):
                models = [m.strip() for m in models.split(",") if m.strip()]
            allowed = FAMILIES[self.task]
            wrong = [m for m in models if m not in allowed]
            if wrong or not models:
                raise ConfigError(
                    f"architecture space: models must name {self.task} families among "
                    f"{', '.join(allowed)}; got {models}"
                )
            settings["models"] = [m for m in allowed if m in models]  # canonical order
        for key, low in (("max_epochs", 1), ("threads", 1), ("seed", 0), ("patience", 0)):
            if key in settings:
                value = settings[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ConfigError(f"architecture space: {key} must be an integer >= {low}")
        if "max_seconds" in settings:
            value = settings["max_seconds"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError("architecture space: max_seconds must be a positive number")
        if "split" in settings and self.task != "ctr":
            raise ConfigError("architecture space: split applies to the ctr task only")
        lists = (("extra_metrics", EXTRA_FAMILIES), ("knobs", tuple(beyond_knobs.KNOBS)))
        for key, allowed in lists:
            if key in settings:
                value = settings[key]
                value = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
                if not isinstance(value, list) or set(value) - set(allowed):
                    raise ConfigError(
                        f"architecture space: {key} must list among {', '.join(allowed)}"
                    )
                settings[key] = value
        return settings

    @property
    def features(self) -> Any:
        """The task data this space trains on (cached per process, never stored on the space,
        which travels to workers): `autorec.metrics_extra.metric_names` reads its attributes."""
        from autorec.data import load_dataset

        options = {"split": self.settings["split"]} if "split" in self.settings else {}
        return load_dataset(self.options.dataset).task(self.task, **options)

    def extra_families(self) -> list[str]:
        """Beyond-accuracy families to compute: the space setting's plus any a search's
        objective, constraint or reported metric needs."""
        wanted = families_of([*self.selection_metrics(), *self.reported_metrics])
        asked = self.settings.get("extra_metrics", [])
        return [f for f in EXTRA_FAMILIES if f in wanted or f in asked]

    def knob_families(self) -> list[str]:
        wanted = families_of(self.selection_metrics())
        asked = self.settings.get("knobs", [])
        return [f for f in beyond_knobs.KNOBS if f in wanted or f in asked]

    # The six methods of the interface.

    def describe(self) -> str:
        task, ref = self.task, self.reference()
        lines = [
            f"Architecture search for the {task} task on dataset '{self.options.dataset}': pick a "
            "model family and its hyperparameters. Each candidate is trained once on CPU "
            f"(at most `epochs` epochs, which is at most {self.max_epochs}; early stopping keeps "
            "the best validation epoch) and scored on the validation split.",
            f"Objectives: {objectives_line(self)} (params is the trainable parameter count). "
            "Each is normalised against the reference candidate and combined by weight, so "
            "quality dominates and size breaks near-ties.",
            f"Reference: {ref.model_dump_json()}",
            "",
            "Families:",
        ]
        blurbs = {
            "fm": "factorization machine: per-id bias plus pairwise inner products of field "
            "embeddings; small, fast, strong on sparse ids. Uses embedding_dim only.",
            "deepfm": "FM plus an MLP over the concatenated embeddings.",
            "dcnv2": "explicit cross layers (cross_layers of them) beside an MLP; "
            "cross_layers=0 leaves embeddings + MLP.",
            "din": "target attention over the user's item history (if the dataset has one), "
            "then an MLP; attention_dim sets the activation unit's width.",
            "dare": "DIN with a separate, narrow attention embedding (attention_dim wide) "
            "decoupled from the representation embedding.",
            "reloop2": "deepfm whose scores are corrected at inference by the errors of the "
            "most similar recent rows (an error memory: memory_size, neighbours, mix); helps "
            "where the data shifts over time (split global_time).",
            "sasrec": "causal self-attention over the item sequence (num_blocks x num_heads), "
            "hidden width = embedding_dim.",
            "hstu": "pointwise SiLU attention with relative-position bias; same knobs as sasrec.",
            "semantic_ids": "generative retrieval: items named by residual k-means codes of their "
            "text (codebook_size codes x levels), a transformer generates the next item's codes, "
            "beam search ranks; embedding_dim, num_blocks, num_heads, dropout as sasrec.",
            "sra_cl": "sasrec plus a contrastive loss (cl_weight) between a sequence and a view "
            "with substitution_rate of its items swapped for item-text neighbours.",
            "bm3": "order-free: user-item graph (num_blocks LightGCN layers) and item text, "
            "bootstrapped views by dropout, no negatives; embedding_dim wide, no heads.",
        }
        lines += [f"- {f}: {blurbs[f]}" for f in self.families]
        lines += ["", "Knobs (a knob the chosen family does not use is reset to its default):"]
        for key, field in self.Candidate.model_fields.items():
            lines.append(f"- {key}: {_range_text(field)}; {field.description}")
        lines.append("")
        if task == "ctr":
            lines += [
                "Constraints: mlp_depth=0 means no hidden layer (mlp_width and dropout unused).",
                "What tends to matter on small CTR data: lr (about 1e-3 to 1e-2 with Adam) and "
                "epochs matter most, since user/item ids overfit after a few epochs; "
                "embedding_dim 8-32 is usually enough and larger widths mostly add params; one or "
                "two MLP layers of 64-256 rarely lose to deeper towers; dropout 0.1-0.3; larger "
                "batches train faster per epoch but need a higher lr. fm is a strong, tiny "
                "baseline; din/dare only help when the dataset has an item-history feature.",
            ]
        else:
            lines += [
                "Constraints: num_heads must divide embedding_dim.",
                "What tends to matter on small sequential data: lr (about 1e-3 to 5e-3), enough "
                "epochs to converge (sequences are few, so each epoch is short), dropout 0.2-0.5 "
                "against overfitting, embedding_dim 32-128; one or two blocks usually suffice.",
            ]
        return "\n".join(lines)

    def reference(self) -> pydantic.BaseModel:
        values = dict(REFERENCE[self.task])
        if values["model"] not in self.families:
            values["model"] = self.families[0]
        values["epochs"] = min(values["epochs"], self.max_epochs)
        return self.Candidate.model_validate(values)

    def sample(self, trial: optuna.Trial) -> pydantic.BaseModel:
        model = trial.suggest_categorical("model", list(self.families))
        values: dict[str, Any] = {"model": model}
        if self.task == "ctr":
            values["embedding_dim"] = trial.suggest_int("embedding_dim", 4, 64, log=True)
            if model in MLP_FAMILIES:
                values["mlp_depth"] = trial.suggest_int("mlp_depth", 0, 3)
                if values["mlp_depth"]:
                    values["mlp_width"] = trial.suggest_int("mlp_width", 32, 512, log=True)
                    values["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
            if model == "dcnv2":
                values["cross_layers"] = trial.suggest_int("cross_layers", 0, 4)
            if model in ("din", "dare"):
                values["attention_dim"] = trial.suggest_int("attention_dim", 8, 64, log=True)
            if model == "reloop2":
                values["memory_size"] = trial.suggest_int("memory_size", 500, 20000, log=True)
                values["neighbours"] = trial.suggest_int("neighbours", 4, 128, log=True)
                values["mix"] = trial.suggest_float("mix", 0.0, 1.0)
            batch_sizes = [256, 512, 1024, 2048, 4096]
            lr_range = (1e-4, 3e-2)
        else:
            # Multiples of 16 are divisible by every num_heads choice.
            values["embedding_dim"] = trial.suggest_int("embedding_dim", 16, 128, step=16)
            values["num_blocks"] = trial.suggest_int("num_blocks", 1, 3)
            values["num_heads"] = trial.suggest_categorical("num_heads", [1, 2, 4])
            if model == "semantic_ids":
                sizes = [32, 64, 128, 256]
                values["codebook_size"] = trial.suggest_categorical("codebook_size", sizes)
                values["levels"] = trial.suggest_int("levels", 2, 4)
            if model == "sra_cl":
                values["cl_weight"] = trial.suggest_float("cl_weight", 0.01, 1.0, log=True)
                values["substitution_rate"] = trial.suggest_float("substitution_rate", 0.1, 0.6)
            values["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
            batch_sizes = [32, 64, 128, 256, 512]
            lr_range = (1e-4, 1e-2)
        values["lr"] = trial.suggest_float("lr", *lr_range, log=True)
        values["batch_size"] = trial.suggest_categorical("batch_size", batch_sizes)
        values["epochs"] = trial.suggest_int("epochs", 1, self.max_epochs)
        values["weight_decay"] = trial.suggest_float("weight_decay", 1e-8, 1e-3, log=True)
        values.update(beyond_knobs.sample(trial, self.task, self.knob_families()))
        return self.Candidate.model_validate(values)

    def suite(self) -> list[SuiteMember]:
        options = (("split", self.settings["split"]),) if "split" in self.settings else ()
        return [SuiteMember(CANDIDATE_MODEL, self.options.dataset, self.task, options)]

    def evaluate(
        self, candidate: pydantic.BaseModel, member: SuiteMember, report: Report
    ) -> dict[str, float]:
        from autorec.data import load_dataset
        from autorec.trainer import train_model

        candidate = self.validate(candidate.model_dump())
        if member.model not in (CANDIDATE_MODEL, candidate.model):
            raise ConfigError(
                f"architecture space: suite member model '{member.model}' is not the "
                f"candidate's ('{candidate.model}')"
            )
        data = load_dataset(member.dataset).task(member.task, **dict(member.options))
        # Every epoch's report carries the parameter count (known once the model is built): early
        # stopping ranks an evaluation by the fitness it would have if it ended there, size
        # included (autorec/engine/fidelity.py).
        size: dict[str, float] = {}

        def count_params(epoch: int, model) -> None:
            size["params"] = float(sum(p.numel() for p in model.parameters()))

        result = train_model(
            candidate.model, data, self.trainer_settings(candidate, member),
            on_epoch=lambda row: report({**row, **size}), on_epoch_start=count_params,
        )
        return training_metrics(result)

    def trainer_settings(self, candidate: pydantic.BaseModel, member: SuiteMember) -> dict[str, Any]:
        """The flat `train_model` settings `evaluate` uses (and `autorec export` writes)."""
        settings = {**candidate.trainer_settings(), **self.run_settings()}
        if self.extra_families():
            settings["extra_metrics"] = self.extra_families()
        return settings

    def candidate_class(self) -> type[pydantic.BaseModel]:
        return candidate_class(self.task, self.families, self.max_epochs)


def _range_text(field: Any) -> str:
    """'int 4..256 (default 16)' or 'one of a, b (default a)' from a pydantic FieldInfo."""
    if typing.get_origin(field.annotation) is Literal:
        choices = ", ".join(map(str, typing.get_args(field.annotation)))
        return f"one of {choices} (default {field.default})"
    low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    span = f" {_num(low)}..{_num(high)}" if low is not None and high is not None else ""
    return f"{field.annotation.__name__}{span} (default {_num(field.default)})"


def _num(value: Any) -> str:
    if isinstance(value, float) and value and (abs(value) < 1e-2 or not math.isfinite(value)):
        return f"{value:g}"
    return str(value)
