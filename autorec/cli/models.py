"""`autorec models`: the model suite and each model's settings."""

from __future__ import annotations

import typer

from autorec.cli.output import console, print_json, table

app = typer.Typer(help="List models and show their settings.", no_args_is_help=True)


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every model with its task."""
    from autorec.models import MODELS

    rows = [{"name": n, "task": e.task, "summary": e.summary} for n, e in MODELS.items()]
    if as_json:
        print_json(rows)
        return
    console.print(table(None, ["model", "task", "summary"], [r.values() for r in rows]))


@app.command("show")
def show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """The settings MODEL accepts (model and training), with defaults and ranges."""
    from autorec.models import MODELS, model_class
    from autorec.trainer import TASK_TRAIN_DEFAULTS, TrainConfig

    cls = model_class(name)
    task = MODELS[name].task
    rows = []
    for scope, schema, overrides in (
        ("model", cls.Config, {}),
        ("train", TrainConfig, {**TASK_TRAIN_DEFAULTS[task], **cls.train_defaults}),
    ):
        for key, field in schema.model_fields.items():
            default = overrides.get(key, field.get_default(call_default_factory=True))
            rows.append({"scope": scope, "key": key, "default": default,
                         "description": field.description or ""})
    if as_json:
        print_json({"model": name, "task": task, "settings": rows})
        return
    console.print(table(f"{name} ({task})", ["scope", "key", "default", "description"],
                        [r.values() for r in rows]))
