"""The proposer interface: what suggests the next candidates of a search."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

from autorec.space import SearchSpace


@dataclasses.dataclass
class Proposal:
    """A candidate to evaluate, with where it came from."""

    params: dict[str, Any]
    operator: str  # what made it: "reference", "random", "tpe", "llm:refine", "mutate", ...
    parents: list[int] = dataclasses.field(default_factory=list)  # archive candidate ids
    rationale: str = ""
    # The LLM calls behind this proposal (agents.llm.base.Completion); the driver stores them.
    llm_calls: list[Any] = dataclasses.field(default_factory=list)
    # Set when the proposer already knows the proposal is unusable (a reply that is not JSON):
    # the driver records it as invalid with this reason and evaluates nothing.
    error: str | None = None
    # Set when the proposer itself decided not to spend an evaluation on a valid proposal (the
    # portfolio's surrogate ranked it below TPE's draw): stored as "screened" with its LLM calls
    # and this reason, never evaluated, never a parent.
    screened: str | None = None


@dataclasses.dataclass
class CandidateSummary:
    """A candidate as proposers see it: enough to pick parents and to learn."""

    id: int
    params: dict[str, Any]
    status: str  # done | failed | stopped | invalid | screened | duplicate | pending | running
    fitness: float | None
    objectives: dict[str, float]
    operator: str
    parents: list[int]
    generation: int
    error: str | None = None


@dataclasses.dataclass
class ProposalContext:
    """What the engine tells a proposer each time it asks for candidates.

    `archive` is the run's candidates so far (oldest first); proposers that need retrieval (the LLM
    agent) read it, simple ones ignore it.
    """

    space: SearchSpace
    run_id: int
    archive: list[CandidateSummary]
    evaluations_left: int | None  # None: no evaluation budget, only time or plateau
    seed: int


@dataclasses.dataclass
class CandidateResult:
    """The outcome of one candidate's whole suite, handed to `Proposer.observe`."""

    candidate_id: int
    params: dict[str, Any]
    status: str  # done | failed
    fitness: float | None
    objectives: dict[str, float]
    operator: str
    error: str | None = None


class Proposer(abc.ABC):
    """Suggests candidates; learns from results. Two methods, plus state for resume."""

    name: ClassVar[str]

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any):
        self.space = space
        self.seed = seed

    @abc.abstractmethod
    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        """Up to `n` new proposals (fewer is fine; none means "nothing more to try")."""

    def observe(self, result: CandidateResult) -> None:
        """Learn from a finished candidate. Default: nothing."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, stored in the archive so a resumed run continues exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
