"""`autorec train`: train one model on one dataset and print its test metrics."""

from __future__ import annotations

from typing import Optional

import typer

from autorec.cli.output import console, print_json, table
from autorec.cli.settings import parse_assignments
from autorec.errors import ConfigError


def train(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="model name (autorec models list)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="dataset name or csv:SCHEMA.yaml"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="ctr or sequential; default: the model's"),
    split: Optional[str] = typer.Option(None, "--split", help="CTR split: user_time (default) or global_time"),
    assignments: Optional[list[str]] = typer.Option(
        None, "--set", "-s", help="key=value for a model or training setting; repeatable"
    ),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file (e.g. from autorec export)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of tables"),
) -> None:
    """Train MODEL on DATASET and report test metrics, size and speed."""
    from autorec.api import check_train_spec, train_data
    from autorec.train_spec import read_config_file, validate_spec
    from autorec.trainer import train_model

    values = read_config_file(config) if config else {}
    source = config or "command line"
    flags = {"model": model, "dataset": dataset, "task": task, "split": split}
    values.update({k: v for k, v in flags.items() if v is not None})
    if "model" not in values:
        raise ConfigError("no model given: pass --model NAME or --config FILE")
    values["settings"] = {**values.get("settings", {}), **parse_assignments(assignments)}
    spec = validate_spec(values, source)
    model_task = check_train_spec(spec)  # everything refusable, before any data loads
    data = train_data(spec, model_task)
    if not as_json:
        console.print(f"training [bold]{spec.model}[/] on {spec.dataset} ({model_task}) ...")
    result = train_model(spec.model, data, spec.settings)

    if as_json:
        payload = result.to_dict()
        print_json(
            {
                "model": payload.pop("model"),
                "dataset": payload.pop("dataset"),
                "task": payload.pop("task"),
                "metrics": payload.pop("metrics"),
                "params": payload.pop("params"),
                "train_seconds": payload.pop("train_seconds"),
                **payload,
            }
        )
        return
    console.print(table("test metrics", ["metric", "value"], result.metrics.items()))
    console.print(
        table(
            None,
            ["params", "embedding params", "train s", "epochs (best)", "ms / 1k rows", "split"],
            [[result.params, result.embedding_params, result.train_seconds,
              f"{result.epochs_run} ({result.best_epoch})", result.latency_ms_per_1k, result.split_hash]],
        )
    )
