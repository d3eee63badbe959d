"""`autorec search`: propose, evaluate on Ray Tune, archive; a live progress bar and the top 5."""

from __future__ import annotations

from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from autorec.cli.common import db_option, open_archive
from autorec.cli.output import console, print_json, table
from autorec.cli.settings import parse_assignments
from autorec.errors import ConfigError


def search(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="search YAML; flags override it"),
    space: Optional[str] = typer.Option(None, "--space", help="space name or path/to/file.py:Class"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="ctr or sequential"),
    proposer: Optional[str] = typer.Option(
        None, "--proposer", "-p", help="agent (default), tpe, random, best-of-n, portfolio"
    ),
    llm: Optional[str] = typer.Option(
        None, "--llm", help="the agent's LLM: local (embedded SmolLM2) or openai:MODEL"
    ),
    llm_base_url: Optional[str] = typer.Option(
        None, "--llm-base-url", help="OpenAI-compatible server URL (key from OPENAI_API_KEY)"
    ),
    budget: Optional[int] = typer.Option(None, "--budget", "-n", help="evaluations, the reference's included"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="concurrent trials"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per trial"),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="seconds of wall time"),
    patience: Optional[int] = typer.Option(None, "--patience", help="stop after N candidates without a better one"),
    eval_time_limit: Optional[float] = typer.Option(None, "--eval-time-limit", help="seconds per evaluation"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="stop after this many LLM tokens"),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="stop after this LLM cost"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    run_name: Optional[str] = typer.Option(None, "--run-name"),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue the run with this name or id"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="join an existing Ray cluster"),
    assignments: Optional[list[str]] = typer.Option(None, "--set", "-s", help="space setting key=value"),
    db: Optional[str] = db_option(),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary instead of tables"),
) -> None:
    """Search a space: propose candidates, evaluate them on Ray Tune, keep all in the archive."""
    from autorec.engine import run_search
    from autorec.engine.search import resumed_config
    from autorec.search_config import build_search_config
    from autorec.train_spec import read_config_file

    flags = {
        "space": space, "dataset": dataset, "task": task, "proposer": proposer, "budget": budget,
        "workers": workers, "threads": threads, "max_time": max_time, "patience": patience,
        "eval_time_limit": eval_time_limit, "max_tokens": max_tokens, "max_cost": max_cost,
        "seed": seed, "run_name": run_name,
        "ray_address": ray_address,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    space_settings = parse_assignments(assignments)
    # Only the LLM's name and URL reach the archive's run config; a key stays in the environment.
    llm_options = {k: v for k, v in {"llm": llm, "llm_base_url": llm_base_url}.items() if v}
    archive = open_archive(db, create=True)
    if resume:
        if config or space_settings or llm_options:
            raise ConfigError(
                "--resume continues a run with its stored config; drop --config, --set and --llm"
            )
        run_id, search_config = resumed_config(archive, resume, given)
    else:
        values = read_config_file(config) if config else {}
        values.update(given)
        if space_settings:
            values["space_settings"] = {**values.get("space_settings", {}), **space_settings}
        if llm_options:
            values["proposer_options"] = {**values.get("proposer_options", {}), **llm_options}
        search_config = build_search_config(values, config or "command line")
        run_id = None

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} evals"),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=as_json,
        transient=False,
    )
    bar = progress.add_task("search", total=search_config.budget, best="-")

    def started(driver) -> None:
        if not as_json:
            console.print(f"run [bold]{archive.get_run(driver.run_id).name}[/] in {archive.location}")
        progress.update(bar, completed=driver.evaluations_finished)

    def update(driver) -> None:
        best = "-" if driver.best_fitness is None else f"{driver.best_fitness:+.4f}"
        progress.update(bar, completed=driver.evaluations_finished, best=best)

    with progress:
        outcome = run_search(search_config, archive, run_id, on_progress=update, on_start=started)

    top = archive.top(outcome.run_id, n=5)
    if as_json:
        print_json({
            "run": outcome.run_name, "stop_reason": outcome.stop_reason,
            "evaluations": outcome.evaluations, "best_fitness": outcome.best_fitness,
            "top": [{"id": c.id, "fitness": c.fitness, "operator": c.operator,
                     "objectives": c.objectives, "params": c.params} for c in top],
        })
        return
    console.print(f"run [bold]{outcome.run_name}[/] stopped: {outcome.stop_reason}")
    objective_names = sorted({k for c in top for k in (c.objectives or {})})
    console.print(table(
        "top 5", ["id", "fitness", "operator", *objective_names, "params"],
        [[c.id, c.fitness, c.operator, *[(c.objectives or {}).get(k) for k in objective_names],
          _params_line(c.params)] for c in top],
    ))


def _params_line(params: dict, limit: int = 60) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
