"""What `autorec train --config FILE` reads and `autorec export` writes: one model to train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from autorec.errors import ConfigError, describe_validation_error


class TrainSpec(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    model: str
    dataset: str = "ml-100k"
    task: Literal["ctr", "sequential"] | None = None  # None: the model's own task
    split: Literal["user_time", "global_time"] | None = None  # CTR only; None: the dataset's default
    settings: dict[str, Any] = pydantic.Field(default_factory=dict)
    # Written by `autorec export` so a file says where it came from; training ignores both.
    metrics: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None


def read_yaml_or_json(path: str | Path, what: str = "config file") -> Any:
    """A file's YAML (or, for .json, JSON) content, or a ConfigError naming `what` and the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{what} {path} is not valid YAML/JSON: {first_line}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping, or a ConfigError that names the file and the problem."""
    path = Path(path)
    data = read_yaml_or_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


def validate_spec(values: dict[str, Any], source: str) -> TrainSpec:
    try:
        return TrainSpec.model_validate(values)
    except pydantic.ValidationError as err:
        raise ConfigError(f"{source}: {describe_validation_error(err, 'config')}") from None
