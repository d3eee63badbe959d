"""An archive written by the previous schema version opens, upgrades and reads correctly.

tests/assets/archive_v1.db was written by autorec at schema version 1 (commit c1f774d, before
runs stored their space contract and candidates their test figures): one finished architecture
run whose objectives were then named by the test metric.
"""

import json
import sqlite3
import shutil
from pathlib import Path

from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.archive.migrations import latest_version
from autorec.cli import app
from autorec.space import SuiteMember

ASSET = Path(__file__).resolve().parents[1] / "assets" / "archive_v1.db"
runner = CliRunner()


def test_a_version_1_archive_upgrades_and_keeps_everything(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(ASSET, path)
    Archive(path, create=False).close()  # opening it upgrades it
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone()[0] == latest_version() >= 2
    with Archive(path, create=False) as archive:
        run = archive.get_run("v1-run")
        assert run.status == "finished" and run.space_contract is None
        rows = archive.candidates(run.id)
        assert [(c.operator, c.fitness, c.reported) for c in rows] == [
            ("reference", 0.0, None), ("tpe", 0.01, None)]
        assert archive.evaluations_for(rows[1].id)[0].metrics["valid_auc"] == 0.81
    # Review of the old run: its objectives are found under their old names.
    pareto = runner.invoke(app, ["archive", "pareto", "--run", "v1-run", "--json", "--db", str(path)])
    assert pareto.exit_code == 0, pareto.output
    data = json.loads(pareto.stdout)
    assert [o["name"] for o in data["objectives"]] == ["auc", "params"]
    assert {c["id"] for c in data["front"]} == {1, 2}
    listed = runner.invoke(app, ["archive", "list", "--db", str(path), "--json"])
    assert listed.exit_code == 0 and "v1-run" in listed.stdout



def test_an_upgraded_archive_lets_screened_params_be_evaluated_later(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(ASSET, path)
    with Archive(path, create=False) as archive:  # v1 -> latest, through every migration
        run = archive.get_run("v1-run")
        params = {"model": "fm", "lr": 0.5}
        screened, _ = archive.admit(run.id, params, operator="llm:refine", status="screened",
                                    error="screened: below TPE's draw")  # fmt: skip
        member = SuiteMember("deepfm", "ml-100k", "ctr")
        again, evaluations = archive.admit(run.id, params, members=[member], operator="tpe")
        assert again.status == "pending" and again.duplicate_of is None and len(evaluations) == 1
        third, _ = archive.admit(run.id, params, operator="tpe")
        assert third.status == "duplicate" and third.duplicate_of == again.id
