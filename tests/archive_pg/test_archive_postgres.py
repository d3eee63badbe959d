"""The archive on a real PostgreSQL server: the engine's archive tests run unchanged against it,
plus what only a server has (raw JSON as PostgreSQL stores it, concurrent writers), and bad URLs
are one line each with nothing written."""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import threading
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from autorec.archive import Archive, ArchiveError, latest_version
from autorec.cli import app
from pg_server import PASSWORD


def _engine_archive_tests():
    """tests/engine/test_archive.py, loaded under its own name: every test there that needs only
    an archive (and its run) is collected here too, with `archive` on PostgreSQL."""
    path = Path(__file__).resolve().parents[1] / "engine" / "test_archive.py"
    spec = importlib.util.spec_from_file_location("engine_test_archive_on_pg", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_engine = _engine_archive_tests()
run = _engine.run  # the engine's `run` fixture, resolving `archive` to the one below
for _name, _test in vars(_engine).items():
    if _name.startswith("test_") and set(inspect.signature(_test).parameters) <= {"archive", "run"}:
        globals()[f"{_name}_on_postgres"] = _test
ENGINE_TESTS = [n for n in globals() if n.endswith("_on_postgres")]


@pytest.fixture
def archive(pg_url):
    with Archive(pg_url) as a:
        yield a


def test_the_engine_archive_tests_are_collected_here():
    # Guards the loader above: a rename there must not silently run nothing here.
    assert len(ENGINE_TESTS) >= 7, ENGINE_TESTS


def test_nan_inf_and_timestamps_round_trip_through_postgres(archive, pg_url):
    run = archive.create_run("toy", "random", name="r")
    c = archive.add_candidate(run.id, {"clip": math.inf, "choice": "inf"})
    [e] = archive.add_evaluations(c.id, [("fm", "synthetic", "ctr")])
    archive.start_evaluation(e.id)
    archive.finish_evaluation(e.id, "failed", {"loss": math.nan, "gain": -math.inf}, error="NaN")
    got = archive.get_evaluation(e.id)
    assert math.isnan(got.metrics["loss"]) and got.metrics["gain"] == -math.inf
    assert got.finished_at >= got.started_at and got.finished_at.tzinfo is not None
    assert archive.get_candidate(c.id).params == {"clip": math.inf, "choice": "inf"}
    with psycopg.connect(pg_url) as con:  # valid JSON as PostgreSQL itself reads it
        raw = con.execute("select metrics::jsonb ->> 'loss' from evaluation").fetchone()[0]
        assert json.loads(raw) == {"$float": "nan"}
        assert con.execute("select version from schema_version").fetchone() == (latest_version(),)
    assert archive.location.endswith("/t" + pg_url.rsplit("/t", 1)[1])
    assert PASSWORD not in archive.location and PASSWORD not in repr(archive)


def test_two_writers_and_a_reader_at_once(pg_url):
    writers = [Archive(pg_url) for _ in range(2)]
    runs = [w.create_run("toy", "random", name=f"w{k}") for k, w in enumerate(writers)]
    reader = Archive(pg_url, create=False)
    errors, seen = [], []

    def write(k):
        try:
            for i in range(40):
                c, [e] = writers[k].admit(runs[k].id, {"i": i}, members=[("fm", "s", "ctr")])
                writers[k].start_evaluation(e.id)
                writers[k].finish_evaluation(e.id, "done", {"auc": 0.5 + i / 100})
                writers[k].admit(runs[k].id, {"i": i})  # a repeat: recorded as a duplicate
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen.append(sum(len(reader.candidates(r.id)) for r in runs))
    for t in threads:
        t.join()
    assert errors == []
    assert seen == sorted(seen)  # the reader only ever saw committed, growing runs
    for r in runs:
        counts = reader.counts(r.id)
        assert counts["candidates"]["duplicate"] == 40 and counts["evaluations"]["done"] == 40
        originals = [c for c in reader.candidates(r.id) if c.status != "duplicate"]
        assert sorted(c.params["i"] for c in originals) == list(range(40))
    for a in [*writers, reader]:
        a.close()


runner = CliRunner()


def _one_line_error(args, *, forbidden=(PASSWORD,)):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for text in forbidden:
        assert text not in result.output
    return lines[0]


def _tables(url):
    with psycopg.connect(url) as con:
        return sorted(r[0] for r in con.execute(
            "select tablename from pg_tables where schemaname = 'public'").fetchall())


def test_bad_urls_are_one_line_and_write_nothing(pg, pg_url):
    wrong = pg.url(pg_url.rsplit("/", 1)[1], password="not-the-password")
    line = _one_line_error(["archive", "list", "--db", wrong], forbidden=("not-the-password",))
    assert "password authentication failed" in line
    line = _one_line_error(["search", "--space", "architecture", "--proposer", "tpe",
                            "--db", wrong], forbidden=("not-the-password",))
    assert "password authentication failed" in line
    closed = f"postgresql://autorec:{PASSWORD}@127.0.0.1:1/nothing"
    assert "connection" in _one_line_error(["archive", "list", "--db", closed]).lower()
    assert _tables(pg_url) == []  # the search with a wrong password created nothing

    with psycopg.connect(pg_url) as con:  # someone else's database
        con.execute("create table customers (id int)")
    line = _one_line_error(["archive", "list", "--db", pg_url])
    assert "not an autorec archive" in line
    line = _one_line_error(["search", "--space", "architecture", "--proposer", "tpe",
                            "--db", pg_url])
    assert "not an autorec archive" in line and _tables(pg_url) == ["customers"]


def test_an_archive_from_a_newer_autorec_is_refused_untouched(pg, pg_url):
    with Archive(pg_url) as a:
        a.create_run("toy", "random", name="kept")
    with psycopg.connect(pg_url) as con:
        con.execute("update schema_version set version = %s", (latest_version() + 1,))
    line = _one_line_error(["archive", "list", "--db", pg_url])
    assert "newer autorec" in line
    with pytest.raises(ArchiveError, match="newer autorec"):
        Archive(pg_url)
    with psycopg.connect(pg_url) as con:
        assert con.execute("select version from schema_version").fetchone() == (
            latest_version() + 1,)


def test_report_and_pareto_read_a_postgres_archive(pg_url, tmp_path):
    with Archive(pg_url) as a:
        run = a.create_run("toy", "tpe", name="pg", space_contract={
            "objectives": [{"name": "valid_auc", "direction": "max"},
                           {"name": "params", "direction": "min"}]})
        for i, (auc, size) in enumerate([(0.70, 100.0), (0.75, 300.0), (0.72, 400.0),
                                         (math.nan, 50.0)]):
            c = a.add_candidate(run.id, {"i": i}, parents=[1] if i else [], operator="tpe")
            a.set_candidate_result(c.id, "done", fitness=i / 10,
                                   objectives={"valid_auc": auc, "params": size})
    result = runner.invoke(app, ["archive", "pareto", "--json", "--db", pg_url])
    assert result.exit_code == 0, result.output
    assert [c["id"] for c in json.loads(result.stdout)["front"]] == [2, 1]  # NaN left out
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "--db", pg_url, "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "validation chose <b>#4</b>" in page and 'data-figure="lineage"' in page


def _open_new_archive(url: str, barrier) -> str:
    barrier.wait()
    try:
        Archive(url).close()
        return "ok"
    except Exception as err:  # noqa: BLE001 - reported to the test
        return f"{type(err).__name__}: {err}"


def test_searches_starting_at_once_on_a_new_database_create_it_once(pg):
    """Without a lock, the second CREATE TABLE on a fresh PostgreSQL database fails on the
    catalogue's unique index (pg_type), which made one of two simultaneous searches fail."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for round_ in range(3):
        url = pg.create_database(f"race{round_}")
        barrier = context.Manager().Barrier(4)
        with context.Pool(4) as pool:
            outcomes = pool.starmap(_open_new_archive, [(url, barrier)] * 4)
        assert outcomes == ["ok"] * 4
