"""Proposers: what suggests the next candidates of a search.

`load_proposer("tpe", space, seed=0)` builds one by name. `PROPOSERS` maps each name to its
class; classes are imported on first use, so a proposer with heavy dependencies (the LLM agent)
costs nothing until it is chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from autorec.agents.base import (
    CandidateResult,
    CandidateSummary,
    Proposal,
    ProposalContext,
    Proposer,
)
from autorec.errors import UnknownNameError
from autorec.space import SearchSpace


class ProposerRegistry(Mapping[str, type[Proposer]]):
    """Names -> proposer classes, each given as 'module:Class' and imported when looked up."""

    def __init__(self, targets: dict[str, str]):
        self._targets = dict(targets)

    def register(self, name: str, target: str) -> None:
        """Add (or replace) a proposer: `target` is 'package.module:ClassName'."""
        self._targets[name] = target

    def __getitem__(self, name: str) -> type[Proposer]:
        module_name, _, attr = self._targets[name].partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


PROPOSERS = ProposerRegistry(
    {
        "random": "autorec.agents.optuna_proposers:RandomProposer",
        "tpe": "autorec.agents.optuna_proposers:TPEProposer",
        "agent": "autorec.agents.portfolio:AgentProposer",
        "best-of-n": "autorec.agents.best_of_n:BestOfNProposer",
        "portfolio": "autorec.agents.portfolio:PortfolioProposer",
    }
)


def proposer_names() -> list[str]:
    return sorted(PROPOSERS)


def load_proposer(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Proposer:
    """The proposer `name` for `space`; unknown options are a ConfigError of the proposer."""
    if name not in PROPOSERS:
        raise UnknownNameError("proposer", name, proposer_names())
    return PROPOSERS[name](space, seed=seed, **options)


__all__ = [
    "CandidateResult",
    "CandidateSummary",
    "PROPOSERS",
    "Proposal",
    "ProposalContext",
    "Proposer",
    "load_proposer",
    "proposer_names",
]
