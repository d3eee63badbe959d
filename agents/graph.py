"""The archive as a graph, and the selection policy that picks which nodes to expand.

Nodes are the run's candidates (`CandidateSummary` rows); an edge runs from each parent to each
child and carries the operator that made the child. Only finished, successful nodes (status
"done" with a finite fitness) may be expanded: failed, invalid, duplicate, pending and running
nodes stay in the graph as data (they count as expansions of their parents, and their errors feed
the prompts) but are never chosen.

Everything random here takes a `random.Random` from `seeded_rng`, so a run repeats exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from autorec.agents.base import CandidateSummary

from autorec.space import candidate_hash

FAILED = ("failed", "invalid", "timeout")


def seeded_rng(seed: int, *keys: Any) -> random.Random:
    """A generator that depends only on `seed` and `keys` (e.g. an operator name and a counter)."""
    text = ":".join(str(part) for part in (seed, *keys))
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def derived_seed(seed: int, *keys: Any) -> int:
    """A 31-bit seed for an LLM call, derived like `seeded_rng`."""
    return seeded_rng(seed, *keys).getrandbits(31)


def is_selectable(node: CandidateSummary) -> bool:
    fitness = node.fitness
    return node.status == "done" and isinstance(fitness, (int, float)) and math.isfinite(fitness)


class ArchiveGraph:
    """The candidates of one run, their lineage, and the questions the agent asks about them."""

    def __init__(self, archive: Iterable[CandidateSummary], schema: dict[str, Any] | None = None):
        self.nodes: dict[int, CandidateSummary] = {}
        self.children: dict[int, list[int]] = defaultdict(list)
        self.ranges = field_ranges(schema or {})
        self._hashes: set[str] = set()
        self._near: set[str] = set()  # hashes of the params rounded (see `rounded`)
        for node in archive:
            self.add(node)

    def add(self, node: CandidateSummary) -> None:
        """Add a node (the engine's rows, or a proposal of the current batch not yet admitted)."""
        self.nodes[node.id] = node
        for parent in node.parents:
            self.children[parent].append(node.id)
        if isinstance(node.params, dict):
            self._hashes.add(_safe_hash(node.params))
            self._near.add(_safe_hash(rounded(node.params)))

    # Structure.

    def edges(self) -> list[tuple[int, int, str]]:
        """(parent, child, operator) for every edge, in child order."""
        return [(p, c.id, c.operator) for c in self.nodes.values() for p in c.parents]

    def children_of(self, node_id: int) -> list[CandidateSummary]:
        return [self.nodes[c] for c in self.children.get(node_id, ()) if c in self.nodes]

    def expansions(self, node_id: int) -> int:
        """How often a node has been expanded: every child counts, whatever became of it."""
        return len(self.children.get(node_id, ()))

    def finished_children(self, node_id: int) -> list[CandidateSummary]:
        """Children with an outcome to learn from (a fitness or an error)."""
        return [c for c in self.children_of(node_id) if c.status in ("done", *FAILED)]

    def next_pending_id(self) -> int:
        """An id for a proposal not yet admitted: negative, never one of the archive's."""
        return min(0, *self.nodes) - 1 if self.nodes else -1

    def contains(self, params: dict[str, Any]) -> bool:
        """Whether a candidate with these (validated) params, or a near-duplicate of one, is
        already in the graph. Near-duplicates differ only in floats that agree to
        SIGNIFICANT_DIGITS digits: prompts show numbers that way, so a model that copies a shown
        learning rate of 0.0002526 repeats the archived 0.00025264732377 in all but name."""
        return (_safe_hash(params) in self._hashes
                or _safe_hash(rounded(params)) in self._near)  # fmt: skip

    # Retrieval.

    def selectable(self) -> list[CandidateSummary]:
        return [n for n in self.nodes.values() if is_selectable(n)]

    def best(self) -> CandidateSummary | None:
        top = self.top(1)
        return top[0] if top else None

    def top(self, k: int, exclude: Iterable[int] = ()) -> list[CandidateSummary]:
        """The `k` fittest selectable nodes (ties: the older first)."""
        skip = set(exclude)
        ranked = sorted(
            (n for n in self.selectable() if n.id not in skip), key=lambda n: (-n.fitness, n.id)
        )
        return ranked[: max(k, 0)]

    def failures(self, k: int) -> list[CandidateSummary]:
        """The `k` most recent failed or invalid nodes that carry an error text, newest first."""
        failed = [n for n in self.nodes.values() if n.status in FAILED and n.error]
        return sorted(failed, key=lambda n: -n.id)[: max(k, 0)]

    def neighbours(
        self, node: CandidateSummary, k: int, exclude: Iterable[int] = ()
    ) -> list[CandidateSummary]:
        """The `k` selectable nodes nearest to `node` in normalised parameter space."""
        skip = {node.id, *exclude}
        scored = [
            (distance(node.params, other.params, self.ranges), other.id, other)
            for other in self.selectable()
            if other.id not in skip
        ]
        scored.sort(key=lambda item: (item[0], item[1]))
        return [other for _, _, other in scored[: max(k, 0)]]

    def stagnation(self) -> int:
        """Successful candidates since the best fitness last improved (oldest first by id)."""
        best, since = None, 0
        for node in sorted(self.selectable(), key=lambda n: n.id):
            if best is None or node.fitness > best:
                best, since = node.fitness, 0
            else:
                since += 1
        return since


@dataclasses.dataclass
class SelectionPolicy:
    """Fitness-ranked tournament with an exploration bonus for little-expanded nodes.

    score(node) = rank-normalised fitness (0 worst .. 1 best among all selectable nodes, ties
    share their mean rank) + explore / sqrt(1 + children). A tournament draws `tournament` nodes
    without replacement and keeps the best score (ties: higher fitness, then the older node).
    """

    tournament: int = 4
    explore: float = 0.5

    def scores(self, graph: ArchiveGraph) -> dict[int, float]:
        nodes = graph.selectable()
        ranks = _rank_normalised({n.id: n.fitness for n in nodes})
        return {
            n.id: ranks[n.id] + self.explore / math.sqrt(1 + graph.expansions(n.id)) for n in nodes
        }

    def select(
        self,
        graph: ArchiveGraph,
        rng: random.Random,
        *,
        exclude: Iterable[int] = (),
        where: Callable[[CandidateSummary], bool] | None = None,
    ) -> CandidateSummary | None:
        """One node to expand, or None when no node qualifies."""
        skip = set(exclude)
        scores = self.scores(graph)
        pool = sorted(
            nid for nid in scores if nid not in skip and (where is None or where(graph.nodes[nid]))
        )
        if not pool:
            return None
        entrants = rng.sample(pool, min(max(self.tournament, 1), len(pool)))
        winner = max(entrants, key=lambda nid: (scores[nid], graph.nodes[nid].fitness, -nid))
        return graph.nodes[winner]


def _rank_normalised(values: dict[int, float]) -> dict[int, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {nid: 1.0 for nid in values}
    ordered = sorted(values, key=lambda nid: values[nid])
    ranks: dict[int, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and values[ordered[j + 1]] == values[ordered[i]]:
            j += 1
        for nid in ordered[i : j + 1]:
            ranks[nid] = (i + j) / 2 / (len(ordered) - 1)
        i = j + 1
    return ranks


# Distances over normalised parameters.


@dataclasses.dataclass(frozen=True)
class FieldRange:
    """What the schema says about one field: numeric bounds (maybe log-scaled) or choices."""

    kind: str  # "integer" | "number" | "enum" | "boolean" | "other"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()


def resolve(schema: dict[str, Any], node: Any) -> dict[str, Any]:
    """A property's schema with `$ref` followed and Optional (`anyOf` with null) unwrapped."""
    for _ in range(16):
        if not isinstance(node, dict):
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = schema
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            continue
        options = node.get("anyOf") or node.get("oneOf")
        if isinstance(options, list) and "type" not in node and "enum" not in node:
            usable = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            if usable:
                node = {
                    **usable[0],
                    **{k: v for k, v in node.items() if k not in ("anyOf", "oneOf")},
                }
                continue
        return node
    return {}


def field_ranges(schema: dict[str, Any]) -> dict[str, FieldRange]:
    """Per top-level property of a JSON schema, its kind and bounds."""
    ranges: dict[str, FieldRange] = {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return ranges
    for name, raw in properties.items():
        prop = resolve(schema, raw)
        if "enum" in prop and isinstance(prop["enum"], list) and prop["enum"]:
            ranges[name] = FieldRange("enum", choices=tuple(prop["enum"]))
        elif "const" in prop:
            ranges[name] = FieldRange("enum", choices=(prop["const"],))
        elif prop.get("type") in ("integer", "number"):
            low = prop.get("minimum", prop.get("exclusiveMinimum"))
            high = prop.get("maximum", prop.get("exclusiveMaximum"))
            low = float(low) if _is_number(low) else None
            high = float(high) if _is_number(high) else None
            log = low is not None and high is not None and low > 0 and high / low >= 16
            ranges[name] = FieldRange(prop["type"], low, high, log)
        elif prop.get("type") == "boolean":
            ranges[name] = FieldRange("boolean", choices=(False, True))
        else:
            ranges[name] = FieldRange("other")
    return ranges


def distance(a: dict[str, Any], b: dict[str, Any], ranges: dict[str, FieldRange]) -> float:
    """Mean per-field distance in [0, 1]: numeric fields scaled by their range (log-scaled for
    wide positive ranges), everything else 0 when equal and 1 when not; a missing field is 1."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return 1.0
    keys = sorted(set(a) | set(b), key=str)
    if not keys:
        return 0.0
    total = 0.0
    for key in keys:
        if key not in a or key not in b:
            total += 1.0
            continue
        x, y = a[key], b[key]
        spec = ranges.get(key)
        if _is_number(x) and _is_number(y):
            total += _numeric_distance(float(x), float(y), spec)
        else:
            total += 0.0 if _equal(x, y) else 1.0
    return total / len(keys)


def _numeric_distance(x: float, y: float, spec: FieldRange | None) -> float:
    if not (math.isfinite(x) and math.isfinite(y)):
        return 0.0 if x == y else 1.0
    if spec is not None and spec.kind == "enum" and x in spec.choices and y in spec.choices:
        ordered = sorted(c for c in spec.choices if _is_number(c))
        if len(ordered) > 1:
            return abs(ordered.index(x) - ordered.index(y)) / (len(ordered) - 1)
    if spec is not None and spec.low is not None and spec.high is not None and spec.high > spec.low:
        if spec.log and x > 0 and y > 0:
            span = math.log(spec.high) - math.log(spec.low)
            return min(1.0, abs(math.log(x) - math.log(y)) / span)
        return min(1.0, abs(x - y) / (spec.high - spec.low))
    scale = max(abs(x), abs(y))
    return 0.0 if scale == 0 else min(1.0, abs(x - y) / scale)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(x: Any, y: Any) -> bool:
    try:
        return bool(x == y)
    except Exception:  # exotic values from a malformed archive row
        return False


SIGNIFICANT_DIGITS = 4  # of floats shown in prompts and compared for near-duplicates


def rounded(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """`value` with every float rounded to `digits` significant digits (in dicts and lists too).

    Why: a TPE draw's learning rate has 17 significant digits, about 20 tokens; a small model
    copies such numbers digit by digit into its reply, which costs a decoding step per digit and
    proposes the archived value again. Four digits are more than any recommender knob needs."""
    if isinstance(value, float) and math.isfinite(value) and value != 0.0:
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def _safe_hash(params: dict[str, Any]) -> str:
    try:
        return candidate_hash(params)
    except (TypeError, ValueError, RecursionError):
        return repr(sorted(params.items(), key=str))[:10_000]


def pending_node(
    node_id: int, params: dict[str, Any], operator: str, parents: Sequence[int]
) -> CandidateSummary:
    """A proposal of the current batch as a graph node: it counts as an expansion of its parents
    and as a known candidate, but it is never selected."""
    return CandidateSummary(node_id, params, "pending", None, {}, operator, list(parents), 0)
