"""Prompt synthesis: templates (text files in agents/prompt_templates/) filled with retrieved context.

The system message holds what is fixed for a run (the space description, objectives, knowledge
notes, the Candidate schema, the reply format), so servers and local models can reuse its cached
prefix. The user message is one of four mode templates (refine, compare, combine, restart) filled
from the archive graph: the parent(s) with metrics, the parent's children and what they changed,
the global top-k, the parent's nearest neighbours, and recent failures with their error text.

Every section is capped (see `Limits`), and the whole prompt is kept under `Limits.max_chars`
by dropping the least useful sections first: small local models have small contexts. A space's
whole-text fields (`SearchSpace.text_fields`, e.g. a prompt template) are never cut: a
candidate's params are shown with those fields whole (up to their schema `maxLength`) and the
`params_chars` cap applies to the rest; a change to one is summarised by its length.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import random
from importlib import resources
from string import Template
from typing import Any

from autorec.agents.base import CandidateSummary
from autorec.agents.graph import ArchiveGraph, FieldRange, field_ranges, rounded
from autorec.agents.llm.base import Message
from autorec.agents.reply import shorten, text_fields

MODES = ("refine", "compare", "combine", "restart")
TEMPLATES = (*MODES, "system", "repair", "duplicate")
RATIONALE_CHARS = 120  # asked for in the reply schema (parsing accepts up to MAX_RATIONALE)
# SmolLM2's tokenizer on these prompts (JSON-heavy): 2.8 characters a token (restart: 3.3).
CHARS_PER_TOKEN = 2.8


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much of the archive a prompt may carry."""

    top_k: int = 5
    neighbours: int = 3
    failures: int = 3
    children: int = 5
    max_chars: int = 12_000  # the whole prompt, system message included (about 4.3k tokens)
    error_chars: int = 200  # per failure's error text
    params_chars: int = 400  # per candidate's params
    knowledge_chars: int = 1_500
    # The space's whole-text fields and their maxLength, shown uncut (set by build_messages).
    whole_text: tuple[tuple[str, int], ...] = ()


@functools.lru_cache(maxsize=None)
def template(name: str) -> Template:
    """The text template `agents/prompt_templates/<name>.txt`."""
    if name not in TEMPLATES:
        raise KeyError(f"no prompt template '{name}'")
    text = resources.files("autorec.agents.prompt_templates").joinpath(f"{name}.txt").read_text("utf-8")
    return Template(text)


def estimate_tokens(text: str | list[Message]) -> int:
    """A tokenizer-free estimate of a prompt's tokens (the backend reports the real count)."""
    if isinstance(text, list):
        text = "".join(m.get("content", "") for m in text)
    return math.ceil(len(text) / CHARS_PER_TOKEN)


# The schema the reply is decoded under.


def reply_schema(space, rationale_chars: int = RATIONALE_CHARS) -> dict[str, Any]:
    """The space's Candidate schema plus a "rationale" string of at most `rationale_chars`
    characters (none when 0), every key required so that constrained decoding writes a complete
    candidate.

    The rationale comes first: a model that states its reason before the values writes values
    that follow from it, and a small model that has just written numbers tends to keep writing
    digits into a trailing free-text field."""
    schema = copy.deepcopy(space.schema())
    properties = schema.get("properties")
    if isinstance(properties, dict) and schema.get("type", "object") == "object":
        if rationale_chars > 0:
            rationale = {
                "type": "string",
                "maxLength": rationale_chars,
                "description": "one sentence: why this candidate should score well",
            }
            schema["properties"] = {"rationale": rationale, **properties}
        schema["required"] = list(schema["properties"])
    return schema


def compact_schema(schema: dict[str, Any]) -> str:
    """The schema as one compact JSON line: types, choices and bounds, no titles or prose."""
    keep = (
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "maxLength",
        "items",
        "anyOf",
        "$ref",
    )

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k in keep}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    slim: dict[str, Any] = {
        "type": "object",
        "properties": {k: strip(v) for k, v in (schema.get("properties") or {}).items()},
    }
    if schema.get("$defs"):
        slim["$defs"] = {k: strip(v) for k, v in schema["$defs"].items()}
    return json.dumps(slim, separators=(",", ":"))


# Rendering archive nodes.


def show_params(params: Any, limit: int, whole: tuple[tuple[str, int], ...] = ()) -> str:
    """Params as compact JSON, cut at `limit` characters plus the encoded length of each
    whole-text field in `whole` (bounded by its maxLength, every character escaped), so those
    fields and `limit` characters of everything else are shown."""
    try:
        text = json.dumps(rounded(params), separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(params)
    if isinstance(params, dict):
        for name, max_length in whole:
            value = params.get(name)
            if isinstance(value, str):
                encoded = len(json.dumps(value, ensure_ascii=False)) + len(name) + 4
                limit += min(encoded, 2 * max_length + len(name) + 6)
    return shorten(text, limit)


def show_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def show_metrics(node: CandidateSummary) -> str:
    parts = []
    if node.fitness is not None:
        parts.append(f"fitness {show_number(node.fitness)}")
    objectives = node.objectives or {}
    if objectives:
        parts.append(", ".join(f"{k} {show_number(v)}" for k, v in list(objectives.items())[:6]))
    return "; ".join(parts) or node.status


def show_node(node: CandidateSummary, limits: Limits) -> str:
    how = (
        f"{node.operator}, generation {node.generation}"
        if node.operator
        else f"generation {node.generation}"
    )
    shown = show_params(node.params, limits.params_chars, limits.whole_text)
    return f"#{node.id} ({how}) {show_metrics(node)}\n  {shown}"


def show_outcome(node: CandidateSummary, parent: CandidateSummary | None, limits: Limits) -> str:
    """A child as "what changed -> what it did" relative to its parent."""
    if node.status == "done" and node.fitness is not None:
        outcome = show_metrics(node)
        if parent is not None and parent.fitness is not None:
            delta = node.fitness - parent.fitness
            verdict = "helped" if delta > 0 else "hurt" if delta < 0 else "no change"
            outcome += f" ({verdict}: {delta:+.4g} vs parent)"
    else:
        outcome = f"{node.status}: {shorten(node.error or 'no error text', limits.error_chars)}"
    whole = [name for name, _ in limits.whole_text]
    changes = differences(parent.params, node.params, whole) if parent is not None else []
    changed = ", ".join(changes[:6]) or "nothing (same values)"
    return f"#{node.id} via {node.operator or '?'}: changed {changed} -> {outcome}"


def differences(a: Any, b: Any, whole: Any = ()) -> list[str]:
    """'key a -> b' for each top-level key whose value differs; a whole-text field (`whole`)
    as 'key N-char text -> M-char text', its texts being shown whole where the params are."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return []
    out = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key, "(unset)"), b.get(key, "(unset)")
        try:
            same = x == y
        except Exception:
            same = False
        if not same and key in whole and isinstance(x, str) and isinstance(y, str):
            out.append(f"{key} {len(x)}-char text -> {len(y)}-char text")
        elif not same:
            out.append(f"{key} {show_number(x)} -> {show_number(y)}")
    return out


def show_failure(node: CandidateSummary, limits: Limits) -> str:
    error = shorten(" ".join(str(node.error or "").split()), limits.error_chars)
    params = show_params(node.params, limits.params_chars // 2, limits.whole_text)
    return f"#{node.id} ({node.operator or '?'}, {node.status}) {params}\n  error: {error}"


def objectives_text(space) -> str:
    lines = [
        f"- {o.name}: {'maximise' if o.direction == 'max' else 'minimise'} (weight {o.weight:g})"
        for o in space.objectives
    ]
    gates = list(getattr(space, "gates", []) or [])
    if gates:
        lines.append(f"- gates that must hold: {', '.join(gates)}")
    constraints = list(getattr(space, "constraints", []) or [])
    if constraints:
        lines.append(f"- constraints that must hold: {', '.join(c.text() for c in constraints)}")
    lines.append(
        "fitness combines the objectives, each normalised against the reference candidate "
        "(fitness 0); higher is better. A failed candidate gets no fitness."
    )
    return "\n".join(lines)


def knowledge_text(space, limit: int) -> str:
    """The space's optional `knowledge` notes (an attribute or a method returning text)."""
    notes = getattr(space, "knowledge", None)
    try:
        if callable(notes):
            notes = notes()
    except Exception:  # a space's optional extra must not break the search
        notes = None
    if not isinstance(notes, str) or not notes.strip():
        return ""
    return shorten(notes.strip(), limit)


# Hints that vary a prompt (a greedy model repeats itself on the same prompt).


def _knobs(ranges: dict[str, FieldRange]) -> list[str]:
    """The fields a hint can name: those with choices or numeric bounds."""
    kinds = ("enum", "integer", "number", "boolean")
    return [name for name, spec in ranges.items() if spec.kind in kinds]


def focus_fields(ranges: dict[str, FieldRange], rng: random.Random) -> list[str]:
    """Up to two fields a prompt suggests changing (a different pair each call)."""
    names = _knobs(ranges)
    return rng.sample(names, min(2, len(names))) if names else []


def focus_hint(fields: list[str], must_change: str | None = None) -> str:
    if not fields:
        return ""
    hint = f"Hint: consider changing {' and/or '.join(fields)}."
    if must_change:
        hint += f" {must_change} must differ from the parent's value."
    return hint


def anchor_choice(ranges: dict[str, FieldRange], rng: random.Random) -> tuple[str, Any] | None:
    """A random value for one field, so that each restart starts somewhere else; None when no
    field has a known range."""
    names = _knobs(ranges)
    if not names:
        return None
    name = rng.choice(names)
    spec = ranges[name]
    if spec.kind in ("enum", "boolean"):
        return name, rng.choice(list(spec.choices))
    if spec.low is None or spec.high is None:
        return None
    if spec.log:
        value: Any = math.exp(rng.uniform(math.log(spec.low), math.log(spec.high)))
    else:
        value = rng.uniform(spec.low, spec.high)
    value = int(round(value)) if spec.kind == "integer" else float(f"{value:.3g}")
    return name, min(max(value, type(value)(spec.low)), type(value)(spec.high))


def anchor_hint(anchor: tuple[str, Any] | None) -> str:
    if anchor is None:
        return ""
    name, value = anchor
    return f"For variety, use {name} = {json.dumps(value)} in this candidate."


# Building the messages.


@dataclasses.dataclass
class PromptRequest:
    """What one LLM call is asked: the mode, its parent(s), and the archive to draw on."""

    mode: str
    parents: list[CandidateSummary]
    hint: str = ""
    avoid: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # earlier duplicates


def system_message(space, limits: Limits, description: str | None = None,
                   schema: dict[str, Any] | None = None) -> str:  # fmt: skip
    knowledge = knowledge_text(space, limits.knowledge_chars)
    return template("system").substitute(
        description=description if description is not None else space.describe().strip(),
        objectives=objectives_text(space),
        knowledge=f"\n# Knowledge notes\n{knowledge}\n" if knowledge else "",
        schema=compact_schema(schema if schema is not None else reply_schema(space)),
    )


def _sections(request: PromptRequest, graph: ArchiveGraph, limits: Limits) -> dict[str, list[str]]:
    """Each section of the user message as a list of entries (so that it can be shortened)."""
    parents = request.parents
    parent = parents[0] if parents else None
    parent_ids = [p.id for p in parents]
    sections: dict[str, list[str]] = {}
    if parent is not None:
        sections["parent"] = [show_node(parent, limits)]
        tried = sorted(graph.children_of(parent.id), key=lambda c: -c.id)
        if request.mode == "compare":
            tried = [c for c in tried if c.status in ("done", "failed", "invalid")]
        sections["children"] = [show_outcome(c, parent, limits) for c in tried[: limits.children]]
        sections["neighbours"] = [
            show_node(n, limits) for n in graph.neighbours(parent, limits.neighbours, parent_ids)
        ]
    if len(parents) > 1:
        sections["other"] = [show_node(parents[1], limits)]
        whole = [name for name, _ in limits.whole_text]
        sections["differences"] = [
            "- " + d.replace(" -> ", " (A) vs ", 1) + " (B)"
            for d in differences(parents[0].params, parents[1].params, whole)
        ]
    sections["top"] = [show_node(n, limits) for n in graph.top(limits.top_k, exclude=parent_ids)]
    sections["failures"] = [show_failure(n, limits) for n in graph.failures(limits.failures)]
    return sections


# Shortening order when a prompt is over its cap: least useful first.
_SHRINK = ("neighbours", "top", "children", "failures", "differences")


def _render(request: PromptRequest, sections: dict[str, list[str]], limits: Limits) -> str:
    values = {
        name: "\n".join(entries) if entries else "(none yet)" for name, entries in sections.items()
    }
    hint = request.hint
    if request.avoid:
        notes = [
            template("duplicate")
            .substitute(params=show_params(p, limits.params_chars, limits.whole_text))
            .strip()
            for p in request.avoid[-2:]
        ]
        hint = "\n".join([*notes, hint]).strip()
    values["hint"] = hint
    for name in ("parent", "other", "children", "neighbours", "differences", "top", "failures"):
        values.setdefault(name, "(none)")
    return template(request.mode).substitute(values)


def build_messages(
    space,
    request: PromptRequest,
    graph: ArchiveGraph,
    limits: Limits = Limits(),
    *,
    system: str | None = None,
) -> list[Message]:
    """The chat messages for one LLM call, within `limits.max_chars`."""
    if request.mode not in MODES:
        raise ValueError(f"unknown prompt mode '{request.mode}'; known: {', '.join(MODES)}")
    limits = dataclasses.replace(limits, whole_text=tuple(text_fields(space).items()))
    system = system if system is not None else system_message(space, limits)
    sections = _sections(request, graph, limits) if request.mode != "restart" else {}
    user = _render(request, sections, limits)
    # Over the cap: drop entries from the least useful sections, one at a time.
    for name in _SHRINK:
        while len(system) + len(user) > limits.max_chars and sections.get(name):
            sections[name].pop()
            user = _render(request, sections, limits)
    over = len(system) + len(user) - limits.max_chars
    if over > 0:  # still over: shorten the space description, keeping the schema and format
        description = space.describe().strip()
        system = system_message(
            space, limits, shorten(description, max(len(description) - over, 200))
        )
    if len(system) + len(user) > limits.max_chars:
        user = shorten(user, max(limits.max_chars - len(system), 200))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def repair_message(error: str | None) -> str:
    return (
        template("repair").substitute(error=shorten(str(error or "unknown problem"), 600)).strip()
    )


def ranges_of(space) -> dict[str, FieldRange]:
    return field_ranges(space.schema())
