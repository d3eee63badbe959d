"""iHAS's widths seed a real embedding_dims search from the file `autorec ihas` writes."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_an_embedding_dims_search_starts_from_the_ihas_seeds(ray_folder, tmp_path):
    seeds = tmp_path / "seeds.yaml"
    made = runner.invoke(app, ["ihas", "--model", "fm", "--dataset", "synthetic", "--set",
                               "search_epochs=2", "--set", "retrain_epochs=1", "--set", "lr=0.005",
                               "--write-seeds", str(seeds), "--json"])  # fmt: skip
    assert made.exit_code == 0, made.output
    candidates = yaml.safe_load(seeds.read_text())
    assert candidates and all(set(c) == {f"f{i}" for i in range(12)} for c in candidates)

    result = runner.invoke(app, ["search", "--space", "embedding_dims", "--dataset", "synthetic",
                                 "--proposer", "random", "--budget", str(1 + len(candidates)),
                                 "--set", "epochs=1", "--set", "models=[fm]", "--workers", "1",
                                 "--seed-candidates", str(seeds), "--run-name", "seeded",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["evaluations"] == 1 + len(candidates)
    archive = Archive("runs.db", create=False)
    rows = archive.candidates(archive.get_run("seeded").id)
    assert [r.operator for r in rows] == ["reference"] + ["seed"] * len(candidates)
    assert [r.params for r in rows[1:]] == candidates
    assert all(r.status in ("done", "duplicate") for r in rows)
