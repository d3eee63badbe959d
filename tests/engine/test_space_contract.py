"""The space contract stored with a run, seeding, the GPU request, failures that explain
themselves, and the Python API: each through a real search on the bowl plugin space."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autorec
from autorec.archive import Archive
from autorec.cli import app

runner = CliRunner()

BROKEN_VALIDATOR = '''
import pydantic
from autorec.space import Objective, SearchSpace, SuiteMember


class Fragile(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    x: float = 0.0

    @pydantic.field_validator("x", mode="wrap")
    @classmethod
    def _buggy(cls, value, handler):
        if value == 4.0:
            return {}["a bug in the space's own code"]
        return handler(value)


class FragileSpace(SearchSpace):
    name = "fragile"
    Candidate = Fragile
    objectives = [Objective(name="score", direction="max")]

    def describe(self):
        return "x: a float"

    def reference(self):
        return Fragile()

    def sample(self, trial):
        return Fragile(x=trial.suggest_float("x", -5, 5))

    def suite(self):
        return [SuiteMember("f", "toy", "toy")]

    def evaluate(self, candidate, member, report):
        return {"score": -candidate.x ** 2}
'''


def search(*args: str):
    return runner.invoke(app, ["search", *args])


def test_review_works_after_the_space_plugin_file_is_deleted(ray_tmp, bowl, tmp_path):
    result = search("--space", bowl, "--proposer", "random", "--budget", "3", "--run-name", "r",
                    "--json")
    assert result.exit_code == 0, result.output
    run = Archive("runs.db", create=False).get_run("r")
    contract = run.space_contract
    assert contract["objectives"] == [{"name": "score", "direction": "max", "weight": 1.0}]
    assert contract["selection_metrics"] == ["score"] and contract["schema"]["type"] == "object"
    Path(bowl.rpartition(":")[0]).unlink()
    pareto = runner.invoke(app, ["archive", "pareto", "--run", "r", "--json"])
    assert pareto.exit_code == 0, pareto.output
    assert json.loads(pareto.stdout)["objectives"] == [{"name": "score", "direction": "max"}]
    shown = runner.invoke(app, ["archive", "show", str(run.reference_candidate_id)])
    assert shown.exit_code == 0, shown.output


def test_seed_candidates_run_right_after_the_reference(ray_tmp, bowl, tmp_path):
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("- {x: 1.0, y: -2}\n- {x: 3.0, y: 3}\n- {x: -1.5, y: 0}\n")
    result = search("--space", bowl, "--proposer", "random", "--budget", "5",
                    "--seed-candidates", str(seeds), "--run-name", "seeded", "--json")
    assert result.exit_code == 0, result.output
    archive = Archive("runs.db", create=False)
    rows = archive.candidates(archive.get_run("seeded").id)
    assert [r.operator for r in rows[:4]] == ["reference", "seed", "seed", "seed"]
    # {x: 3, y: 3} is the reference itself: recorded, not evaluated twice.
    assert [r.status for r in rows[1:4]] == ["done", "duplicate", "done"]
    best = json.loads(result.stdout)["best"]
    assert best["params"] == {"x": 1.0, "y": -2, "mode": "ok"}  # the optimum, given as a seed


def test_the_python_api_seeds_searches_and_reviews(ray_tmp, bowl):
    result = autorec.search(bowl, proposer="tpe", budget=4, run_name="api",
                            seed_candidates=[{"x": 1.0, "y": -2}])
    assert result.run == "api" and result.evaluations == 4
    assert result.best.params["x"] == 1.0 and result.best.operator == "seed"
    archive = autorec.open_archive("runs.db")
    assert [r["name"] for r in archive.runs()] == ["api"]
    frame = archive.dataframe("api")
    assert len(frame) == 4 and {"fitness", "score", "param.x", "operator"} <= set(frame.columns)
    assert archive.best("api").id == result.best.id
    assert archive.evaluations(result.best.id)[0]["metrics"]["score"] == 10.0


@pytest.mark.parametrize("content, message", [
    (None, "seed candidates file {path} does not exist"),
    ("- {x: 1.0\n", "seed candidates file {path} is not valid YAML/JSON"),
    ("x: 1\n", "must hold a non-empty list"),
    ("- {x: 1.0}\n- {x: 99.0}\n", "{path}: entry 2: x: Input should be less than or equal to 5"),
    ("- {x: 1.0}\n- {zz: 1}\n", "{path}: entry 2: zz: Extra inputs are not permitted"),
])
def test_bad_seed_files_are_one_line_and_touch_no_archive(bowl, tmp_path, content, message):
    path = tmp_path / "seeds.yaml"
    if content is not None:
        path.write_text(content)
    result = search("--space", bowl, "--seed-candidates", str(path))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message.format(path=path) in line
    assert not Path("runs.db").exists()


@pytest.mark.parametrize("args", [
    ["--budget", "0"],
    ["--space", "no_such_space"],
    ["--resume", "ghost"],
    ["--config", "missing.yaml"],
    ["--space", "architecture", "--set", "nope=1"],
    ["--gpus-per-trial", "1"],
    ["--space", "architecture", "--dataset", "synthetic", "--set", "models=[fm]",
     "--seed-candidates", "seeds.yaml"],
])
def test_a_refused_search_prints_one_line_and_creates_no_archive(args, bowl):
    if args[-1] == "seeds.yaml":
        Path("seeds.yaml").write_text("- {model: fm, lr: 5.0}\n")
    result = search(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert not Path("runs.db").exists()


@pytest.mark.skipif(os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not shutil.which("nvidia-smi"),
                    reason="needs a GPU: trial placement on a GPU is checked where one exists")
def test_each_gpu_trial_sees_only_its_own_device(ray_tmp, bowl):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("torch sees no GPU")
    result = autorec.search(bowl, proposer="random", budget=2, gpus_per_trial=1)
    assert result.evaluations == 2


def test_the_gpu_flag_on_a_machine_without_gpu_is_refused(bowl, monkeypatch):
    monkeypatch.setattr("autorec.engine.search.local_gpu_count", lambda: 0)
    result = search("--space", bowl, "--gpus-per-trial", "0.5")
    assert result.exit_code == 2
    assert "this machine has no GPU" in result.stderr and not Path("runs.db").exists()


def test_a_space_that_needs_a_gpu_asks_for_the_flag(bowl):
    source = Path(bowl.rpartition(":")[0])
    source.write_text(source.read_text().replace('    name = "bowl"', '    name = "bowl"\n    needs_gpu = True'))
    result = search("--space", bowl)
    assert result.exit_code == 2 and "needs a GPU per trial" in result.stderr


def test_a_failed_evaluation_keeps_its_whole_traceback(ray_tmp, bowl):
    from autorec.agents.base import Proposal, Proposer

    class Raiser(Proposer):
        name = "raiser"

        def propose(self, context, n):
            return [] if len(context.archive) > 1 else [Proposal({"x": 0.0, "mode": "raise"}, "x")]

        def observe(self, result):
            pass

    from autorec.engine import run_search
    from autorec.search_config import SearchConfig
    from autorec.space import load_space

    config = SearchConfig(space=bowl, budget=3, run_name="tb")
    run_search(config, "runs.db", proposer=Raiser(load_space(bowl)))
    archive = Archive("runs.db", create=False)
    failed = archive.candidates(archive.get_run("tb").id, "failed")[0]
    error = archive.evaluations_for(failed.id)[0].error
    assert error.startswith("Traceback (most recent call last)")
    assert "in evaluate" in error and error.strip().endswith("RuntimeError: planted failure")
    listed = runner.invoke(app, ["archive", "list", "--run", "tb"], env={"COLUMNS": "200"})
    assert "RuntimeError: planted failure" in listed.stdout and "Traceback" not in listed.stdout
    shown = runner.invoke(app, ["archive", "show", str(failed.id)], env={"COLUMNS": "200"})
    assert "in evaluate" in shown.stdout


def test_a_bug_in_the_space_is_the_spaces_error_not_an_invalid_proposal(tmp_path):
    from autorec.space import SpaceError, load_space

    (tmp_path / "fragile.py").write_text(BROKEN_VALIDATOR)
    space = load_space(f"{tmp_path / 'fragile.py'}:FragileSpace")
    assert space.validate({"x": 1.0}).x == 1.0
    with pytest.raises(SpaceError, match="space 'fragile' failed while validating a candidate: KeyError"):
        space.validate({"x": 4.0})


def test_a_relative_space_file_reaches_the_workers(ray_tmp, bowl, tmp_path, monkeypatch):
    """README's `--space my_space.py:MySpace`, run from the file's folder."""
    monkeypatch.chdir(tmp_path)
    result = search("--space", "bowl_space.py:Bowl", "--proposer", "random", "--budget", "2",
                    "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["evaluations"] == 2 and summary["best"] is not None
    stored = Archive("runs.db", create=False).get_run(summary["run"]).config["space"]
    assert stored == f"{tmp_path / 'bowl_space.py'}:Bowl"


def test_help_shows_every_default():
    text = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "300"}).stdout
    for default in ("default: architecture", "default: agent", "default: 20", "default: ml-100k",
                    "default: local", "default: 1", "default: 0"):
        assert default in text, default


def test_an_empty_file_as_db_is_refused_not_made_an_archive(bowl):
    Path("empty.db").write_bytes(b"")
    result = search("--space", bowl, "--db", "empty.db")
    assert result.exit_code == 2
    assert "empty.db is an empty file, not an autorec archive" in result.stderr
    assert Path("empty.db").stat().st_size == 0 and not Path("runs.db").exists()


def test_a_space_that_trains_on_no_dataset_refuses_one(bowl):
    result = search("--space", bowl, "--dataset", "ml-100k")
    assert result.exit_code == 2
    assert "space 'bowl' does not train on a dataset: drop --dataset and --task" in result.stderr


def test_run_names_and_params_with_markup_print_as_text(ray_tmp, bowl):
    result = search("--space", bowl, "--proposer", "random", "--budget", "2",
                    "--run-name", "x[/]y [bold]z")
    assert result.exit_code == 0, result.output
    assert "run x[/]y [bold]z in" in result.stdout and "run x[/]y [bold]z stopped" in result.stdout
