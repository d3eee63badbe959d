"""`autorec datasets`: what data is available and what it holds."""

from __future__ import annotations

import typer

from autorec.cli.output import console, print_json, table

app = typer.Typer(help="List datasets and inspect one.", no_args_is_help=True)


@app.command("list")
def list_datasets(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every registered dataset with its tasks."""
    from autorec.data import dataset_names
    from autorec.data.base import _FACTORIES

    rows = []
    for name in dataset_names():
        factory = _FACTORIES[name]
        cls = factory if isinstance(factory, type) else getattr(factory, "dataset_class", None)
        rows.append(
            {
                "name": name,
                "tasks": list(getattr(cls, "tasks", ())),
                "description": getattr(cls, "description", ""),
            }
        )
    if as_json:
        print_json(rows)
        return
    console.print(
        table(None, ["dataset", "tasks", "description"],
              [[r["name"], ", ".join(r["tasks"]), r["description"]] for r in rows])
    )


@app.command("info")
def info(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Source, size, label rate and features of dataset NAME."""
    from autorec.data import load_dataset

    facts = load_dataset(name).info()
    if as_json:
        print_json(facts)
        return
    console.print(table(name, ["fact", "value"], [[k, _short(v)] for k, v in facts.items()]))


def _short(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    return str(value)
