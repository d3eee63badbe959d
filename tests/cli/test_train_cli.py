"""`autorec train`: what a user types, what they read back, and how bad input is refused."""

import json
import urllib.error

import pytest
from typer.testing import CliRunner

from autorec.cli import app
from autorec.data import cache, movielens
from autorec.data.tasks import clear_cache

runner = CliRunner()


def train(*args):
    return runner.invoke(app, ["train", *args])


def test_json_output_has_the_documented_keys():
    result = train("--model", "fm", "--dataset", "synthetic", "--set", "epochs=2", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert list(payload)[:6] == ["model", "dataset", "task", "metrics", "params", "train_seconds"]
    assert payload["model"] == "fm" and payload["task"] == "ctr"
    assert 0.5 < payload["metrics"]["auc"] <= 1.0
    assert payload["config"]["train"]["epochs"] == 2
    assert payload["split_hash"]


def test_table_output_and_nested_settings():
    result = train("--model", "fm", "--dataset", "synthetic", "--set", "epochs=1",
                   "--set", "field_dims.f1=4")
    assert result.exit_code == 0, result.output
    assert "test metrics" in result.output and "auc" in result.output

    def embedding_params(width):
        result = train("--model", "fm", "--dataset", "synthetic", "--set", "epochs=1",
                       "--set", f"field_dims.f1={width}", "--json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        assert payload["config"]["model"]["field_dims"] == {"f1": width}
        return payload["embedding_params"]

    # The nested key reached the model: f1's table, and only it, is 8 columns wider at 12 than
    # at 4, so the embedding parameters grow by 8 per f1 value.
    grown = embedding_params(12) - embedding_params(4)
    assert grown > 0 and grown % 8 == 0


def test_config_file_with_flags_on_top(tmp_path):
    config = tmp_path / "fm.yaml"
    config.write_text("model: fm\ndataset: synthetic\nsettings: {epochs: 1, embedding_dim: 4}\n")
    result = train("--config", str(config), "--set", "embedding_dim=2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["config"]["model"]["embedding_dim"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope", "--dataset", "synthetic"], "unknown model 'nope'"),
        (["--model", "fm", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["--model", "fm", "--dataset", "synthetic", "--task", "nope"], "task"),
        (["--model", "fm", "--dataset", "synthetic", "--task", "sequential"], "is a ctr model"),
        (["--model", "fm", "--dataset", "synthetic", "--set", "nope=1"], "unknown setting(s) nope"),
        (["--model", "fm", "--dataset", "synthetic", "--set", "lr=5"], "lr"),
        (["--model", "fm", "--dataset", "synthetic", "--set", "embedding_dim=0"], "embedding_dim"),
        (["--model", "fm", "--dataset", "synthetic", "--set", "lr"], "key=value"),
        (["--dataset", "synthetic"], "no model given"),
        (["--config", "missing.yaml"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = train(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_empty_and_malformed_csv(tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("path: events.csv\nuser_id: user\nitem_id: item\nlabel: click\n")
    events = tmp_path / "events.csv"
    events.write_text("")
    result = train("--model", "fm", "--dataset", f"csv:{schema}")
    assert result.exit_code == 2 and "empty" in result.output
    events.write_text("user,item\n1,2\n")
    result = train("--model", "fm", "--dataset", f"csv:{schema}")
    assert result.exit_code == 2 and "click" in result.output  # names the missing column


def test_missing_dataset_offline_names_the_fix(monkeypatch):
    def offline(url, destination, timeout=60.0):
        raise urllib.error.URLError("network is unreachable")

    clear_cache()
    monkeypatch.setattr(movielens, "recbole_ml100k_dir", lambda: None)
    monkeypatch.setattr(cache, "fetch", offline)
    result = train("--model", "fm", "--dataset", "ml-100k")
    assert result.exit_code == 2, result.output
    assert "recbole" in result.output
    clear_cache()
