"""Review a search by looking at it: a self-contained HTML report and single figures.

    from autorec.archive import Archive
    from autorec.report import build_report
    with Archive("runs.db", create=False) as archive:
        Path("report.html").write_text(build_report(archive, ["my-run"]))

`autorec report` and `autorec archive plot` are the command-line faces of this package.
"""

from __future__ import annotations

from collections.abc import Sequence

from autorec.report.data import RunData, load_run
from autorec.report.figures import KINDS


def load_runs(archive, runs: Sequence[str | int] = (), top: int = 10) -> list[RunData]:
    """The named runs (names or ids), or the archive's latest run when none is named."""
    from autorec.cli.archive import run_or_latest

    chosen = [archive.get_run(r) for r in runs] if runs else [run_or_latest(archive, None)]
    return [load_run(archive, run, top=top) for run in chosen]


def build_report(archive, runs: Sequence[str | int] = (), top: int = 10) -> str:
    """The report page (HTML text) for the runs, one or several compared."""
    from autorec.report.html import render

    return render(load_runs(archive, runs, top), archive.location)


__all__ = ["KINDS", "RunData", "build_report", "load_run", "load_runs"]
