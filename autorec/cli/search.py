"""`autorec search`: propose, evaluate on Ray Tune, archive; a live progress bar and the top 5."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from autorec.cli.common import db_option, db_url
from autorec.cli.output import console, print_json, table
from autorec.cli.settings import parse_assignments
from autorec.errors import ConfigError
from autorec.train_spec import read_config_file


def _default(field: str) -> str:
    """SearchConfig's default for a flag, for --help: one place states every default."""
    from autorec.search_config import SearchConfig

    value = SearchConfig.model_fields[field].default
    return "none" if value is None else str(value)


def search(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="search YAML; flags override it"),
    space: Optional[str] = typer.Option(
        None, "--space", help=f"space name or path/to/file.py:Class (default: {_default('space')})"
    ),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", "-d", help="dataset of a space that trains models (default: ml-100k)"
    ),
    task: Optional[str] = typer.Option(
        None, "--task", "-t", help="ctr or sequential (default: the space's, ctr)"
    ),
    proposer: Optional[str] = typer.Option(
        None, "--proposer", "-p",
        help=f"agent, tpe, random, best-of-n, portfolio (default: {_default('proposer')})",
    ),
    llm: Optional[str] = typer.Option(
        None, "--llm", help="the agent's LLM: local (embedded SmolLM2) or openai:MODEL (default: local)"
    ),
    llm_base_url: Optional[str] = typer.Option(
        None, "--llm-base-url", help="OpenAI-compatible server URL (key from OPENAI_API_KEY)"
    ),
    budget: Optional[int] = typer.Option(
        None, "--budget", "-n",
        help=f"evaluations, the reference's included (default: {_default('budget')})",
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", help=f"concurrent trials (default: {_default('workers')})"
    ),
    threads: Optional[int] = typer.Option(
        None, "--threads", help=f"torch threads per trial (default: {_default('threads')})"
    ),
    gpus_per_trial: Optional[float] = typer.Option(
        None, "--gpus-per-trial", help="GPUs per trial, fractions share one (default: 0)"
    ),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="seconds of wall time (default: none)"),
    patience: Optional[int] = typer.Option(
        None, "--patience", help="stop after N candidates without a better one (default: none)"
    ),
    eval_time_limit: Optional[float] = typer.Option(
        None, "--eval-time-limit", help="seconds per evaluation (default: none)"
    ),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="stop after this many LLM tokens (default: none)"),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="stop after this LLM cost (default: none)"),
    seed: Optional[int] = typer.Option(None, "--seed", help=f"seed of the proposer and of training (default: {_default('seed')})"),
    seed_candidates: Optional[str] = typer.Option(
        None, "--seed-candidates", help="YAML/JSON list of candidates to evaluate first"
    ),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="name of the run (default: SPACE-PROPOSER-TIME)"),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue the run with this name or id"),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="join an existing Ray cluster (default: a local Ray)"
    ),
    assignments: Optional[list[str]] = typer.Option(None, "--set", "-s", help="space setting key=value"),
    early_stopping: Optional[bool] = typer.Option(
        None, "--early-stopping/--no-early-stopping",
        help="successive halving over epochs (rungs at 1, 3, 9 epochs; the best third go on) (default: off)",
    ),
    objectives: Optional[list[str]] = typer.Option(
        None, "--objective", help="extra objective NAME:max|min[:WEIGHT], e.g. diversity.genre_coverage:max:0.2"
    ),
    constraints: Optional[list[str]] = typer.Option(
        None, "--constraint", help="bound every member must meet, e.g. 'fairness.auc_gap<=0.01'"
    ),
    db: Optional[str] = db_option(),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary instead of tables"),
) -> None:
    """Search a space: propose candidates, evaluate them on Ray Tune, keep all in the archive.

    Candidates are ranked on validation metrics; test metrics are shown beside, never used.
    """
    from autorec import api
    from autorec.cli.run_log import RunLog

    flags = {
        "dataset": dataset, "task": task, "proposer": proposer, "budget": budget,
        "workers": workers, "threads": threads, "max_time": max_time, "patience": patience,
        "eval_time_limit": eval_time_limit, "max_tokens": max_tokens, "max_cost": max_cost,
        "seed": seed, "run_name": run_name, "ray_address": ray_address,
        "gpus_per_trial": gpus_per_trial, "objectives": objectives or None,
        "early_stopping": early_stopping,
        "constraints": constraints or None,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    space_settings = parse_assignments(assignments)
    # Only the LLM's name and URL reach the archive's run config; a key stays in the environment.
    llm_options = {k: v for k, v in {"llm": llm, "llm_base_url": llm_base_url}.items() if v}
    url = db_url(db)
    check_archive_path(url)
    if resume:
        if config or space_settings or llm_options or seed_candidates or space:
            raise ConfigError(
                "--resume continues a run with its stored config; drop --config, --space, --set, "
                "--llm and --seed-candidates"
            )
    else:
        values = read_config_file(config) if config else {}
        if space_settings:
            given["space_settings"] = {**values.get("space_settings", {}), **space_settings}
        if llm_options:
            given["proposer_options"] = {**values.get("proposer_options", {}), **llm_options}

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
    log = RunLog(url)
    bars: dict[int, int] = {}

    # The bar appears only once the search has started: a search refused at start-up prints
    # its one error line and nothing else.
    def started(driver) -> None:
        name = driver.archive.get_run(driver.run_id).name
        log.attach(name)
        if not as_json:
            console.print(f"run [bold]{escape(name)}[/] in {escape(driver.archive.location)}")
            progress.start()
        bars[driver.run_id] = progress.add_task("search", total=driver.config.budget, best="-")
        progress.update(bars[driver.run_id], completed=driver.evaluations_finished)

    def update(driver) -> None:
        best = "-" if driver.best_fitness is None else f"{driver.best_fitness:+.4f}"
        progress.update(bars[driver.run_id], completed=driver.evaluations_finished, best=best)

    try:
        with log:
            if resume:
                result = api.search(db=url, resume=resume, on_progress=update, on_start=started,
                                    **given)
            else:
                result = api.search(space, config=config, db=url, seed_candidates=seed_candidates,
                                    on_progress=update, on_start=started, **given)
    finally:
        progress.stop()
    print_result(result, as_json, log.path)


def check_archive_path(url: str) -> None:
    """An empty file is not an archive: SQLite would quietly make one of it, and a typo'd path
    to some other empty file would then hold a run."""
    from pathlib import Path

    path = Path(url.removeprefix("sqlite:///")) if "://" not in url or url.startswith("sqlite:///") else None
    if path is not None and path.is_file() and path.stat().st_size == 0:
        raise ConfigError(
            f"--db {url} is an empty file, not an autorec archive; delete it or name a new path"
        )


def print_result(result, as_json: bool, log_path) -> None:
    top = result.top
    if as_json:
        print_json({
            "run": result.run, "stop_reason": result.stop_reason,
            "evaluations": result.evaluations,
            "best_fitness": result.best.fitness if result.best else None,
            "best": _candidate_json(result.best) if result.best else None,
            "top": [_candidate_json(c) for c in top],
        })
        return
    console.print(f"run [bold]{escape(result.run)}[/] stopped: {escape(str(result.stop_reason))}")
    objective_names = sorted({k for c in top for k in c.objectives})
    test_names = sorted({k for c in top for k in c.reported})
    console.print(table(
        "top 5 by validation fitness (test figures only reported)",
        ["id", "fitness", "operator", *objective_names, *[f"test {k}" for k in test_names], "params"],
        [[c.id, c.fitness, c.operator, *[c.objectives.get(k) for k in objective_names],
          *[c.reported.get(k) for k in test_names], escape(_params_line(c.params))] for c in top],
    ))
    best = result.best
    if best is not None:
        valid = ", ".join(f"{k} {_figure(v)}" for k, v in best.objectives.items())
        test = ", ".join(f"{k} {_figure(v)}" for k, v in best.reported.items())
        console.print(f"best #{best.id} ({best.operator}): validation {valid}"
                      + (f"; test {test}" if test else ""), markup=False, highlight=False)
    if log_path is not None and log_path.exists() and log_path.stat().st_size:
        console.print(f"library warnings: {log_path}")


def _figure(value: float) -> str:
    """Counts (params) as integers with separators, rates and scores with four decimals."""
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _candidate_json(c) -> dict:
    return {"id": c.id, "fitness": c.fitness, "operator": c.operator,
            "objectives": c.objectives, "test": c.reported, "params": c.params}


def _params_line(params: dict, limit: int = 60) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
