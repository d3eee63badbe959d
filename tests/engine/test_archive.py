import json
import math
import multiprocessing
import pickle
import sqlite3
import threading

import pytest

from autorec.archive import (
    Archive,
    ArchiveError,
    NotFoundError,
    latest_version,
    migrations,
    params_hash,
)
from autorec.errors import AutorecError


@pytest.fixture
def archive(tmp_path):
    with Archive(tmp_path / "runs.db") as a:
        yield a


@pytest.fixture
def run(archive):
    return archive.create_run("toy", "random", name="r1", config={"budget": 10}, seed=7)


def _done(archive, run_id, params, fitness, objectives=None, parents=(), operator=None):
    c = archive.add_candidate(run_id, params, parents=parents, operator=operator)
    return archive.set_candidate_result(c.id, "done", fitness=fitness, objectives=objectives)


def test_everything_round_trips_through_a_fresh_archive(tmp_path):
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        run = a.create_run(
            "embedding-dims", "llm", name="search-1", space_version="2",
            config={"workers": 2, "objectives": ["auc"]}, seed=3,
        )
        a.save_proposer_state(run.id, {"step": 4, "weights": [0.5, 0.25]})
        parent = a.add_candidate(run.id, {"dim": 16, "layers": [64, 32]}, operator="reference")
        a.set_reference_candidate(run.id, parent.id)
        child = a.add_candidate(
            run.id, {"dim": 8, "layers": [32]}, parents=[parent.id], operator="refine",
            rationale="smaller tables",
        )
        suite = [("fm", "ml-100k", "ctr"), ("sasrec", "ml-100k", "seq")]
        [e1, e2] = a.add_evaluations(child.id, suite)
        a.start_evaluation(e1.id, trial_id="t-1", node="host-a")
        a.finish_evaluation(e1.id, "done", {"auc": 0.75, "logloss": 0.5}, seconds=1.5)
        a.start_evaluation(e2.id, trial_id="t-2")
        a.finish_evaluation(e2.id, "timeout", error="took 600 s", node="host-b")
        a.set_candidate_result(child.id, "done", fitness=1.25, objectives={"auc": 0.75})
        call = a.record_llm_call(
            run.id, "local", "smollm2", [{"role": "user", "content": "propose"}], '{"dim": 8}',
            tokens_in=12, tokens_out=5, latency_s=0.3, cost=0.0,
        )
        a.link_llm_calls([call.id], child.id)
        a.set_run_status(run.id, "finished")

    with Archive(path, create=False) as b:
        got = b.get_run("search-1")
        assert (got.id, got.space, got.space_version, got.proposer, got.seed) == (
            run.id, "embedding-dims", "2", "llm", 3,
        )
        assert got.config == {"workers": 2, "objectives": ["auc"]}
        assert got.status == "finished" and got.finished_at >= got.started_at
        assert got.environment["python"] and got.reference_candidate_id == parent.id
        assert b.load_proposer_state(run.id) == {"step": 4, "weights": [0.5, 0.25]}
        assert b.get_run(run.id).name == b.get_run(str(run.id)).name == "search-1"
        assert [r.name for r in b.list_runs()] == ["search-1"]

        c = b.get_candidate(child.id)
        assert c.params == {"dim": 8, "layers": [32]} and c.parent_ids == [parent.id]
        assert (c.operator, c.generation, c.rationale) == ("refine", 1, "smaller tables")
        assert c.status == "done"
        assert c.fitness == 1.25 and c.objectives == {"auc": 0.75}
        assert c.hash == params_hash({"layers": [32], "dim": 8})

        evs = b.evaluations_for(child.id)
        assert [(e.member, e.model, e.dataset, e.task, e.status) for e in evs] == [
            ("fm/ml-100k/ctr", "fm", "ml-100k", "ctr", "done"),
            ("sasrec/ml-100k/seq", "sasrec", "ml-100k", "seq", "timeout"),
        ]
        assert evs[0].metrics == {"auc": 0.75, "logloss": 0.5}
        first = evs[0]
        assert (first.seconds, first.node, first.trial_id) == (1.5, "host-a", "t-1")
        assert first.attempt == 1
        assert evs[1].error == "took 600 s" and evs[1].node == "host-b" and evs[1].seconds >= 0
        assert b.get_evaluation(e1.id).finished_at is not None

        [got_call] = b.llm_calls_for(child.id)
        assert got_call.prompt == [{"role": "user", "content": "propose"}]
        assert (got_call.response, got_call.tokens_in, got_call.tokens_out) == ('{"dim": 8}', 12, 5)
        assert b.llm_totals(run.id) == {
            "calls": 1, "tokens_in": 12, "tokens_out": 5, "cost": 0.0, "latency_s": 0.3,
        }


def test_nan_and_inf_round_trip_as_valid_json(archive, run, tmp_path):
    c = archive.add_candidate(run.id, {"clip": float("inf"), "choice": "inf"})
    [e] = archive.add_evaluations(c.id, [("fm", "synthetic", "ctr")])
    nan, inf = float("nan"), float("inf")
    metrics = {"loss": nan, "latency": inf, "gain": -inf, "per_epoch": [1.0, nan]}
    archive.finish_evaluation(e.id, "failed", metrics, error="NaN loss")

    got = archive.get_evaluation(e.id).metrics
    assert math.isnan(got["loss"]) and got["latency"] == math.inf and got["gain"] == -math.inf
    assert got["per_epoch"][0] == 1.0 and math.isnan(got["per_epoch"][1])
    params = archive.get_candidate(c.id).params
    assert params == {"clip": math.inf, "choice": "inf"}  # a string stays a string

    def no_constants(name):
        raise AssertionError(f"stored bare {name}, which is not JSON")

    con = sqlite3.connect(tmp_path / "runs.db")
    [(raw,)] = con.execute("select metrics from evaluation where id = ?", (e.id,)).fetchall()
    stored = json.loads(raw, parse_constant=no_constants)
    assert stored["loss"] == {"$float": "nan"} and stored["gain"] == {"$float": "-inf"}
    assert con.execute("select json_valid(metrics) from evaluation").fetchone() == (1,)
    con.close()


def test_same_params_in_a_run_are_recorded_as_a_duplicate(archive, run):
    first = archive.add_candidate(run.id, {"dim": 8, "lr": 0.01})
    again = archive.add_candidate(run.id, {"lr": 0.01, "dim": 8}, operator="refine")
    assert first.status == "pending"
    assert again.status == "duplicate" and again.duplicate_of == first.id
    assert str(first.id) in again.error
    third = archive.add_candidate(run.id, {"dim": 8, "lr": 0.01})
    assert third.duplicate_of == first.id  # always points at the original

    assert archive.candidate_by_hash(run.id, params_hash({"dim": 8, "lr": 0.01})).id == first.id
    assert archive.candidate_by_hash(run.id, params_hash({"dim": 9})) is None
    other = archive.create_run("toy", "random", name="r2")
    assert archive.add_candidate(other.id, {"dim": 8, "lr": 0.01}).status == "pending"
    assert archive.counts(run.id)["candidates"]["duplicate"] == 2


def test_resume_requeues_running_evaluations_and_keeps_finished_ones(archive, run):
    half = archive.add_candidate(run.id, {"x": 1})
    done_e, running_e = archive.add_evaluations(half.id, [("fm", "d", "ctr"), ("dcn", "d", "ctr")])
    archive.start_evaluation(done_e.id)
    archive.finish_evaluation(done_e.id, "done", {"auc": 0.7})
    archive.start_evaluation(running_e.id, trial_id="t9")
    fresh = archive.add_candidate(run.id, {"x": 2})
    [fresh_e] = archive.add_evaluations(fresh.id, [("fm", "d", "ctr")])
    archive.start_evaluation(fresh_e.id)
    assert archive.get_candidate(fresh.id).status == "running"

    assert archive.requeue_running(run.id, evaluation_ids=[fresh_e.id]) == 1
    assert archive.get_evaluation(running_e.id).status == "running"
    assert archive.requeue_running(run.id) == 1
    assert archive.requeue_running(run.id) == 0
    assert [e.id for e in archive.pending_evaluations(run.id)] == [running_e.id, fresh_e.id]
    assert archive.get_evaluation(done_e.id).metrics == {"auc": 0.7}
    assert archive.get_evaluation(done_e.id).status == "done"
    assert archive.get_candidate(half.id).status == "running"  # one member already in
    assert archive.get_candidate(fresh.id).status == "pending"
    archive.start_evaluation(running_e.id)
    assert archive.get_evaluation(running_e.id).attempt == 2
    with pytest.raises(ArchiveError, match="already has an evaluation"):
        archive.add_evaluation(half.id, "fm", "d", "ctr")
    with pytest.raises(ArchiveError, match="is done"):
        archive.start_evaluation(done_e.id)


def test_top_ranks_by_fitness_and_failures_keep_their_errors(archive, run):
    low = _done(archive, run.id, {"x": 1}, 0.5)
    high = _done(archive, run.id, {"x": 2}, 2.0)
    tie = _done(archive, run.id, {"x": 3}, 0.5)
    bad = archive.add_candidate(run.id, {"x": 4})
    archive.set_candidate_result(bad.id, "failed", error="CUDA OOM")
    invalid = archive.add_candidate(run.id, {"dim": -1}, status="invalid", error="dim must be > 0")
    archive.add_candidate(run.id, {"x": 5})  # pending: no fitness yet

    assert [c.id for c in archive.top(run.id)] == [high.id, low.id, tie.id]
    assert [c.id for c in archive.top(run.id, n=1)] == [high.id]
    other = archive.create_run("toy", "random", name="r2")
    best_elsewhere = _done(archive, other.id, {"x": 1}, 9.0)
    assert [c.id for c in archive.top(n=2)] == [best_elsewhere.id, high.id]

    assert [(c.id, c.error) for c in archive.failures(run.id)] == [
        (invalid.id, "dim must be > 0"), (bad.id, "CUDA OOM"),
    ]
    assert [c.id for c in archive.failures(run.id, n=1)] == [invalid.id]
    with pytest.raises(ValueError):
        archive.set_candidate_result(bad.id, "failed", fitness=1.0)
    with pytest.raises(ValueError):
        archive.set_candidate_result(bad.id, "done", fitness=float("nan"))


def test_pareto_front_on_a_hand_made_example(archive, run):
    # maximise auc, minimise params: a, b, c are the trade-off curve; d is dominated by b;
    # e ties b exactly (kept); f lacks latency data but both objectives are present.
    objs = {
        "a": {"auc": 0.80, "params": 1000},
        "b": {"auc": 0.75, "params": 400},
        "c": {"auc": 0.60, "params": 100},
        "d": {"auc": 0.70, "params": 500},
        "e": {"auc": 0.75, "params": 400},
        "g": {"auc": 0.50, "params": 100},
        "nan": {"auc": float("nan"), "params": 5000},
        "missing": {"auc": 0.99},
    }
    ids = {k: _done(archive, run.id, {"k": k}, 1.0, objectives=v).id for k, v in objs.items()}
    failed = archive.add_candidate(run.id, {"k": "failed"})
    archive.set_candidate_result(failed.id, "failed", objectives={"auc": 0.99, "params": 1})

    front = archive.pareto_front(run.id, [("auc", "max"), ("params", "min")])
    assert [c.id for c in front] == [ids["a"], ids["b"], ids["e"], ids["c"]]

    class Objective:  # the space's objective objects work as well as tuples
        def __init__(self, name, direction):
            self.name, self.direction = name, direction

    front = archive.pareto_front(run.id, [Objective("params", "min")])
    assert {c.id for c in front} == {ids["c"], ids["g"]}
    with pytest.raises(ValueError):
        archive.pareto_front(run.id, [("auc", "up")])


def test_lineage_of_three_generations(archive, run):
    g0 = _done(archive, run.id, {"g": 0}, 1.0, operator="reference")
    g1a = _done(archive, run.id, {"g": "1a"}, 1.1, parents=[g0.id], operator="refine")
    g1b = _done(archive, run.id, {"g": "1b"}, 0.9, parents=[g0.id], operator="refine")
    g2 = archive.add_candidate(run.id, {"g": 2}, parents=[g1a.id, g1b.id], operator="combine")
    assert (g0.generation, g1a.generation, g2.generation) == (0, 1, 2)

    up = archive.lineage(g2.id)
    assert up["candidate"]["id"] == g2.id and up["descendants"] == []
    assert [(p["id"], p["operator"]) for p in up["ancestors"]] == [
        (g1a.id, "refine"), (g1b.id, "refine"),
    ]
    assert [p["parents"][0]["id"] for p in up["ancestors"]] == [g0.id, g0.id]
    assert up["ancestors"][0]["parents"][0]["parents"] == []

    down = archive.lineage(g0.id)
    assert down["ancestors"] == []
    assert [c["id"] for c in down["descendants"]] == [g1a.id, g1b.id]
    assert [c["id"] for c in down["descendants"][0]["children"]] == [g2.id]
    assert down["descendants"][0]["fitness"] == 1.1
    json.dumps(down)  # plain data

    assert [c.id for c in archive.children(g0.id)] == [g1a.id, g1b.id]
    assert [c.id for c in archive.children(g1b.id)] == [g2.id]
    with pytest.raises(NotFoundError):
        archive.add_candidate(run.id, {"g": 3}, parents=[999])
    with pytest.raises(NotFoundError):
        archive.lineage(999)


def test_counts_and_best_so_far(archive, run):
    _done(archive, run.id, {"x": 1}, 1.0)
    archive.add_candidate(run.id, {"x": 1})  # duplicate: costs no evaluation
    second = archive.add_candidate(run.id, {"x": 2})
    archive.set_candidate_result(second.id, "failed", error="boom")
    archive.add_candidate(run.id, {"x": 0}, status="invalid", error="bad")
    archive.add_candidate(run.id, {"x": 9}, status="screened", error="below TPE's draw")
    third = _done(archive, run.id, {"x": 3}, 3.0)
    _done(archive, run.id, {"x": 4}, 2.0)

    series = archive.best_so_far(run.id)
    assert [(s.fitness, s.best) for s in series] == [
        (1.0, 1.0), (None, 1.0), (3.0, 3.0), (2.0, 3.0),
    ]
    assert series[2].candidate_id == third.id
    counts = archive.counts(run.id)
    assert counts["candidates"] == {
        "pending": 0, "running": 0, "done": 3, "failed": 1, "invalid": 1, "duplicate": 1,
        "stopped": 0, "screened": 1,
    }
    assert set(counts["evaluations"]) == {"pending", "running", "done", "failed", "timeout",
                                          "stopped"}


def test_runs_by_name_and_clear_errors(archive):
    archive.create_run("toy", "tpe", name="mine")
    with pytest.raises(ArchiveError, match="already exists"):
        archive.create_run("toy", "tpe", name="mine")
    with pytest.raises(NotFoundError, match="no run 'nope'.*mine"):
        archive.get_run("nope")
    auto = archive.create_run("toy", "tpe")
    again = archive.create_run("toy", "tpe")
    assert auto.name.startswith("toy-tpe-") and again.name != auto.name
    assert issubclass(ArchiveError, AutorecError)
    with pytest.raises(ValueError, match="must be one of"):
        archive.set_run_status(auto.id, "paused")


def test_default_archive_is_runs_db_in_the_working_folder(tmp_path):
    with Archive() as a:
        a.create_run("toy", "random", name="here")
    assert (tmp_path / "runs.db").exists()
    with Archive(f"sqlite:///{tmp_path / 'runs.db'}", create=False) as b:
        assert b.get_run("here").proposer == "random"
    again = pickle.loads(pickle.dumps(Archive("runs.db")))
    assert again.get_run("here").name == "here"
    again.close()
    with Archive("sqlite://") as memory:  # in-memory: one database for the archive's lifetime
        memory.create_run("toy", "random", name="m")
        assert memory.get_run("m").name == "m"


def test_read_only_open_of_a_missing_archive_creates_nothing(tmp_path):
    with pytest.raises(ArchiveError, match="no archive at .*absent.db"):
        Archive(tmp_path / "absent.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_newer_schema_is_refused_and_the_file_left_untouched(tmp_path):
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        a.create_run("toy", "random", name="future")
    con = sqlite3.connect(path)
    con.execute("update schema_version set version = ?", (latest_version() + 5,))
    con.commit()
    con.close()
    before = path.read_bytes()

    newer = rf"newer autorec \(schema {latest_version() + 5} > {latest_version()}\); upgrade"
    with pytest.raises(ArchiveError, match=newer):
        Archive(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"candidate,fitness\n1,0.5\n", b"x" * 4096])
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path, content):
    path = tmp_path / "runs.db"
    path.write_bytes(content)
    for url in (str(path), f"sqlite:///{path}"):
        with pytest.raises(ArchiveError, match=f"{path} is not a SQLite database"):
            Archive(url)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


def test_a_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "optuna.db"
    con = sqlite3.connect(path)
    con.execute("create table studies (id integer primary key)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(ArchiveError, match="not an autorec archive"):
        Archive(path)
    assert path.read_bytes() == before


def test_an_older_archive_is_migrated_on_open(tmp_path, monkeypatch):
    path = tmp_path / "runs.db"
    with Archive(path) as a:
        run = a.create_run("toy", "random", name="old")
        a.add_candidate(run.id, {"x": 1})
    old = latest_version()

    def add_notes(conn):  # what a real "v2 adds a column" migration looks like
        conn.exec_driver_sql("ALTER TABLE run ADD COLUMN notes TEXT")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_notes])
    with Archive(path, create=False) as a:
        assert a.get_run("old").id == run.id and len(a.candidates(run.id)) == 1
    con = sqlite3.connect(path)
    assert con.execute("select version from schema_version").fetchall() == [(old + 1,)]
    assert "notes" in [row[1] for row in con.execute("pragma table_info(run)")]
    con.close()


def test_a_failing_migration_leaves_the_archive_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "runs.db"
    Archive(path).close()
    old = latest_version()

    def broken(conn):
        conn.exec_driver_sql("ALTER TABLE run ADD COLUMN notes TEXT")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    with pytest.raises(RuntimeError, match="migration bug"):
        Archive(path)
    con = sqlite3.connect(path)
    assert con.execute("select version from schema_version").fetchall() == [(old,)]
    assert "notes" not in [row[1] for row in con.execute("pragma table_info(run)")]
    con.close()


def test_a_reader_reads_while_a_writer_writes(tmp_path):
    path = tmp_path / "runs.db"
    writer = Archive(path)
    run = writer.create_run("toy", "random", name="live")
    reader = Archive(path, create=False)
    assert sqlite3.connect(path).execute("pragma journal_mode").fetchone() == ("wal",)

    # A writer in the middle of a transaction blocks neither reads nor the reader's view of
    # what was committed before it.
    held = sqlite3.connect(path, isolation_level=None)
    held.execute("begin immediate")
    held.execute("update run set seed = 99")
    assert reader.get_run("live").seed is None
    held.execute("rollback")
    held.close()

    seen, errors = [], []

    def write():
        try:
            for i in range(60):
                writer.add_candidate(run.id, {"i": i})
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    while thread.is_alive():
        seen.append(len(reader.candidates(run.id)))
    thread.join()
    assert errors == []
    assert seen == sorted(seen)
    assert len(reader.candidates(run.id)) == 60
    reader.close()
    writer.close()


def _write_many(path, name, n, start):
    start.wait()
    archive = Archive(path)  # both processes may be the one that creates the file
    run = archive.create_run("toy", "random", name=name)
    for i in range(n):
        c = archive.add_candidate(run.id, {"i": i})
        [e] = archive.add_evaluations(c.id, [("fm", "synthetic", "ctr")])
        archive.finish_evaluation(e.id, "done", {"auc": 0.5 + i / 1000})
    archive.close()


@pytest.mark.slow  # separate processes
def test_two_processes_write_one_file_at_once(tmp_path):
    path = str(tmp_path / "runs.db")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_write_many, args=(path, f"proc-{k}", 200, start)) for k in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]

    with Archive(path, create=False) as a:
        for k in range(2):
            run = a.get_run(f"proc-{k}")
            candidates = a.candidates(run.id)
            assert sorted(c.params["i"] for c in candidates) == list(range(200))
            assert a.counts(run.id)["evaluations"]["done"] == 200
