"""The mutation operator: perturb one or two fields of a parent within the schema's bounds.

Numeric fields move by a random step (multiplicative for wide positive ranges such as a learning
rate, additive otherwise) and are clamped to the schema's minimum and maximum; ordered numeric
choices (a ladder of widths) move to a neighbouring rung; other choices jump to a different
value; booleans flip. The result is validated by the space, so a field the space resets (a knob
the chosen model does not use) simply yields another draw.
"""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar

from autorec.agents.base import Proposal, ProposalContext, Proposer
from autorec.agents.graph import (
    ArchiveGraph,
    FieldRange,
    SelectionPolicy,
    field_ranges,
    pending_node,
    seeded_rng,
)

from autorec.errors import ConfigError
from autorec.space import candidate_hash

MAX_TRIES = 24  # draws per proposal before giving up on finding a new, valid child


def mutate(
    params: dict[str, Any], ranges: dict[str, FieldRange], rng: random.Random, fields: int = 0
) -> tuple[dict[str, Any], list[str]]:
    """A copy of `params` with `fields` (0: one, sometimes two) fields perturbed, and a note per
    change ("lr 0.001 -> 0.0023")."""
    mutable = [name for name, spec in ranges.items() if _mutable(spec)]
    child = dict(params)
    if not mutable:
        return child, []
    count = fields or (1 if rng.random() < 0.7 else 2)
    notes = []
    for name in rng.sample(mutable, min(count, len(mutable))):
        old = params.get(name)
        new = perturb(old, ranges[name], rng)
        child[name] = new
        notes.append(f"{name} {_show(old)} -> {_show(new)}")
    return child, notes


def perturb(value: Any, spec: FieldRange, rng: random.Random) -> Any:
    """A new value for one field, different from `value` where the schema allows."""
    if spec.kind == "boolean":
        return not bool(value)
    if spec.kind == "enum":
        choices = list(spec.choices)
        others = [c for c in choices if c != value]
        if not others:
            return value
        numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
        if numeric and value in choices and rng.random() < 0.8:
            ordered = sorted(choices)
            i = ordered.index(value) + rng.choice((-1, 1))
            if 0 <= i < len(ordered):
                return ordered[i]
        return rng.choice(others)
    if spec.kind in ("integer", "number"):
        return _perturb_number(value, spec, rng)
    return value


def _perturb_number(value: Any, spec: FieldRange, rng: random.Random) -> Any:
    is_int = spec.kind == "integer"
    low, high = spec.low, spec.high
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        value = low if low is not None else (high if high is not None else 0)
    x = float(value)
    if spec.log and x > 0:
        x *= math.exp(rng.gauss(0.0, 0.7))
    elif low is not None and high is not None:
        x += rng.gauss(0.0, 0.2 * (high - low))
    else:
        x += rng.gauss(0.0, max(abs(x) * 0.3, 1.0))
    if low is not None:
        x = max(low, x)
    if high is not None:
        x = min(high, x)
    if is_int:
        new = int(round(x))
        if new == value:  # a step too small to change an integer: take one unit, inside bounds
            step = rng.choice((-1, 1))
            if (low is not None and new + step < low) or (high is not None and new + step > high):
                step = -step
            new += step
            if low is not None:
                new = max(int(math.ceil(low)), new)
            if high is not None:
                new = min(int(math.floor(high)), new)
        return new
    return float(f"{x:.4g}")


def _mutable(spec: FieldRange) -> bool:
    if spec.kind == "enum":
        return len(spec.choices) > 1
    return spec.kind in ("boolean", "integer", "number")


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def mutate_new(
    space,
    parent_params: dict[str, Any],
    ranges: dict[str, FieldRange],
    rng: random.Random,
    is_known,
    tries: int = MAX_TRIES,
) -> tuple[dict[str, Any], list[str]] | None:
    """A valid mutant of `parent_params` that `is_known(params)` does not know yet, or None.

    Returns the validated params (the space's canonical form) and the change notes."""
    parent_key = _hash_or_none(parent_params)
    for _ in range(tries):
        child, notes = mutate(parent_params, ranges, rng)
        if not notes:
            return None
        try:
            params = space.validate(child).model_dump(mode="json")
        except Exception:  # an out-of-constraint mutant (InvalidCandidate) or a space quirk
            continue
        if _hash_or_none(params) == parent_key or is_known(params):
            continue
        return params, notes
    return None


def _hash_or_none(params: dict[str, Any]) -> str | None:
    try:
        return candidate_hash(params)
    except Exception:
        return None


class MutationProposer(Proposer):
    """Select a parent with the graph's policy and perturb one or two of its fields."""

    name: ClassVar[str] = "mutate"
    OPTIONS: ClassVar[dict[str, str]] = {
        "tournament": "nodes per selection tournament (default 4)",
        "explore": "exploration bonus for little-expanded nodes (default 0.5)",
        "tries": f"mutants drawn per proposal before giving up (default {MAX_TRIES})",
    }

    def __init__(self, space, seed: int = 0, **options: Any):
        super().__init__(space, seed)
        check_options(self.name, options, self.OPTIONS)
        self.policy = SelectionPolicy(
            tournament=int(options.get("tournament", 4)), explore=float(options.get("explore", 0.5))
        )
        self.tries = int(options.get("tries", MAX_TRIES))
        self.ranges = field_ranges(space.schema())
        self.counter = 0

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        graph = ArchiveGraph(context.archive, self.space.schema())
        proposals = []
        for _ in range(n):
            rng = seeded_rng(context.seed, self.name, self.counter)
            self.counter += 1
            parent = self.policy.select(graph, rng)
            if parent is not None:
                base, parents = parent.params, [parent.id]
            else:  # nothing finished yet: perturb the reference (in the archive if it is there)
                reference = next((c for c in context.archive if c.operator == "reference"), None)
                base = self.space.reference().model_dump(mode="json")
                parents = [reference.id] if reference is not None else []
            found = mutate_new(self.space, base, self.ranges, rng, graph.contains, self.tries)
            if found is None:
                continue
            params, notes = found
            proposals.append(
                Proposal(
                    params=params,
                    operator=self.name,
                    parents=parents,
                    rationale="mutate: " + ", ".join(notes),
                )
            )
            graph.add(pending_node(graph.next_pending_id(), params, self.name, parents))
        return proposals

    def state_dict(self) -> dict[str, Any]:
        return {"proposer": self.name, "counter": self.counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter = int(state.get("counter", 0))


def check_options(name: str, options: dict[str, Any], known: dict[str, str]) -> None:
    """Unknown proposer options are a ConfigError that lists the known ones."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"proposer '{name}': unknown option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known)) or 'none'}"
        )
