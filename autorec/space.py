"""The search-space plugin interface, and how spaces are found.

A space is one class: the Candidate schema that validates every proposal (an LLM's included),
what the agent is told about it, a reference candidate (generation 0, the yardstick of fitness),
a way for Optuna samplers to draw from it, the suite a candidate is scored on, and `evaluate`,
which runs on a Ray worker.

Spaces are found by name through the entry point group `autorec.search_spaces`, or by path as
`path/to/file.py:ClassName`.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import importlib.util
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import optuna
import pydantic

from autorec.archive.tables import params_hash
from autorec.errors import AutorecError, ConfigError, UnknownNameError, describe_validation_error

ENTRY_POINT_GROUP = "autorec.search_spaces"


class SpaceError(AutorecError):
    """A space that cannot be loaded: a file that does not import, a class that is not a space."""


class InvalidCandidate(AutorecError):
    """A proposal that does not fit the space's Candidate schema."""


class Objective(pydantic.BaseModel):
    """One raw quantity a candidate is judged on, read from the evaluation metrics by `name`."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    name: str
    direction: Literal["max", "min"]
    weight: float = 1.0


CONSTRAINT_OPERATORS = ("<=", ">=", "==", "<", ">")  # two-character ones first when parsing


class Constraint(pydantic.BaseModel):
    """A bound a selection metric must meet on every member, e.g. fairness.auc_gap <= 0.01:
    a candidate that misses it is failed like one whose gate failed (no fitness, no parent)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    name: str
    op: Literal["<=", ">=", "==", "<", ">"]
    value: float

    def holds(self, value: float) -> bool:
        return {
            "<=": value <= self.value, ">=": value >= self.value, "==": value == self.value,
            "<": value < self.value, ">": value > self.value,
        }[self.op]

    def text(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


_METRIC_NAME = re.compile(r"[A-Za-z0-9_.@/-]+")


def parse_objective(text: str) -> Objective:
    """'NAME:max', 'NAME:min:0.2' -> Objective (weight 1 when omitted)."""
    name, _, rest = str(text).partition(":")
    direction, _, weight = rest.partition(":")
    if not name or direction not in ("max", "min"):
        raise ConfigError(f"objective '{text}': write NAME:max or NAME:min[:WEIGHT]")
    try:
        return Objective(name=name.strip(), direction=direction, weight=float(weight or 1.0))
    except ValueError:
        raise ConfigError(f"objective '{text}': the weight must be a number") from None


def parse_constraint(text: str) -> Constraint:
    """'fairness.auc_gap<=0.01' -> Constraint."""
    for op in CONSTRAINT_OPERATORS:
        name, found, value = str(text).partition(op)
        if found and _METRIC_NAME.fullmatch(name.strip()):
            try:
                return Constraint(name=name.strip(), op=op, value=float(value))
            except ValueError:
                break
    raise ConfigError(
        f"constraint '{text}': write METRIC<=VALUE (or >=, <, >, ==) with a number on the right"
    )


@dataclasses.dataclass(frozen=True)
class SuiteMember:
    """One (model, dataset, task) on which every candidate is scored: one Ray Tune trial.

    `model` may be CANDIDATE_MODEL when the candidate itself chooses the model family.
    """

    model: str
    dataset: str
    task: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """Unique within a suite: two members that differ only in their options are two keys."""
        if not self.options:
            return self.base_key
        return self.base_key + "?" + "&".join(f"{k}={_option_text(v)}" for k, v in self.options)

    @property
    def base_key(self) -> str:
        """model/dataset/task: the whole key of archives written before options were in it."""
        return f"{self.model}/{self.dataset}/{self.task}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "task": self.task,
                "options": dict(self.options)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SuiteMember":
        return cls(values["model"], values["dataset"], values["task"],
                   tuple(sorted(dict(values.get("options") or {}).items())))


CANDIDATE_MODEL = "candidate"


def _option_text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)

Report = Callable[[dict[str, float]], None]


class SpaceOptions(pydantic.BaseModel):
    """What a user chooses about a space from the command line or the search YAML."""

    model_config = pydantic.ConfigDict(extra="forbid")

    # Only spaces that train models on data (`needs_dataset`) read these two.
    dataset: str | None = None
    task: Literal["ctr", "sequential"] | None = None
    settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="space-specific settings, e.g. epochs per evaluation"
    )


class SearchSpace(abc.ABC):
    """Subclass this, set the class variables, implement the five abstract methods.

    Selection and reporting are kept apart: `objectives` and `gates` name the metrics that
    choose (for a trained model, its validation metrics, `valid_auc`), `reported_metrics` the
    ones only shown beside them (its test metrics, `auc`). Nothing that ranks candidates or that
    a proposer sees is computed from a reported metric.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Candidate: ClassVar[type[pydantic.BaseModel]]
    objectives: ClassVar[list[Objective]]
    # Metrics that must be true (non-zero) for a candidate to count, e.g. a kernel's correctness.
    gates: ClassVar[list[str]] = []
    # Metrics shown beside the objectives (the test split's), never used for selection.
    reported_metrics: ClassVar[list[str]] = []
    # A space whose candidates are trained on a dataset reads options.dataset/task; others
    # (kernels, prompts over a fixed catalogue) need neither.
    needs_dataset: ClassVar[bool] = False
    # A search of a space that needs a GPU refuses to start where Ray sees none.
    needs_gpu: ClassVar[bool] = False
    # Bounds on selection metrics, set by a search (`--constraint`), checked like gates.
    constraints: ClassVar[list[Constraint]] = []
    # Candidate fields of free text the LLM agent must carry whole (a prompt template): shown
    # uncut in its prompts and given reply tokens for their schema `maxLength`. Other string
    # fields keep the agent's caps (agents/prompts.py `Limits`, agents/reply.py `reply_tokens`).
    text_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: SpaceOptions | None = None):
        self.options = options or SpaceOptions()

    @abc.abstractmethod
    def describe(self) -> str:
        """What the agent is told about this space: the knobs, their meaning, what is good."""

    @abc.abstractmethod
    def reference(self) -> pydantic.BaseModel:
        """The baseline candidate (generation 0) every other one is normalised against."""

    @abc.abstractmethod
    def sample(self, trial: optuna.Trial) -> pydantic.BaseModel:
        """Draw a candidate through an Optuna trial, so any Optuna sampler can drive the space."""

    @abc.abstractmethod
    def suite(self) -> list[SuiteMember]:
        """The members every candidate is evaluated on."""

    @abc.abstractmethod
    def evaluate(
        self, candidate: pydantic.BaseModel, member: SuiteMember, report: Report
    ) -> dict[str, float]:
        """Train and score `candidate` on `member` (on a Ray worker); return raw metrics.

        `report` may be called with intermediate metrics (each epoch) for progress and time limits.
        The returned dict must contain every objective's name.
        """

    # Optional hooks, with their defaults.

    def knowledge(self) -> str:
        """Notes for the LLM beyond `describe()`: what is known to work in this space."""
        return ""

    def trainer_settings(
        self, candidate: pydantic.BaseModel, member: SuiteMember
    ) -> dict[str, Any] | None:
        """The flat training settings `evaluate` uses for this member, which `autorec export`
        writes as a training config; None when candidates are not trained models."""
        return None

    def metric_names(self) -> list[str] | None:
        """Every metric `evaluate` returns, when the space knows them up front (an objective or
        constraint on anything else is refused before the search starts); None: unknown."""
        return None

    def selection_metric(self, name: str) -> str:
        """The metric a search objective or constraint named `name` is judged on. Spaces whose
        metrics exist per split map a quality metric to its validation version."""
        return name

    # Shared behaviour, not meant to be overridden.

    def selection_metrics(self) -> list[str]:
        """The metrics that decide: objectives, gates, then constrained metrics."""
        names = [o.name for o in self.objectives] + list(self.gates)
        return names + [c.name for c in self.constraints if c.name not in names]

    def add_search_objectives(
        self, objectives: list[Objective], constraints: list[Constraint]
    ) -> None:
        """A search's own `--objective`s (added to the space's; one with a known name replaces
        it) and `--constraint`s, named as the user wrote them and mapped to selection metrics."""
        known = self.metric_names()
        for item in [*objectives, *constraints]:
            base = item.name.removeprefix("valid_")
            if known is not None and item.name not in known and base not in known:
                raise ConfigError(
                    f"space '{self.name}' computes no metric '{item.name}'; known: "
                    f"{', '.join(sorted(known))}"
                )
        mapped = [o.model_copy(update={"name": self.selection_metric(o.name)}) for o in objectives]
        merged = {o.name: o for o in self.objectives}
        merged.update({o.name: o for o in mapped})
        self.objectives = list(merged.values())
        self.constraints = [c.model_copy(update={"name": self.selection_metric(c.name)})
                            for c in constraints]
        reported = list(self.reported_metrics)
        for item in [*objectives, *constraints]:
            base = item.name.removeprefix("valid_")
            if self.selection_metric(base) != base and base not in reported:
                reported.append(base)  # the test-split twin of a validation objective
        self.reported_metrics = reported

    def contract(self) -> dict[str, Any]:
        """What a run stores about its space when it starts, so review and export never need
        the plugin or the dataset again."""
        return {
            "name": self.name,
            "version": str(self.version),
            "objectives": [o.model_dump() for o in self.objectives],
            "gates": list(self.gates),
            "constraints": [c.model_dump() for c in self.constraints],
            "selection_metrics": self.selection_metrics(),
            "reported_metrics": list(self.reported_metrics),
            "needs_dataset": bool(self.needs_dataset),
            "needs_gpu": bool(self.needs_gpu),
            "suite": [m.to_dict() for m in self.suite()],
            "schema": self.schema(),
            "description": self.describe(),
        }

    def validate(self, params: dict[str, Any]) -> pydantic.BaseModel:
        """The Candidate for `params`, InvalidCandidate with a readable reason, or SpaceError
        when the space's own validation code breaks (a bug to fix in the space, not in the
        proposal)."""
        if not isinstance(params, dict):
            raise InvalidCandidate(f"a candidate must be a JSON object, got {type(params).__name__}")
        try:
            return self.Candidate.model_validate(params)
        except pydantic.ValidationError as err:
            raise InvalidCandidate(describe_validation_error(err, "candidate")) from None
        except Exception as err:  # noqa: BLE001 - pydantic wraps ValueError/AssertionError itself
            raise SpaceError(
                f"space '{self.name}' failed while validating a candidate: "
                f"{type(err).__name__}: {err}"
            ) from err

    def schema(self) -> dict[str, Any]:
        """The Candidate's JSON schema: what constrained decoding and the prompts use."""
        return self.Candidate.model_json_schema()


def contract_objectives(contract: dict[str, Any]) -> list[Objective]:
    """The objectives a run stored in its space contract."""
    return [Objective.model_validate(o) for o in contract.get("objectives", [])]


def candidate_hash(params: dict[str, Any]) -> str:
    """Identity of a candidate: the archive's hash of its params as canonical JSON.

    Hash validated params (`Candidate.model_dump(mode="json")`): validation is what makes `1` and
    `1.0` the same value. Proposers and the archive share this one function, so a proposer's
    bookkeeping always matches the archive's dedupe.
    """
    return params_hash(params)


def builtin_spaces() -> dict[str, str]:
    """Names of the spaces shipped with autorec, and where they live."""
    return {
        "architecture": "autorec.search_spaces.architecture:ArchitectureSpace",
        "embedding_dims": "autorec.search_spaces.embedding_dims:EmbeddingDimsSpace",
        "prompt_templates": "autorec.search_spaces.prompt_template:PromptTemplateSpace",
        "triton_kernels": "autorec.search_spaces.triton_kernels:TritonKernelsSpace",
    }


# Former names of built-in spaces, still loadable (archives and configs store the name they ran).
SPACE_ALIASES = {"prompt_template": "prompt_templates"}


def space_names() -> list[str]:
    names = set(builtin_spaces())
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def load_space_class(spec: str) -> type[SearchSpace]:
    """A space class from a name ('architecture') or a file ('path/to/file.py:ClassName')."""
    if ".py:" in spec or spec.endswith(".py"):
        return _from_file(spec)
    target = builtin_spaces().get(SPACE_ALIASES.get(spec, spec))
    if target is None:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if not matches:
            raise UnknownNameError("space", spec, space_names())
        target = matches[0].value
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # a plugin's import error is the plugin author's to see
        raise SpaceError(f"space '{spec}': importing {module_name} failed: {err}") from None
    return _checked(getattr(module, attr, None), f"{module_name}:{attr}")


def space_file_source(spec: str) -> dict[str, str] | None:
    """{path, text} of a space given as a file, for workers that may not share the file system."""
    if not (".py:" in spec or spec.endswith(".py")):
        return None
    path = Path(spec.rpartition(":")[0] if ".py:" in spec else spec)
    return {"path": str(path), "text": path.read_text()} if path.is_file() else None


def _from_file(spec: str) -> type[SearchSpace]:
    path_text, _, class_name = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    path = Path(path_text)
    if not path.is_file():
        raise SpaceError(f"space file {path} does not exist")
    path = path.resolve()
    module_name = f"autorec_user_space_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise SpaceError(f"space file {path} does not import: {type(err).__name__}: {err}") from None
    if not class_name:
        found = [v for v in vars(module).values()
                 if isinstance(v, type) and issubclass(v, SearchSpace) and v is not SearchSpace
                 and v.__module__ == module_name]
        if len(found) != 1:
            raise SpaceError(f"space file {path}: name the class as {path}:ClassName")
        return _checked(found[0], str(path))
    return _checked(getattr(module, class_name, None), f"{path}:{class_name}")


def _checked(cls: Any, where: str) -> type[SearchSpace]:
    if not (isinstance(cls, type) and issubclass(cls, SearchSpace)):
        raise SpaceError(f"{where} is not a SearchSpace subclass")
    missing = [attr for attr in ("name", "Candidate", "objectives") if not hasattr(cls, attr)]
    if missing:
        raise SpaceError(f"{where} lacks class attribute(s) {', '.join(missing)}")
    if getattr(cls, "__abstractmethods__", None):
        raise SpaceError(
            f"{where} does not implement {', '.join(sorted(cls.__abstractmethods__))}"
        )
    return cls


def load_space(spec: str, options: SpaceOptions | dict[str, Any] | None = None) -> SearchSpace:
    cls = load_space_class(spec)
    if isinstance(options, dict):
        try:
            options = SpaceOptions.model_validate(options)
        except pydantic.ValidationError as err:
            raise ConfigError(f"space options: {describe_validation_error(err)}") from None
    return cls(options)
