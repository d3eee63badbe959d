"""Run names and other archived text cannot break or inject into what autorec writes."""

from __future__ import annotations

import sqlite3

import pytest
import yaml
from typer.testing import CliRunner

from autorec.archive import Archive, ArchiveError
from autorec.cli import app
from autorec.errors import ConfigError
from autorec.search_config import SearchConfig, build_search_config

runner = CliRunner()
FM = {"model": "fm", "embedding_dim": 8, "lr": 0.005, "epochs": 4}
HOSTILE = "nice\ninjected: {epochs: 999}\nmodel: evil # \u2028also: injected"


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "bell\x07", "bidi\u202eevil", " ", "x" * 201])
def test_a_run_name_that_is_not_one_printable_line_is_refused(name, tmp_path):
    with pytest.raises(ConfigError, match="run_name"):
        build_search_config({"run_name": name}, "command line")
    with pytest.raises(ArchiveError, match="run name"):
        Archive(tmp_path / "runs.db").create_run("bowl", "tpe", name=name)


def test_the_cli_refuses_a_newline_in_a_run_name_in_one_line():
    result = runner.invoke(app, ["search", "--space", "architecture", "--run-name", "a\nmodel: x"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "run_name" in lines[0]
    assert "Traceback" not in result.output


def test_ordinary_names_still_pass():
    assert SearchConfig(run_name="ctr sweep #3 (ünïcode, ok)").run_name == "ctr sweep #3 (ünïcode, ok)"


def test_export_yaml_escapes_a_hostile_run_name_from_an_older_archive(tmp_path):
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        run = a.create_run("architecture", "llm", name="plain", space_version="1", config={
            "space": "architecture", "dataset": "ml-100k", "task": "ctr",
            "space_settings": {"seed": 3, "split": "global_time"},
        })
        fm = a.add_candidate(run.id, FM, operator="mutate", rationale=HOSTILE)
        a.set_candidate_result(fm.id, "done", fitness=0.03, objectives={"auc": 0.79})
    with sqlite3.connect(path) as conn:  # an archive written before names were checked
        conn.execute("UPDATE run SET name = ?", (HOSTILE,))
    result = runner.invoke(app, ["export", str(fm.id), "--db", str(path)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    data = yaml.safe_load(text)
    assert "injected" not in data and "also" not in data  # no key came from the name
    assert data["model"] == "fm" and data["dataset"] == "ml-100k"
    assert data["settings"]["epochs"] == 4
    assert data["provenance"]["run"] == HOSTILE  # kept exactly, as quoted YAML
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert len(header) == 2 and "\\n" in header[0]
