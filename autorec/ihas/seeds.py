"""Seeding: iHAS's per-field widths as starting candidates of an `embedding_dims` search.

The file is a YAML list of {field: width} mappings, each checked against the space's Candidate
schema for the same dataset (and split), so `autorec search --space embedding_dims
--seed-candidates FILE` starts from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autorec.errors import ConfigError


def seed_candidates(report: dict[str, Any]) -> list[dict[str, int]]:
    """The global (one-group) widths first, then each group's, without repeats."""
    out: list[dict[str, int]] = []
    for dims in [report["global_dims"], *(g["dims"] for g in report["group_list"])]:
        if dims not in out:
            out.append(dict(dims))
    return out


def validate_seeds(
    candidates: list[dict[str, int]], dataset: str, split: str | None = None
) -> list[dict[str, int]]:
    """Each candidate as the embedding_dims space of `dataset` accepts it (InvalidCandidate or
    ConfigError, with the reason, if it does not)."""
    from autorec.space import load_space

    settings = {"split": split} if split else {}
    space = load_space("embedding_dims", {"dataset": dataset, "task": "ctr", "settings": settings})
    return [space.validate(candidate).model_dump() for candidate in candidates]


def write_seeds(
    path: str | Path, candidates: list[dict[str, int]], dataset: str, split: str | None = None
) -> list[dict[str, int]]:
    checked = validate_seeds(candidates, dataset, split)
    try:
        Path(path).write_text(yaml.safe_dump(checked, sort_keys=False))
    except OSError as err:
        raise ConfigError(f"cannot write seed candidates to {path}: {err.strerror}") from None
    return checked
