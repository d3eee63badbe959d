"""SearchConfig: everything `autorec search` is told, from flags or a YAML file."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from autorec.errors import ConfigError, describe_validation_error


class SearchConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    space: str = pydantic.Field("architecture", description="space name or path/to/file.py:Class")
    dataset: str = "ml-100k"
    task: Literal["ctr", "sequential"] | None = None
    space_settings: dict[str, Any] = pydantic.Field(default_factory=dict)
    proposer: str = pydantic.Field("agent", description="agent, tpe, random, best-of-n, portfolio")
    proposer_options: dict[str, Any] = pydantic.Field(default_factory=dict)
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
    run_name: str | None = None
    ray_address: str | None = None

    @pydantic.model_validator(mode="after")
    def _some_termination(self) -> "SearchConfig":
        limits = (self.budget, self.max_time, self.patience, self.max_tokens, self.max_cost)
        if all(limit is None for limit in limits):
            raise ValueError(
                "set at least one of budget, max_time, patience, max_tokens, max_cost: "
                "a search must end"
            )
        return self


def build_search_config(values: dict[str, Any], source: str) -> SearchConfig:
    try:
        return SearchConfig.model_validate(values)
    except pydantic.ValidationError as err:
        raise ConfigError(f"{source}: {describe_validation_error(err, 'config')}") from None
