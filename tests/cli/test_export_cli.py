"""`autorec export`: an archived candidate as a file that `autorec train --config` accepts."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from autorec.train_spec import read_config_file, validate_spec
from autorec.trainer import split_settings

runner = CliRunner()

ARCH_SETTINGS = {"seed": 3, "split": "global_time"}
FM = {"model": "fm", "embedding_dim": 8, "lr": 0.005, "epochs": 4}
WIDTHS = {f"f{i}": 16 for i in range(12)} | {"f0": 2, "f1": 32}  # the synthetic dataset's fields


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def db(tmp_path):
    """Run "arch" (architecture, ml-100k ctr): reference deepfm #1, the fittest fm #2 with
    metrics, an invalid #3. Run "dims" (embedding_dims on synthetic, suite fm + deepfm): #4."""
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        arch = a.create_run("architecture", "llm", name="arch", space_version="1", config={
            "space": "architecture", "dataset": "ml-100k", "task": "ctr",
            "space_settings": ARCH_SETTINGS,
        })
        ref = a.add_candidate(arch.id, {"model": "deepfm"}, operator="reference")
        a.set_candidate_result(ref.id, "done", fitness=0.0, objectives={"auc": 0.78, "params": 9e4})
        a.set_reference_candidate(arch.id, ref.id)
        fm = a.add_candidate(arch.id, FM, parents=[ref.id], operator="mutate")
        (evaluation,) = a.add_evaluations(fm.id, [("candidate", "ml-100k", "ctr")])
        a.start_evaluation(evaluation.id)
        a.finish_evaluation(evaluation.id, "done", metrics={
            "auc": 0.79, "logloss": 0.52, "params": 2e4, "split_hash": "abc123"})
        a.set_candidate_result(fm.id, "done", fitness=0.03, objectives={"auc": 0.79, "params": 2e4})
        a.add_candidate(arch.id, {"model": "xgboost"}, operator="mutate", status="invalid",
                        error="model: Input should be 'fm', ...")

        dims = a.create_run("embedding_dims", "tpe", name="dims", space_version="1", config={
            "space": "embedding_dims", "dataset": "synthetic",
            "space_settings": {"models": ["fm", "deepfm"], "epochs": 2},
        })
        best = a.add_candidate(dims.id, WIDTHS, operator="reference")
        a.set_candidate_result(best.id, "done", fitness=0.0,
                               objectives={"auc": 0.7, "embedding_params": 1e5})
        assert (ref.id, fm.id, best.id) == (1, 2, 4)
    return str(path)


def test_best_of_a_run_exports_a_file_train_accepts(db, tmp_path):
    target = tmp_path / "best.yaml"
    result = invoke("export", "--best", "--run", "arch", "-o", str(target), "--db", db)
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout

    spec = validate_spec(read_config_file(target), str(target))  # what `autorec train` does
    # The candidate's own values, the architecture space's training defaults for what it left
    # unset, and the run's seed: written out, not rebuilt with the code under test.
    settings = {"lr": 0.005, "epochs": 4, "embedding_dim": 8, "batch_size": 1024,
                "weight_decay": 0.0, "seed": 3}
    assert (spec.model, spec.dataset, spec.task, spec.split) == ("fm", "ml-100k", "ctr", "global_time")
    assert spec.settings == settings
    split_settings(spec.model, spec.settings, spec.task)  # every key is one fm accepts
    assert spec.metrics["auc"] == 0.79
    provenance = spec.provenance
    assert provenance["run"] == "arch" and provenance["candidate_id"] == 2
    assert provenance["fitness"] == 0.03 and provenance["parents"] == [1]
    assert provenance["space"] == "architecture" and provenance["space_version"] == "1"
    assert provenance["proposer"] == "llm" and provenance["operator"] == "mutate"
    assert provenance["split_hash"] == "abc123"
    assert {"autorec_version", "created_at"} <= provenance.keys()


def test_train_config_trains_the_exported_candidate_for_real(db, tmp_path):
    target = tmp_path / "fm.yaml"
    exported = invoke("export", "4", "--member", "fm", "-o", str(target), "--db", db)
    assert exported.exit_code == 0, exported.output
    result = invoke("train", "--config", str(target), "--json")  # trains on the synthetic data
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert (trained["model"], trained["dataset"], trained["task"]) == ("fm", "synthetic", "ctr")
    # The candidate's per-field widths and the run's epochs reached the model and the trainer.
    assert trained["config"]["model"]["field_dims"] == WIDTHS
    assert trained["config"]["train"]["epochs"] == 2 and 1 <= trained["epochs_run"] <= 2
    assert 0.5 < trained["metrics"]["auc"] <= 1.0


def test_stdout_holds_one_yaml_or_json_document(db):
    result = invoke("export", "2", "--db", db)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# autorec export: candidate 2 of run 'arch'")
    assert yaml.safe_load(result.stdout)["model"] == "fm"

    data = json.loads(invoke("export", "1", "--format", "json", "--db", db).stdout)
    assert data["model"] == "deepfm" and data["settings"]["hidden_units"] == [256, 128]
    assert "metrics" not in data  # the reference has no evaluation in this archive


def test_a_json_suffix_picks_json(db, tmp_path):
    target = tmp_path / "fm.json"
    assert invoke("export", "2", "-o", str(target), "--db", db).exit_code == 0
    assert json.loads(target.read_text())["settings"]["embedding_dim"] == 8
    assert validate_spec(read_config_file(target), "x").model == "fm"


def test_several_members_export_the_first_and_say_so(db, tmp_path):
    result = invoke("export", "--best", "--db", db)  # the latest run: dims
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.stdout)
    assert spec["model"] == "fm" and spec["dataset"] == "synthetic"
    assert spec["settings"] == {"field_dims": WIDTHS, "embedding_dim": 16, "epochs": 2}
    assert "2 suite members" in result.stderr and "--member" in result.stderr

    deepfm = invoke("export", "4", "--member", "deepfm", "--format", "json", "--db", db)
    assert deepfm.exit_code == 0, deepfm.output
    assert json.loads(deepfm.stdout)["model"] == "deepfm" and deepfm.stderr == ""

    folder = tmp_path / "members"
    result = invoke("export", "4", "--member", "all", "-o", str(folder), "--db", db)
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["candidate-4-deepfm.yaml", "candidate-4-fm.yaml"]
    for path in folder.iterdir():
        spec = validate_spec(read_config_file(path), str(path))
        split_settings(spec.model, spec.settings, spec.task)
        assert spec.provenance["member"] == f"{spec.model}/synthetic/ctr"


@pytest.mark.parametrize("args, message", [
    (["export"], "give a candidate ID or --best"),
    (["export", "2", "--best"], "not both"),
    (["export", "999"], "no candidate 999"),
    (["export", "--best", "--run", "nope"], "no run 'nope'"),
    (["export", "2", "--run", "dims"], "candidate 2 is not from run 'dims'"),
    (["export", "3"], "candidate 3 does not fit space 'architecture'"),
    (["export", "2", "--member", "deepfm"], "has no suite member 'deepfm'"),
    (["export", "4", "--member", "all"], "-o DIR"),
    (["export", "2", "--format", "toml"], "--format must be one of yaml, json"),
])
def test_errors_exit_2_with_one_line(db, args, message):
    result = invoke(*args, "--db", db)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_best_of_a_run_without_done_candidates_is_an_error(tmp_path):
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        a.create_run("architecture", "tpe", name="fresh")
    result = invoke("export", "--best", "--db", str(path))
    assert result.exit_code == 2 and "run 'fresh' has no done candidate" in result.stderr


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "runs.db"
    path.write_bytes(b"\x00not sqlite at all")
    result = invoke("export", "1", "--db", str(path))
    assert result.exit_code == 2 and "is not a SQLite database" in result.stderr
    assert path.read_bytes() == b"\x00not sqlite at all"


PLUGIN = '''
from typing import ClassVar

import pydantic

from autorec.space import Objective, SearchSpace, SuiteMember


class WidthCandidate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    width: int = pydantic.Field(8, ge=1, le=64)


class Silent(SearchSpace):
    name: ClassVar[str] = "silent"
    Candidate = WidthCandidate
    objectives = [Objective(name="auc", direction="max")]
    needs_dataset = True

    def describe(self):
        return "widths"

    def reference(self):
        return WidthCandidate()

    def sample(self, trial):
        return WidthCandidate(width=trial.suggest_int("width", 1, 64))

    def suite(self):
        return [SuiteMember("fm", self.options.dataset, "ctr")]

    def evaluate(self, candidate, member, report):
        return {"auc": 0.5}


class Telling(Silent):
    name: ClassVar[str] = "telling"

    def trainer_settings(self, candidate, member):
        return {"embedding_dim": candidate.width, "epochs": 1}
'''


@pytest.mark.parametrize("space, error", [("Telling", None), ("Silent", "does not say how it trains")])
def test_a_plugin_space_exports_through_its_trainer_settings(tmp_path, space, error):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN)
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        run = a.create_run(f"{plugin}:{space}", "random", name="plugin",
                           config={"dataset": "synthetic"})
        a.add_candidate(run.id, {"width": 4})
    result = invoke("export", "1", "--format", "json", "--db", str(path))
    if error:
        assert result.exit_code == 2 and error in result.stderr
        return
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)
    assert (spec["model"], spec["settings"]) == ("fm", {"embedding_dim": 4, "epochs": 1})
    assert "candidate 1 is pending, not done" in result.stderr
