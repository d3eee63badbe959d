"""`autorec ihas`: instance-wise embedding-dimension search (search, cluster, retrain)."""

from __future__ import annotations

from typing import Optional

import typer

from autorec.cli.output import console, print_json, table
from autorec.cli.settings import parse_assignments
from autorec.errors import ConfigError


def ihas(
    model: str = typer.Option("deepfm", "--model", "-m", help="CTR model: fm, deepfm, dcnv2, din, dare"),
    dataset: str = typer.Option("ml-100k", "--dataset", "-d", help="dataset name or csv:SCHEMA.yaml"),
    groups: int = typer.Option(1, "--groups", "-k", help="K: instance groups, one model each"),
    split: Optional[str] = typer.Option(None, "--split", help="CTR split; default: the dataset's"),
    assignments: Optional[list[str]] = typer.Option(
        None, "--set", "-s",
        help="key=value iHAS setting (sparsity, polarisation, width, search_epochs, "
        "retrain_epochs, retrain_on, lr, seed, ...); repeatable",
    ),  # fmt: skip
    write_seeds: Optional[str] = typer.Option(
        None, "--write-seeds", help="write the found widths as embedding_dims seed candidates (YAML)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of tables"),
) -> None:
    """Search per-instance field widths with Bernoulli gates, group instances, retrain per group."""
    from autorec.data import load_dataset
    from autorec.ihas.settings import ihas_settings
    from autorec.models import MODELS, model_class

    model_class(model)  # an unknown model fails here, before any data is loaded
    if MODELS[model].task != "ctr":
        raise ConfigError(f"model '{model}' is a {MODELS[model].task} model; iHAS needs a ctr model")
    if groups < 1:
        raise ConfigError(f"--groups must be at least 1, got {groups}")
    settings = ihas_settings(parse_assignments(assignments))
    data = load_dataset(dataset).task("ctr", **({"split": split} if split else {}))

    from autorec.ihas.pipeline import run_ihas
    from autorec.ihas.seeds import seed_candidates, write_seeds as write

    def stage(name: str) -> None:
        if not as_json:
            console.print(f"iHAS {name} stage: {model} on {dataset} ...")

    run = run_ihas(model, data, groups, settings, on_stage=stage)
    report = run.report
    if write_seeds:
        report["seeds"] = {"file": write_seeds, "candidates": write(
            write_seeds, seed_candidates(report), dataset, split
        )}  # fmt: skip
    if as_json:
        print_json(report)
        return
    _print_report(report)


def _print_report(report: dict) -> None:
    group_list = report["group_list"]
    kept = report["search"]["mean_kept_dims"]
    rows = [
        [field, kept[field], width, *(g["dims"][field] for g in group_list)]
        for field, width in report["global_dims"].items()
    ]
    rows.append(["(train rows)", None, None, *(g["rows"]["train"] for g in group_list)])
    columns = ["field", "mean kept", "K=1", *(f"group {g['group']}" for g in group_list)]
    console.print(table("per-field widths (ladder)", columns, rows))
    search, routed = report["search"], report["routed"]
    console.print(
        table(
            None,
            ["", "valid auc", "test auc", "embedding params", "router params"],
            [
                [f"search (width {search['width']}, gated)", search["valid_auc"], None,
                 search["embedding_params"], None],
                [f"iHAS, K={report['groups']}", routed["valid_auc"], routed["auc"],
                 routed["embedding_params"], routed["router_params"]],
            ],
        )  # fmt: skip
    )
    console.print(
        f"distinct gate patterns: {search['distinct_patterns']}; seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items())
    )
    if "seeds" in report:
        count = len(report["seeds"]["candidates"])
        console.print(f"wrote {count} embedding_dims seed candidate(s) to {report['seeds']['file']}")
