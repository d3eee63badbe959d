"""SearchConfig: everything `autorec search` is told, from flags or a YAML file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pydantic

from autorec.errors import ConfigError, describe_validation_error

if TYPE_CHECKING:
    from autorec.space import SearchSpace, SpaceOptions


class SearchConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    space: str = pydantic.Field("architecture", description="space name or path/to/file.py:Class")
    dataset: str | None = pydantic.Field(
        None, description="for spaces that train models: a dataset name (their default: ml-100k)"
    )
    task: Literal["ctr", "sequential"] | None = None
    space_settings: dict[str, Any] = pydantic.Field(default_factory=dict)
    proposer: str = pydantic.Field("agent", description="agent, tpe, random, best-of-n, portfolio")
    proposer_options: dict[str, Any] = pydantic.Field(default_factory=dict)
    # 20 evaluations of the default search (the agent on ML-100K) take a few minutes on two
    # cores: a newcomer's first search finishes while they read the README.
    budget: int | None = pydantic.Field(20, ge=1, description="evaluations, the reference's included")
    max_time: float | None = pydantic.Field(None, gt=0, description="seconds of wall time")
    patience: int | None = pydantic.Field(
        None, ge=1, description="stop after this many finished candidates without a better fitness"
    )
    max_tokens: int | None = pydantic.Field(None, ge=1, description="LLM tokens, prompts included")
    max_cost: float | None = pydantic.Field(None, gt=0, description="LLM cost in the backend's unit")
    workers: int = pydantic.Field(1, ge=1, le=1024, description="concurrent trials")
    threads: int = pydantic.Field(1, ge=1, le=256, description="torch threads (and CPUs) per trial")
    eval_time_limit: float | None = pydantic.Field(
        None, gt=0, description="seconds one evaluation may take before it is stopped as a timeout"
    )
    seed: int = pydantic.Field(0, ge=0)
    seed_candidates: list[dict[str, Any]] = pydantic.Field(
        default_factory=list,
        description="candidates evaluated right after the reference (operator 'seed')",
    )
    objectives: list[str] = pydantic.Field(
        default_factory=list,
        description="extra objectives NAME:max|min[:WEIGHT], added to the space's",
    )
    constraints: list[str] = pydantic.Field(
        default_factory=list, description="bounds METRIC<=VALUE (>=, <, >, ==) every member must meet"
    )
    early_stopping: bool = pydantic.Field(
        False, description="successive halving over epochs: stop evaluations behind their rung"
    )
    early_stopping_grace: int = pydantic.Field(1, ge=1, description="first rung, in epochs")
    early_stopping_eta: int = pydantic.Field(
        3, ge=2, description="rungs at grace * eta**k epochs; the best 1/eta of each rung go on"
    )
    gpus_per_trial: float = pydantic.Field(
        0.0, ge=0, le=64, description="GPUs per trial (fractions share a GPU)"
    )
    run_name: str | None = None
    ray_address: str | None = None

    @pydantic.field_validator("run_name")
    @classmethod
    def _printable_run_name(cls, name: str | None) -> str | None:
        """A run's name is printed, written into exported YAML and read back by scripts: one
        line of printable text (no newline or control character can smuggle in a key)."""
        from autorec.archive import check_run_name

        return None if name is None else check_run_name(name)

    @pydantic.field_validator("space")
    @classmethod
    def _absolute_space_file(cls, spec: str) -> str:
        """`my_space.py:MySpace` names a file relative to where the search starts; workers run
        elsewhere, so the stored spec holds the absolute path."""
        from pathlib import Path

        if ".py:" in spec or spec.endswith(".py"):
            path, sep, name = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
            if Path(path).is_file():
                return f"{Path(path).resolve()}{sep}{name}"
        return spec

    @pydantic.model_validator(mode="after")
    def _some_termination(self) -> "SearchConfig":
        limits = (self.budget, self.max_time, self.patience, self.max_tokens, self.max_cost)
        if all(limit is None for limit in limits):
            raise ValueError(
                "set at least one of budget, max_time, patience, max_tokens, max_cost: "
                "a search must end"
            )
        return self


    def space_options(self) -> "SpaceOptions":
        from autorec.space import SpaceOptions

        return SpaceOptions(dataset=self.dataset, task=self.task, settings=self.space_settings)

    def build_space(self, new_run: bool = False) -> "SearchSpace":
        """The one way to get the space a config (a new or a stored run's) searches.

        A new run is refused a dataset its space would ignore; a stored run (older archives
        stored a default dataset for every space) is not."""
        from autorec.space import load_space, parse_constraint, parse_objective

        space = load_space(self.space, self.space_options())
        if self.objectives or self.constraints:
            space.add_search_objectives(
                [parse_objective(text) for text in self.objectives],
                [parse_constraint(text) for text in self.constraints],
            )
        given = self.dataset is not None or self.task is not None
        if new_run and given and not space.needs_dataset:
            raise ConfigError(
                f"space '{space.name}' does not train on a dataset: drop --dataset and --task"
            )
        return space


def build_search_config(values: dict[str, Any], source: str) -> SearchConfig:
    try:
        return SearchConfig.model_validate(values)
    except pydantic.ValidationError as err:
        raise ConfigError(f"{source}: {describe_validation_error(err, 'config')}") from None
