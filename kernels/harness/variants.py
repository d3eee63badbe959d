"""A variant of an op: knob values of its Triton template, or the source of a generated kernel.

    {"knobs": {"BLOCK_B": 32}}          the hand-written template with these knobs
    {"source": "import triton ..."}     a kernel written against the op's signature

`check_variant` is the one place both forms are validated (unknown op, unknown knob or value,
empty source), so the CLI, the sandbox and the search space refuse the same things the same way.
"""

from __future__ import annotations

import json
from typing import Any

from autorec.errors import ConfigError

MAX_SOURCE_CHARS = 100_000


def check_variant(op: str, variant: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """(the op's spec, the variant with every template knob filled in)."""
    from autorec.kernels.registry import get_op

    spec = get_op(op)
    variant = dict(variant or {"knobs": {}})
    keys = set(variant)
    if keys not in ({"knobs"}, {"source"}):
        raise ConfigError(f"a variant of '{op}' is either {{\"knobs\": {{...}}}} or "
                          f"{{\"source\": \"...\"}}; got keys {', '.join(sorted(keys)) or 'none'}")
    if "knobs" in variant:
        knobs = variant["knobs"]
        if not isinstance(knobs, dict):
            raise ConfigError(f"knobs of '{op}' must be a JSON object, got {knobs!r}")
        spec.build(knobs)  # raises ConfigError for an unknown knob or value
        return spec, {"knobs": {**spec.default_knobs, **knobs}}
    source = variant["source"]
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"the source of a '{op}' variant must be non-empty text")
    if len(source) > MAX_SOURCE_CHARS:
        raise ConfigError(f"the source of a '{op}' variant has {len(source):,} characters; "
                          f"at most {MAX_SOURCE_CHARS:,}")
    return spec, {"source": source}


def parse_knobs(text: str, op: str) -> dict[str, Any]:
    """`--variant '{"BLOCK_B": 32}'` (or `default`) as a knob dict."""
    if text.strip() in ("", "default"):
        return {}
    try:
        knobs = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--variant for '{op}' is not JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(knobs, dict):
        raise ConfigError(f"--variant for '{op}' must be a JSON object of knobs, got {text!r}")
    return knobs


def variant_label(variant: dict[str, Any]) -> str:
    if "source" in variant:
        return "generated source"
    knobs = variant.get("knobs") or {}
    return ", ".join(f"{k}={v}" for k, v in knobs.items()) or "default knobs"


def resolve_shapes(spec: Any, shapes: Any) -> list[dict[str, Any]]:
    """A shape set's name ("interpreter", "suite", "production") or an explicit list of shapes."""
    if shapes is None:
        from autorec.kernels.harness.gate import interpreting

        shapes = "interpreter" if interpreting() else "suite"
    if isinstance(shapes, str):
        if shapes not in spec.shapes:
            raise ConfigError(f"op '{spec.name}' has no shape set '{shapes}'; "
                              f"sets: {', '.join(spec.shapes)}")
        return list(spec.shapes[shapes])
    return [dict(s) for s in shapes]


def resolve_dtypes(spec: Any, names: list[str] | None) -> list[Any]:
    """dtype names ("float32", "bfloat16") as the op's torch dtypes; None: every dtype it has."""
    if not names:
        return list(spec.tolerances)
    known = {str(d).removeprefix("torch."): d for d in spec.tolerances}
    wrong = [n for n in names if n not in known]
    if wrong:
        raise ConfigError(f"op '{spec.name}' has no tolerance for dtype {', '.join(wrong)}; "
                          f"dtypes: {', '.join(known)}")
    return [known[n] for n in names]
