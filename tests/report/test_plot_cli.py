"""`autorec archive plot KIND`: one figure as a PNG (or SVG) file; nothing to plot is one line."""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from autorec.report import KINDS

runner = CliRunner()


@pytest.mark.parametrize("kind", KINDS)
def test_each_figure_saves_as_png(search_db, kind):
    result = runner.invoke(app, ["archive", "plot", kind, "--png", "--run", "alpha",
                                 "--db", str(search_db)])
    assert result.exit_code == 0, result.output
    with Image.open(f"{kind}.png") as image:
        assert image.format == "PNG" and image.width > 300
        assert len(image.convert("L").getcolors(1 << 20)) > 10  # not a blank canvas


def test_svg_and_compared_progress(search_db):
    result = runner.invoke(app, ["archive", "plot", "progress", "--svg", "-r", "alpha",
                                 "-r", "beta", "-o", "p.svg", "--db", str(search_db)])
    assert result.exit_code == 0, result.output
    text = open("p.svg", encoding="utf-8").read()
    assert text.lstrip().startswith("<?xml") and "alpha" in text and "beta" in text


def test_nothing_to_plot_and_unknown_kinds_are_one_line(search_db, tmp_path):
    db = tmp_path / "fresh.db"
    with Archive(db) as archive:
        archive.create_run("toy", "tpe", name="fresh")
    cases = [
        (["archive", "plot", "llm", "-r", "beta", "--db", str(search_db)], "made no llm calls"),
        (["archive", "plot", "pie", "--db", str(search_db)], "unknown figure 'pie'"),
        (["archive", "plot", "progress", "--db", str(db)], "no candidate has a validation"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0].lower(), result.output
    assert not list(tmp_path.glob("*.png"))
