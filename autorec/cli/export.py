"""`autorec export`: an archived candidate as the file `autorec train --config` retrains it from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from autorec.cli.common import db_option, open_archive
from autorec.errors import ConfigError


def export(
    candidate_id: Optional[int] = typer.Argument(None, metavar="ID", help="candidate id"),
    best: bool = typer.Option(False, "--best", help="the run's fittest candidate instead of an ID"),
    run: Optional[str] = typer.Option(None, "--run", "-r", help="run name or id for --best (default: the latest)"),
    member: Optional[str] = typer.Option(
        None, "--member", "-m",
        help="suite member to export: its model (fm) or key (fm/ml-100k/ctr), or 'all' with -o DIR",
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f", help="yaml or json (default: from the -o suffix, else yaml)"
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="file to write (a folder with --member all); default stdout"
    ),
    optuna_storage: Optional[str] = typer.Option(
        None, "--optuna-storage",
        help="write the whole run (--run, default the latest) as an Optuna study at this URL",
    ),
    db: Optional[str] = db_option(),
) -> None:
    """Write a candidate's training config: `autorec train --config FILE` retrains it exactly.

    A file holds one TrainSpec (model, dataset, task, split, settings) plus the member's archived
    metrics and the candidate's provenance, which training ignores. A candidate is scored on every
    member of its space's suite: architecture has one (the candidate's model); embedding_dims has
    one per CTR model. With several members the first is exported unless --member names one (a
    note on stderr says so); --member all -o DIR writes one file per member.
    """
    from autorec.cli.archive import run_or_latest
    from autorec.export import FORMATS, candidate_specs, render

    if optuna_storage is not None:
        if candidate_id is not None or best:
            raise ConfigError("--optuna-storage writes a whole run: give --run, not an ID or --best")
        from autorec.optuna_export import export_run

        with open_archive(db) as archive:
            chosen = run_or_latest(archive, run)
            written = export_run(archive, chosen, optuna_storage)
        typer.echo(f"wrote run '{chosen.name}' as Optuna study '{chosen.name}' "
                   f"({written} trials) to {optuna_storage}")
        return

    if best == (candidate_id is not None):
        raise ConfigError("give a candidate ID or --best, not both" if best
                          else "give a candidate ID or --best")
    if fmt is None:
        fmt = "json" if output is not None and output.suffix == ".json" else "yaml"
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    if member == "all" and output is None:
        raise ConfigError("--member all writes one file per member: give a folder with -o DIR")

    with open_archive(db) as archive:
        if best:
            chosen = run_or_latest(archive, run)
            top = archive.top(chosen.id, 1)
            if not top:
                raise ConfigError(f"run '{chosen.name}' has no done candidate to export yet")
            candidate_id = top[0].id
        elif run is not None:
            chosen = archive.get_run(run)
            owner = archive.get_candidate(candidate_id).run_id
            if owner != chosen.id:
                raise ConfigError(f"candidate {candidate_id} is not from run '{chosen.name}'")
        exported = candidate_specs(archive, candidate_id)

    selected = exported.select(member)
    notes = list(exported.notes)
    if member is None and len(exported.members) > 1:
        others = ", ".join(m.spec.model for m in exported.members[1:])
        notes.append(f"candidate {exported.candidate_id} was scored on {len(exported.members)} "
                     f"suite members; exported {selected[0].member} (others: {others}; choose "
                     "with --member MODEL, or --member all -o DIR)")
    for note in notes:
        typer.echo(f"note: {note}", err=True)

    if output is None:
        typer.echo(render(selected[0], fmt), nl=False)
        return
    if member == "all":
        output.mkdir(parents=True, exist_ok=True)
        models = [m.spec.model for m in selected]
        unique = len(set(models)) == len(models)
        targets = [output / f"candidate-{exported.candidate_id}-"
                   f"{_slug(m.spec.model if unique else m.member)}.{fmt}" for m in selected]
    else:
        targets = [output]
    for target, spec in zip(targets, selected):
        try:
            target.write_text(render(spec, fmt))
        except OSError as err:
            raise ConfigError(f"cannot write {target}: {err.strerror or err}") from None
        typer.echo(f"wrote {target} ({spec.member})")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
