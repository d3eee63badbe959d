"""`autorec spaces`: the search spaces that can be searched, and what each one's candidates are."""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.markup import escape

from autorec.cli.output import console, print_json, table
from autorec.cli.settings import parse_assignments
from autorec.errors import AutorecError

app = typer.Typer(help="List search spaces and show one's candidates.", no_args_is_help=True)


@app.command("list")
def list_spaces(as_json: bool = typer.Option(False, "--json", help="print one JSON document")) -> None:
    """Every space by name: version, objectives, and where it comes from."""
    from importlib.metadata import entry_points

    from autorec.space import ENTRY_POINT_GROUP, builtin_spaces, load_space_class, space_names

    builtin = builtin_spaces()
    plugins = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    rows = []
    for name in space_names():
        row: dict[str, Any] = {
            "name": name,
            "source": "built-in" if name in builtin else "entry point",
            "target": builtin.get(name) or plugins.get(name),
            "version": None, "objectives": [], "error": None,
        }
        try:
            cls = load_space_class(name)
        except AutorecError as err:  # one broken plugin must not hide the others
            row["error"] = str(err)
        else:
            row["version"] = str(cls.version)
            row["objectives"] = [_objective(o) for o in cls.objectives]
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    console.print(table(
        None, ["space", "version", "objectives", "from"],
        [[r["name"], r["version"] or "",
          escape(", ".join(_objective_text(o) for o in r["objectives"]) or f"error: {r['error']}"),
          r["source"] if r["source"] == "built-in" else f"{r['source']} ({r['target']})"]
         for r in rows],
    ))


@app.command("show")
def show(
    name: str = typer.Argument(..., help="space name or path/to/file.py:Class"),
    dataset: str = typer.Option("ml-100k", "--dataset", "-d",
                                help="the dataset the space is built for (some spaces' fields depend on it)"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="ctr or sequential"),
    assignments: Optional[list[str]] = typer.Option(None, "--set", "-s", help="space setting key=value"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """What the agent is told, the Candidate's fields with their ranges, objectives, reference."""
    from autorec.space import load_space

    options = {"dataset": dataset, "task": task, "settings": parse_assignments(assignments)}
    space = load_space(name, options)
    schema = space.schema()
    fields = candidate_fields(schema)
    objectives = [_objective(o) for o in space.objectives]
    reference = space.reference().model_dump(mode="json")
    suite = [m.key for m in space.suite()]
    if as_json:
        print_json({
            "name": space.name, "version": str(space.version), "dataset": dataset, "task": task,
            "description": space.describe(), "fields": fields, "objectives": objectives,
            "gates": list(space.gates), "reported_metrics": list(space.reported_metrics),
            "reference": reference, "suite": suite, "schema": schema,
        })
        return
    console.print(f"[bold]{escape(space.name)}[/] version {escape(str(space.version))}"
                  + (f", dataset {escape(space.options.dataset)}" if space.needs_dataset else ""))
    console.print(space.describe(), markup=False, highlight=False)
    console.print(table(
        "candidate fields", ["field", "type", "range", "default", "reference", "description"],
        [[f["name"], f["type"], escape(f["range"]), escape(_value(f["default"])),
          escape(_value(reference.get(f["name"]))), escape(f["description"])] for f in fields],
    ))
    console.print(table(
        "objectives", ["objective", "direction", "weight"],
        [[o["name"], o["direction"], f"{o['weight']:g}"] for o in objectives],
    ))
    console.print(f"suite: {', '.join(suite)}", markup=False, highlight=False)
    if space.gates:
        console.print(f"gates: {', '.join(space.gates)}", markup=False, highlight=False)
    if space.reported_metrics:
        console.print(f"reported beside, never used to select: {', '.join(space.reported_metrics)}",
                      markup=False, highlight=False)


def candidate_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per property of a Candidate's JSON schema: type, allowed range, default."""
    definitions = schema.get("$defs", {})
    required = set(schema.get("required", []))
    rows = []
    for key, prop in schema.get("properties", {}).items():
        prop = _resolve(prop, definitions)
        rows.append({
            "name": key,
            "type": _type(prop, definitions),
            "range": _range(prop, definitions),
            "default": prop.get("default"),
            "required": key in required,
            "description": prop.get("description", ""),
        })
    return rows


def _resolve(prop: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return {**definitions.get(ref.split("/")[-1], {}), **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _type(prop: dict[str, Any], definitions: dict[str, Any]) -> str:
    if "type" in prop:
        kind = prop["type"]
        if kind == "array" and isinstance(prop.get("items"), dict):
            return f"array of {_type(_resolve(prop['items'], definitions), definitions)}"
        return kind if isinstance(kind, str) else " | ".join(kind)
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return " | ".join(_type(_resolve(p, definitions), definitions) for p in prop[key])
    if "enum" in prop:
        return "enum"
    if "const" in prop:
        return "const"
    return "any"


def _range(prop: dict[str, Any], definitions: dict[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(map(str, prop["enum"]))
    if "const" in prop:
        return f"= {prop['const']}"
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is not None or high is not None:
        left = "(" if "exclusiveMinimum" in prop else "["
        right = ")" if "exclusiveMaximum" in prop else "]"
        return f"{left}{'' if low is None else low}, {'' if high is None else high}{right}"
    for key in ("anyOf", "oneOf"):
        if key in prop:
            parts = [_range(_resolve(p, definitions), definitions) for p in prop[key]]
            return " | ".join(p for p in parts if p)
    if "minLength" in prop or "maxLength" in prop:
        return f"length {prop.get('minLength', 0)}..{prop.get('maxLength', '')}"
    return ""


def _objective(o: Any) -> dict[str, Any]:
    return {"name": o.name, "direction": o.direction, "weight": o.weight}


def _objective_text(o: dict[str, Any]) -> str:
    return f"{o['name']} ({o['direction']}, weight {o['weight']:g})"


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
