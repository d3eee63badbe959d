"""Parsing `--set key=value` flags: values are YAML scalars, dotted keys nest."""

from __future__ import annotations

from typing import Any

import yaml

from autorec.errors import ConfigError


def parse_assignments(assignments: list[str] | None) -> dict[str, Any]:
    """['lr=0.01', 'hidden=[64,32]', 'field_dims.user_id=4'] -> a nested dict of typed values."""
    settings: dict[str, Any] = {}
    for assignment in assignments or []:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got '{assignment}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: cannot parse value '{raw}'") from None
        target = settings
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {key}: '{parent}' is already set to a value")
        target[leaf] = value
    return settings
