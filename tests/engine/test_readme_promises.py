"""What README promises and no other test checked: entry-point plugins, AUTOREC_DB, flags over
YAML, the `models` and `datasets` commands, the table output of a search, one JSON document on
stdout. (An API key never stored: tests/engine/test_agent_search.py.)"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autorec.agents import PROPOSERS
from autorec.archive import Archive
from autorec.cli import app

PLUGIN = Path(__file__).with_name("plugin_space.txt")

runner = CliRunner()


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# Entry-point plugins.


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A distribution installed the way pip leaves one: a module and a dist-info folder whose
    entry_points.txt names the space under the group `autorec.search_spaces`."""
    site = tmp_path / "site"
    (site / "bowl_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "bowl_plugin.py").write_text(PLUGIN.read_text())
    (site / "bowl_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bowl-plugin\nVersion: 0.1\n")
    (site / "bowl_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[autorec.search_spaces]\ntoy-bowl = bowl_plugin:Bowl\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_an_installed_plugin_is_listed_and_shown_by_name(installed_plugin):
    listed = runner.invoke(app, ["spaces", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "toy-bowl")
    assert (row["source"], row["target"], row["error"]) == ("entry point", "bowl_plugin:Bowl", None)
    assert row["objectives"][0]["name"] == "score"
    shown = runner.invoke(app, ["spaces", "show", "toy-bowl", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["reference"] == {"x": 3.0, "y": 3, "mode": "ok"}


@pytest.mark.slow  # a separate process, so that its Ray workers import the plugin too
def test_a_search_runs_an_installed_plugin_by_name(installed_plugin, short_tmp):
    env = {**os.environ, "PYTHONPATH": str(installed_plugin), "RAY_AUTH_MODE": "disabled",
           "AUTOREC_RAY_TMPDIR": short_tmp}
    done = subprocess.run(
        [sys.executable, "-m", "autorec.cli", "search", "--space", "toy-bowl", "--proposer",
         "random", "--budget", "3", "--json"], env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout[done.stdout.index("{"):])["evaluations"] == 3
    run = Archive("runs.db", create=False).list_runs()[0]
    assert run.space == "toy-bowl" and run.status == "finished"


# Where the archive is, and which settings win.


def test_autorec_db_picks_the_archive_and_flags_win_over_the_yaml(ray_tmp, bowl, tmp_path,
                                                                  monkeypatch):
    db = tmp_path / "elsewhere" / "archive.db"
    db.parent.mkdir()
    monkeypatch.setenv("AUTOREC_DB", str(db))
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({"space": bowl, "proposer": "random", "budget": 9,
                                      "run_name": "from-yaml", "seed": 4}))
    result = runner.invoke(app, ["search", "--config", str(config), "--budget", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["evaluations"] == 2  # the flag's 2, not the YAML's 9
    assert not os.path.exists("runs.db")  # nothing went to the default archive
    run = Archive(db, create=False).get_run("from-yaml")  # the YAML's name and seed stayed
    assert (run.config["budget"], run.seed) == (2, 4)
    listed = runner.invoke(app, ["archive", "list", "--json"])  # readers follow AUTOREC_DB too
    assert listed.exit_code == 0, listed.output
    assert "from-yaml" in listed.stdout
    # --db wins over the environment: this one does not exist, and is not created.
    missing = runner.invoke(app, ["archive", "list", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and not (tmp_path / "none.db").exists()


# The table output of a search, and one JSON document with --json.


def test_a_search_prints_its_run_the_reason_it_stopped_and_the_top_five(ray_tmp, bowl):
    result = runner.invoke(app, ["search", "--space", bowl, "--proposer", "random",
                                 "--budget", "7", "--run-name", "table"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    words = " ".join(out.split())  # rich wraps long lines at the terminal's width
    assert f"run table in {os.path.abspath('runs.db')}" in words, out
    assert "run table stopped: budget of 7 evaluations used" in words
    header = next(line for line in out.splitlines() if re.search(r"\W id \W", line))
    for column in ("id", "fitness", "operator", "score", "params"):
        assert column in header
    archive = Archive("runs.db", create=False)
    top = archive.top(archive.get_run("table").id, n=5)
    assert len(top) == 5
    rows = [line for line in out.splitlines() if re.match(r"^\W*\d+\W", line)]
    assert [int(re.match(r"^\W*(\d+)", line).group(1)) for line in rows] == [c.id for c in top]


@pytest.fixture
def scripted_proposer(monkeypatch):
    monkeypatch.setitem(PROPOSERS._targets, "scripted", "scripted_proposers:Scripted")


def test_json_is_one_document_even_when_an_evaluation_is_stopped(ray_tmp, bowl,
                                                                 scripted_proposer):
    # A stopped evaluation ends its worker process; whatever Ray says about that is not stdout's.
    with open("search.yaml", "w") as out:
        yaml.safe_dump({"proposer_options": {"params": [{"mode": "sleep"}, {"x": 1.0}]}}, out)
    result = runner.invoke(app, ["search", "--space", bowl, "--proposer", "scripted", "--config",
                                 "search.yaml", "--eval-time-limit", "5", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["evaluations"] == 3


# models and datasets.


def test_models_list_and_show():
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    tasks = {row["name"]: row["task"] for row in json.loads(listed.stdout)}
    for name in ("lr", "mean", "fm", "deepfm", "dcnv2", "din", "dare"):
        assert tasks[name] == "ctr"
    for name in ("popularity", "sasrec", "hstu"):
        assert tasks[name] == "sequential"
    shown = runner.invoke(app, ["models", "show", "sasrec", "--json"])
    assert shown.exit_code == 0, shown.output
    settings = {(r["scope"], r["key"]): r["default"] for r in json.loads(shown.stdout)["settings"]}
    assert ("model", "hidden_dim") in settings
    # The sequential task's own training defaults are what it shows (README's `epochs=100` example).
    assert settings[("train", "epochs")] == 200 and settings[("train", "batch_size")] == 128
    table = runner.invoke(app, ["models", "show", "deepfm"])
    assert table.exit_code == 0 and "embedding_dim" in table.stdout and "lr" in table.stdout
    one_line_error(runner.invoke(app, ["models", "show", "xgboost"]), "unknown model 'xgboost'")


def test_datasets_list_and_info():
    listed = runner.invoke(app, ["datasets", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"ml-100k", "ml-1m", "synthetic"} <= names
    info = runner.invoke(app, ["datasets", "info", "synthetic", "--json"])
    assert info.exit_code == 0, info.output
    facts = json.loads(info.stdout)
    assert facts["rows"] == 50_000 and set(facts["tasks"]) == {"ctr", "sequential"}
    table = runner.invoke(app, ["datasets", "info", "synthetic"])
    assert table.exit_code == 0 and "label_rate" in table.stdout
    one_line_error(runner.invoke(app, ["datasets", "info", "nope"]), "unknown dataset 'nope'")
