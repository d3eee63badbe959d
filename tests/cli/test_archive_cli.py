"""`autorec archive`: list, show, lineage, diff and pareto over a hand-filled archive."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app

runner = CliRunner()

LONG_PROMPT = "Propose new widths. " * 40  # longer than a table shows
METRICS = {"auc": 0.70, "logloss": 0.55, "params": 5000.0, "embedding_params": 1000.0}


def _done(archive, run_id, params, fitness, objectives, parents=(), operator=None, **extra):
    c = archive.add_candidate(run_id, params, parents=parents, operator=operator, **extra)
    return archive.set_candidate_result(c.id, "done", fitness=fitness, objectives=objectives)


def _evaluate(archive, candidate_id, members):
    """Finish one evaluation per member: {model: metrics}."""
    rows = archive.add_evaluations(candidate_id, [(m, "synthetic", "ctr") for m in members])
    for row, metrics in zip(rows, members.values()):
        archive.start_evaluation(row.id, trial_id=f"t{row.id}", node="node-a")
        archive.finish_evaluation(row.id, "done", metrics=metrics, seconds=1.5)


@pytest.fixture
def db(tmp_path):
    """Two runs. The latest, "dims" (embedding_dims, suite fm + deepfm): reference #2, a
    three-generation lineage #2 -> #3 -> #4, a failed #5, an invalid #6, a dominated #7."""
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        arch = a.create_run("architecture", "tpe", name="arch", config={"dataset": "ml-100k"})
        ref = _done(a, arch.id, {"model": "deepfm", "embedding_dim": 16}, 0.0,
                    {"auc": 0.78, "params": 90000.0}, operator="reference")
        a.set_reference_candidate(arch.id, ref.id)
        a.set_run_status(arch.id, "finished")

        run = a.create_run("embedding_dims", "llm", name="dims", space_version="1",
                           config={"dataset": "synthetic", "space_settings": {"models": ["fm", "deepfm"]}})
        ref = _done(a, run.id, {"f0": 16, "f1": 16}, 0.0, {"auc": 0.70, "embedding_params": 1000.0},
                    operator="reference")
        a.set_reference_candidate(run.id, ref.id)
        _evaluate(a, ref.id, {"fm": METRICS, "deepfm": {**METRICS, "auc": 0.71}})
        child = _done(a, run.id, {"f0": 8, "f1": 16}, 0.02, {"auc": 0.72, "embedding_params": 800.0},
                      parents=[ref.id], operator="mutate", rationale="f0 carries little signal")
        _evaluate(a, child.id, {"fm": {**METRICS, "auc": 0.72, "embedding_params": 800.0},
                                "deepfm": {**METRICS, "auc": 0.72, "embedding_params": 800.0}})
        call = a.record_llm_call(run.id, "openai", "qwen2.5-7b", LONG_PROMPT,
                                 '{"f0": 8, "f1": 16}', tokens_in=812, tokens_out=40, latency_s=1.25)
        a.link_llm_calls([call.id], child.id)
        grandchild = _done(a, run.id, {"f0": 8, "f1": 32}, 0.05,
                           {"auc": 0.74, "embedding_params": 1200.0}, parents=[child.id],
                           operator="refine")
        failed = a.add_candidate(run.id, {"f0": 1, "f1": 64}, parents=[child.id], operator="mutate")
        a.set_candidate_result(failed.id, "failed", error="fm/synthetic/ctr: RuntimeError: loss is NaN")
        a.add_candidate(run.id, {"f0": 3}, parents=[ref.id], operator="mutate", status="invalid",
                        error="f0: Input should be 1, 2, 4, 8, 16, 32 or 64")
        _done(a, run.id, {"f0": 64, "f1": 16}, -0.01, {"auc": 0.69, "embedding_params": 1500.0},
              parents=[ref.id], operator="mutate")
        assert (ref.id, child.id, grandchild.id, failed.id) == (2, 3, 4, 5)
    return str(path)


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})  # tables unwrapped


def as_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_runs_shows_counts_and_best_fitness(db):
    result = invoke("archive", "list", "--db", db)
    assert result.exit_code == 0, result.output
    assert "arch" in result.stdout and "dims" in result.stdout
    assert "embedding_dims" in result.stdout and "finished" in result.stdout

    runs = as_json(invoke("archive", "list", "--db", db, "--json"))["runs"]
    assert [r["name"] for r in runs] == ["arch", "dims"]
    dims = runs[1]
    assert dims["candidates"] == {"done": 4, "failed": 1, "invalid": 1}
    assert (dims["best_candidate"], dims["best_fitness"]) == (4, 0.05)


def test_list_a_run_ranks_candidates_and_lists_failures_after(db):
    result = invoke("archive", "list", "--run", "dims", "--db", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("0.0500") < out.index("0.0200") < out.index("-0.0100")
    assert "loss is NaN" in out and "Input should be 1, 2, 4" in out
    assert out.index("-0.0100") < out.index("loss is NaN")  # failures come after the ranking

    data = as_json(invoke("archive", "list", "--run", "dims", "--top", "2", "--json", "--db", db))
    assert [c["id"] for c in data["ranked"]] == [4, 3]
    assert [(c["id"], c["status"]) for c in data["failures"]] == [(6, "invalid"), (5, "failed")]
    assert data["ranked"][0]["objectives"] == {"auc": 0.74, "embedding_params": 1200.0}


def test_show_has_params_members_lineage_and_the_llm_call(db):
    result = invoke("archive", "show", "3", "--db", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("candidate #3 of run dims", "mutate", "f0 carries little signal", "fm/synthetic/ctr",
                 "deepfm/synthetic/ctr", "node-a", "qwen2.5-7b", "812 in, 40 out", "1 ancestor(s)",
                 "--json for all"):
        assert text in out, text
    assert LONG_PROMPT not in out  # truncated for people

    data = as_json(invoke("archive", "show", "3", "--json", "--db", db))
    assert data["params"] == {"f0": 8, "f1": 16} and data["parents"] == [2]
    assert data["generation"] == 1 and data["fitness"] == 0.02
    assert [e["member"] for e in data["evaluations"]] == ["fm/synthetic/ctr", "deepfm/synthetic/ctr"]
    assert data["evaluations"][0]["metrics"]["auc"] == 0.72
    assert data["evaluations"][0]["seconds"] == 1.5
    assert data["llm_calls"][0]["prompt"] == LONG_PROMPT  # full in JSON
    assert data["llm_calls"][0]["tokens_in"] == 812
    assert data["lineage"]["parents"] == [2] and data["lineage"]["children"] == [4, 5]
    assert data["lineage"]["best_descendant"] == {"id": 4, "fitness": 0.05}


def test_show_a_failed_candidate_has_its_error(db):
    data = as_json(invoke("archive", "show", "5", "--json", "--db", db))
    assert data["status"] == "failed" and "loss is NaN" in data["error"]
    result = invoke("archive", "show", "6", "--db", db)
    assert result.exit_code == 0 and "Input should be 1, 2, 4" in result.stdout


def test_lineage_tree_runs_from_the_reference_through_the_candidate_to_descendants(db):
    result = invoke("archive", "lineage", "3", "--db", db)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = {label: next(i for i, line in enumerate(lines) if label in line)
          for label in ("#2 reference", "#3 mutate", "#4 refine", "#5 mutate")}
    assert at["#2 reference"] < at["#3 mutate"] < at["#4 refine"] < at["#5 mutate"]
    assert "+0.0200" in lines[at["#3 mutate"]] and "(failed)" in lines[at["#5 mutate"]]
    assert "#6" not in result.stdout and "#7" not in result.stdout  # siblings are not lineage

    data = as_json(invoke("archive", "lineage", "4", "--json", "--db", db))
    assert data["candidate"]["id"] == 4
    assert data["ancestors"][0]["id"] == 3 and data["ancestors"][0]["parents"][0]["id"] == 2


def test_diff_lists_differing_params_and_deltas(db):
    result = invoke("archive", "diff", "3", "4", "--db", db)
    assert result.exit_code == 0, result.output
    assert "f1" in result.stdout and "+0.0300" in result.stdout  # fitness 0.02 -> 0.05
    data = as_json(invoke("archive", "diff", "3", "4", "--json", "--db", db))
    assert [p["param"] for p in data["params"]] == ["f1"]
    fitness = next(v for v in data["values"] if v["name"] == "fitness")
    assert fitness["delta"] == pytest.approx(0.03)
    only_a = [v for v in data["values"] if v["member"] == "fm/synthetic/ctr"]
    assert only_a and all(v["b"] is None and v["delta"] is None for v in only_a)  # #4 has none

    everything = as_json(invoke("archive", "diff", "2", "3", "--all", "--json", "--db", db))
    assert [p["param"] for p in everything["params"]] == ["f0", "f1"]
    auc = next(v for v in everything["values"]
               if v["name"] == "auc" and v["member"] == "fm/synthetic/ctr")
    assert auc["delta"] == pytest.approx(0.02)


def test_pareto_of_the_latest_run_uses_the_space_objectives(db):
    data = as_json(invoke("archive", "pareto", "--json", "--db", db))
    assert data["run"] == "dims"
    assert data["objectives"] == [{"name": "auc", "direction": "max"},
                                  {"name": "embedding_params", "direction": "min"}]
    assert [c["id"] for c in data["front"]] == [4, 3]
    result = invoke("archive", "pareto", "--run", "arch", "--db", db)
    assert result.exit_code == 0, result.output
    assert "auc (max), params (min)" in result.stdout


def test_pareto_of_a_run_whose_space_cannot_load_is_a_clear_error(tmp_path):
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        a.create_run("no_such_space", "tpe", name="lost")
    result = invoke("archive", "pareto", "--db", str(path))
    assert result.exit_code == 2
    assert "cannot load its space" in result.stderr and "no_such_space" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["archive", "show", "999"], "no candidate 999"),
    (["archive", "lineage", "999"], "no candidate 999"),
    (["archive", "diff", "2", "999"], "no candidate 999"),
    (["archive", "list", "--run", "nope"], "no run 'nope'"),
    (["archive", "pareto", "--run", "nope"], "no run 'nope'"),
])
def test_unknown_ids_exit_2_with_the_archive_message(db, args, message):
    result = invoke(*args, "--db", db)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["archive", "list"], ["archive", "show", "1"],
                                  ["archive", "pareto"], ["export", "--best"]])
def test_a_missing_archive_is_an_error_and_is_not_created(tmp_path, args):
    missing = tmp_path / "nothing.db"
    result = invoke(*args, "--db", str(missing))
    assert result.exit_code == 2
    assert f"no archive at {missing}" in result.stderr
    assert not missing.exists()


def test_the_default_archive_is_not_created_either(tmp_path):
    result = invoke("archive", "list")
    assert result.exit_code == 2 and "no archive at" in result.stderr
    assert not (tmp_path / "runs.db").exists()


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n"
    path.write_bytes(content)
    result = invoke("archive", "list", "--db", str(path))
    assert result.exit_code == 2
    assert "is not a SQLite database" in result.stderr
    assert path.read_bytes() == content


def test_an_empty_archive_lists_no_runs_and_pareto_says_so(tmp_path):
    path = tmp_path / "runs.db"
    Archive(path).close()
    assert as_json(invoke("archive", "list", "--json", "--db", str(path)))["runs"] == []
    result = invoke("archive", "pareto", "--db", str(path))
    assert result.exit_code == 2 and "holds no runs" in result.stderr


def test_lineage_of_a_combine_hangs_it_under_both_parents(tmp_path):
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        run = a.create_run("embedding_dims", "llm", name="diamond")
        root = _done(a, run.id, {"f0": 16}, 0.0, None, operator="reference")
        left = _done(a, run.id, {"f0": 8}, 0.01, None, parents=[root.id], operator="mutate")
        right = _done(a, run.id, {"f0": 4}, 0.02, None, parents=[root.id], operator="mutate")
        _done(a, run.id, {"f0": 2}, 0.03, None, parents=[left.id, right.id], operator="combine")
    result = invoke("archive", "lineage", "4", "--db", str(path))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "#4 combine" in line]
    assert len(lines) == 2 and "(see above)" in lines[1]
    assert result.stdout.splitlines()[0].startswith("#1 reference")
    data = as_json(invoke("archive", "show", "4", "--json", "--db", str(path)))
    assert data["lineage"]["ancestors"] == 3 and data["lineage"]["roots"] == [1]


def test_pareto_follows_the_objectives_the_run_searched(tmp_path):
    path = tmp_path / "runs.db"
    with Archive(path) as a:  # architecture on the sequential task: ndcg@10, not auc
        run = a.create_run("architecture", "tpe", name="seq", config={"task": "sequential"})
        for ndcg, params in ((0.10, 5e4), (0.12, 8e4), (0.09, 9e4)):
            _done(a, run.id, {"ndcg": ndcg}, 0.0, {"ndcg@10": ndcg, "params": params})
    data = as_json(invoke("archive", "pareto", "--json", "--db", str(path)))
    assert [o["name"] for o in data["objectives"]] == ["ndcg@10", "params"]
    assert [c["id"] for c in data["front"]] == [2, 1]
