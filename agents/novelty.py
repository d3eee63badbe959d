"""Decoding away from known points: schemas in which a reply cannot copy its parents.

A small model asked to refine, compare or combine mostly copies its first parent: on the 5-seed
runs before this, 38-74% of the embedded model's calls repeated a known candidate, and a hint in
the prompt ("consider changing lr") did not change that. The grammar can: for a call with a
parent, the first hinted field whose schema this module can rewrite gets one that excludes the
parent's value (an enum without it, a numeric range with a gap around it), so constrained
decoding cannot write the parent again; with a second parent (combine), a second hinted field is
barred from that parent's value. A restart, which has no parent and mostly rewrote the defaults,
is pinned to its random anchor value instead (the hint "use lr = 0.0031" becomes the schema's
only choice). A reply may still repeat another archived candidate; the agent counts that and
retries as before. Remote backends receive the same schema as their
response format, so the constraint holds wherever the server enforces schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from autorec.agents.graph import resolve

# A float counts as changed when it moves by at least this fraction of itself: more than the
# 4-significant-digit rounding that makes two values near-duplicates (agents.graph.rounded).
RELATIVE_GAP = 1e-3


def excluding(schema: dict[str, Any], name: str, value: Any) -> dict[str, Any] | None:
    """A copy of the reply `schema` in which property `name` cannot be `value`; None when the
    property is optional, of a kind this cannot rewrite, or has no other value to take."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    raw = properties.get(name) if isinstance(properties, dict) else None
    if not isinstance(raw, dict) or _is_optional(raw) or value is None:
        return None
    prop = resolve(schema, raw)
    rewritten = _without(prop, value)
    if rewritten is None:
        return None
    for key in ("title", "description"):
        if key in prop:
            rewritten[key] = prop[key]
    changed = copy.deepcopy(schema)
    changed["properties"][name] = rewritten
    return changed


def pinned(schema: dict[str, Any], name: str, value: Any) -> dict[str, Any] | None:
    """A copy of the reply `schema` in which property `name` can only be `value`; None when the
    schema has no such property."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    raw = properties.get(name) if isinstance(properties, dict) else None
    if not isinstance(raw, dict):
        return None
    prop = resolve(schema, raw)
    changed = copy.deepcopy(schema)
    changed["properties"][name] = {"enum": [value], **{k: prop[k] for k in ("title", "description")
                                                      if k in prop}}  # fmt: skip
    return changed


def _is_optional(raw: dict[str, Any]) -> bool:
    options = raw.get("anyOf") or raw.get("oneOf") or ()
    return any(isinstance(o, dict) and o.get("type") == "null" for o in options)


def _same(a: Any, b: Any) -> bool:
    """Equal and of one type: True is not 1 here, as it is not in JSON."""
    return type(a) is type(b) and a == b


def _without(prop: dict[str, Any], value: Any) -> dict[str, Any] | None:
    choices = prop.get("enum")
    if choices is None and prop.get("type") == "boolean":
        choices = [False, True]
    if isinstance(choices, list):
        left = [c for c in choices if not _same(c, value)]
        if not left or len(left) == len(choices):
            return None
        return {"enum": left}
    kind = prop.get("type")
    if kind not in ("integer", "number") or isinstance(value, bool):
        return None
    if not isinstance(value, (int, float)):
        return None
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is None or high is None or "exclusiveMinimum" in prop or "exclusiveMaximum" in prop:
        return None  # unbounded or exclusive ranges: not worth the cases
    if kind == "integer":
        below, above = (low, int(value) - 1), (int(value) + 1, high)
    else:
        gap = abs(value) * RELATIVE_GAP if value else (high - low) * RELATIVE_GAP
        below, above = (low, value - gap), (value + gap, high)
    ranges = [{"type": kind, "minimum": a, "maximum": b} for a, b in (below, above) if a <= b]
    if not ranges:
        return None
    return ranges[0] if len(ranges) == 1 else {"anyOf": ranges}
