"""`autorec report`: one self-contained page with every figure, the chosen candidate's test
figures beside its validation ones, escaped user text, and a page for a run with nothing done."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from report_archives import fill

runner = CliRunner()
FIGURES = ["progress", "pareto", "lineage", "operators", "llm", "failures"]


def _images(page: str) -> dict[str, Image.Image]:
    found = re.findall(r'<figure data-figure="([^"]+)"><img [^>]*src="data:image/png;base64,'
                       r'([A-Za-z0-9+/=]+)"', page)
    return {kind: Image.open(io.BytesIO(base64.b64decode(data))) for kind, data in found}


def _report(db, *args) -> str:
    result = runner.invoke(app, ["report", *args, "--db", str(db), "-o", "out.html"])
    assert result.exit_code == 0, result.output
    with open("out.html", encoding="utf-8") as f:
        return f.read()


def test_one_run_report_has_every_figure_and_the_chosen_candidates_test_figures(search_db):
    page = _report(search_db, "alpha")
    images = _images(page)
    assert sorted(images) == sorted(FIGURES)
    for kind, image in images.items():  # decodable and not blank
        image.load()
        assert image.width > 300 and len(image.convert("L").getcolors(1 << 20)) > 10, kind
    # Self-contained: no script, nothing to fetch.
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)
    with Archive(search_db, create=False) as archive:
        run = archive.get_run("alpha")
        chosen = archive.top(run.id, 1)[0]
        failed = archive.counts(run.id)["candidates"]
    assert f"validation chose <b>#{chosen.id}</b>" in page
    test_auc = f"auc {chosen.reported['auc']:.4f}"
    assert f"reported only: {test_auc}" in page  # the test figure sits beside the choice
    assert f"{failed['failed'] + failed['invalid']} failed or invalid candidate(s)" in page
    assert "CUDA out of memory" in page and "dim: must be &gt;= 1" in page
    assert "dim=" in page and "dropout=" in page  # the top candidates' params


def test_runs_compared_on_one_page(search_db):
    page = _report(search_db, "alpha", "beta")
    assert 'id="compare"' in page and "progress-compare" in page
    assert "run alpha</h2>" in page and "run beta</h2>" in page
    assert "no LLM calls in this run." in page  # beta's proposers used no LLM


def test_hostile_names_rationales_params_and_errors_are_escaped(tmp_path):
    db = tmp_path / "runs.db"
    evil = "<script>alert(1)</script>"
    with Archive(db) as archive:
        run_id = fill(archive, f"{evil} $x$ run", n=12, rationale=f"</td>{evil}$a$")
        c, _ = archive.admit(run_id, {"<img src=x onerror=alert(1)>": evil},
                             members=[("fm", "ml-100k", "ctr")], operator=f"llm:{evil}$")
        archive.set_candidate_result(c.id, "failed", error=f"Boom {evil}")
    page = _report(db)
    assert "<script" not in page and "<img src=x" not in page and "</td><script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; $x$ run" in page
    assert "Boom &lt;script&gt;" in page
    assert len(_images(page)) == len(FIGURES)  # `$` pairs in labels did not break a figure


def test_a_run_with_no_finished_candidates_gets_a_report_that_says_so(tmp_path):
    db = tmp_path / "runs.db"
    with Archive(db) as archive:
        run = archive.create_run("toy", "tpe", name="fresh")
        archive.admit(run.id, {"dim": 16}, members=[("fm", "ml-100k", "ctr")], reference=True)
    page = _report(db, "fresh")
    assert "run fresh has no finished candidates yet" in page
    assert "no LLM calls in this run." in page and "no failed or invalid candidates." in page


def test_report_refusals_are_one_line(search_db, tmp_path):
    for args, message in [
        (["report", "nope", "--db", str(search_db)], "no run"),
        (["report", "--db", str(tmp_path / "missing.db")], "no archive"),
        (["report", "alpha", "--db", str(search_db), "-o", "no/such/dir/r.html"],
         "does not exist"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert message in lines[0].lower(), lines[0]
    assert not (tmp_path / "missing.db").exists()
