"""The `autorec` command line: one typer sub-app per noun, joined here."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from autorec.errors import AutorecError


class _AutorecGroup(TyperGroup):
    """Turns any AutorecError raised by a command into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AutorecError as err:
            from autorec.secrets import redact

            typer.echo(f"error: {redact(str(err))}", err=True)  # an error may quote a URL or reply
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_AutorecGroup,
    help="Agent-driven AutoML and autotuning for recommender models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from autorec.cli import datasets, models, search, train

    app.command("search")(search.search)
    app.command("train")(train.train)
    app.add_typer(datasets.app, name="datasets")
    app.add_typer(models.app, name="models")

    from autorec.cli import kernels

    app.add_typer(kernels.app, name="kernels")

    from autorec.cli import archive, export, ihas, spaces

    app.add_typer(archive.app, name="archive")
    app.command("export")(export.export)
    app.add_typer(spaces.app, name="spaces")
    app.command("ihas")(ihas.ihas)

    from autorec.cli import explain

    app.command("explain")(explain.explain)

    from autorec.cli import report

    app.command("report")(report.report)
    archive.app.command("plot")(report.plot)


_register()


def main() -> None:
    app()
