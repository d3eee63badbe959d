"""`autorec report` (one HTML page for one run or several) and `autorec archive plot` (one
figure as PNG or SVG). Both only read the archive."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from autorec.cli.common import db_option, open_archive
from autorec.errors import ConfigError


def report(
    runs: Optional[List[str]] = typer.Argument(
        None, metavar="[RUN]...", help="runs (names or ids) to show, compared; default: the latest"
    ),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="HTML file to write"),
    top: int = typer.Option(10, "--top", "-n", min=1, help="candidates in the top table"),
    db: Optional[str] = db_option(),
) -> None:
    """Write one self-contained HTML report (no network needed to open it): best-so-far
    validation fitness against evaluations and wall time with the chosen candidates' test
    figures beside, the Pareto front, lineage by operator, operator shares, LLM usage,
    failures and the top candidates' params."""
    from autorec.report import load_runs
    from autorec.report.html import render

    _check_folder(output)
    with open_archive(db) as archive:
        datas = load_runs(archive, runs or [], top)
        text = render(datas, archive.location)
    _write(output, text.encode("utf-8"))
    names = ", ".join(d.run.name for d in datas)
    typer.echo(f"wrote {output} ({len(text) / 1e6:.1f} MB): {names}")


def plot(
    kind: str = typer.Argument(..., metavar="KIND",
                               help="progress, pareto, lineage, operators, llm or failures"),
    runs: Optional[List[str]] = typer.Option(
        None, "--run", "-r", help="run name or id (repeat to compare runs in progress); "
                                  "default: the latest"),
    png: bool = typer.Option(True, "--png/--svg", help="image format"),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="file to write (default: KIND.png or KIND.svg)"),
    db: Optional[str] = db_option(),
) -> None:
    """Save one of the report's figures as an image."""
    from autorec.report import KINDS, load_runs
    from autorec.report import figures

    if kind not in KINDS:
        raise ConfigError(f"unknown figure '{kind}': one of {', '.join(KINDS)}")
    target = output or Path(f"{kind}.{'png' if png else 'svg'}")
    _check_folder(target)
    with open_archive(db) as archive:
        datas = load_runs(archive, runs or [])
    fig = figures.draw(kind, datas)
    if fig is None:
        names = ", ".join(d.run.name for d in datas)
        raise ConfigError(f"nothing to plot for {kind} in run {names}: {_EMPTY[kind]}")
    _write(target, figures.png(fig) if png else figures.svg(fig))
    typer.echo(f"wrote {target}")


_EMPTY = {
    "progress": "no candidate has a validation fitness yet",
    "pareto": "no done candidate has every objective yet",
    "lineage": "it has no candidates",
    "operators": "it has no proposals",
    "llm": "it made no LLM calls",
    "failures": "no candidate failed",
}


def _check_folder(path: Path) -> None:
    """Refuse an output whose folder is missing before reading anything."""
    folder = path.expanduser().absolute().parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a folder")


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
