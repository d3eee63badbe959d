"""Searches on one PostgreSQL archive as separate OS processes: two searches and a reader at
once, one driver killed with SIGKILL and resumed, then review, report and export over the URL.
Nothing lost, nothing run twice, no password stored."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app
from pg_server import PASSWORD

AUTOREC = [sys.executable, "-m", "autorec.cli"]
BOWL = Path(__file__).resolve().parents[1] / "engine" / "plugin_space.txt"
runner = CliRunner()


def _search(args, ray_tmp):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "AUTOREC_RAY_TMPDIR": ray_tmp}
    return subprocess.Popen([*AUTOREC, "search", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _done(reader: Archive, run: str) -> int:
    try:
        run_id = reader.get_run(run).id
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return reader.counts(run_id)["evaluations"]["done"]


@pytest.fixture
def short_tmp():
    folder = tempfile.mkdtemp(prefix="arpg-", dir="/tmp")  # Ray's socket paths must stay short
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # three search processes, each starting Ray
def test_two_searches_a_reader_and_a_killed_driver_on_one_postgres_archive(
        pg_url, tmp_path, short_tmp):
    bowl = tmp_path / "bowl_space.py"
    bowl.write_text(BOWL.read_text())
    space = f"{bowl}:Bowl"
    steady = _search(["--space", space, "--proposer", "random", "--budget", "4", "--workers", "1",
                      "--run-name", "steady", "--db", pg_url], f"{short_tmp}/a")
    crash = _search(["--space", space, "--proposer", "tpe", "--budget", "6", "--workers", "2",
                     "--run-name", "crash", "--db", pg_url, "--set", "delay=1.0"],
                    f"{short_tmp}/b")
    _wait_for_schema(pg_url)
    reader = Archive(pg_url, create=False)
    seen, deadline = [], time.time() + 240
    while _done(reader, "crash") < 2:  # the reader reads while both write
        assert crash.poll() is None, crash.stdout.read()
        assert time.time() < deadline, "the search made no progress"
        seen.append(_done(reader, "steady") + _done(reader, "crash"))
        time.sleep(0.3)
    os.killpg(crash.pid, signal.SIGKILL)  # the driver and its Ray, mid-evaluation
    crash.wait()
    output, _ = steady.communicate(timeout=300)
    assert steady.returncode == 0, output
    assert seen == sorted(seen)

    run = reader.get_run("crash")
    before = {e.id: (e.status, e.attempt) for c in reader.candidates(run.id)
              for e in reader.evaluations_for(c.id)}
    assert any(status == "running" for status, _ in before.values())
    resumed = _search(["--resume", "crash", "--db", pg_url], f"{short_tmp}/c")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output

    for name, budget in (("steady", 4), ("crash", 6)):
        run = reader.get_run(name)
        candidates = reader.candidates(run.id)
        originals = [c for c in candidates if c.status not in ("duplicate", "invalid")]
        assert len({c.hash for c in originals}) == len(originals)  # no candidate twice
        assert reader.counts(run.id)["evaluations"]["done"] == budget
        assert run.status == "finished"
    after = {e.id: e for c in reader.candidates(reader.get_run("crash").id)
             for e in reader.evaluations_for(c.id)}
    for evaluation_id, (status, attempt) in before.items():
        if status == "done":  # finished work is never redone
            assert after[evaluation_id].attempt == attempt
        if status == "running":  # what the kill interrupted ran again
            assert (after[evaluation_id].status, after[evaluation_id].attempt) == (
                "done", attempt + 1)
    reader.close()

    # Review over the same URL.
    listed = runner.invoke(app, ["archive", "list", "--json", "--db", pg_url])
    assert listed.exit_code == 0, listed.output
    assert sorted(r["name"] for r in json.loads(listed.stdout)["runs"]) == ["crash", "steady"]
    best = json.loads(listed.stdout)["runs"][0]["best_candidate"]
    shown = runner.invoke(app, ["archive", "show", str(best), "--json", "--db", pg_url])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["id"] == best
    front = runner.invoke(app, ["archive", "pareto", "-r", "crash", "--json", "--db", pg_url])
    assert front.exit_code == 0 and json.loads(front.stdout)["front"]
    report = runner.invoke(app, ["report", "steady", "crash", "--db", pg_url, "-o", "r.html"])
    assert report.exit_code == 0, report.output
    assert "run crash</h2>" in Path("r.html").read_text()
    with psycopg.connect(pg_url) as con:  # the URL's password was never stored
        dump = "".join(str(row) for table in ("run", "candidate", "evaluation")
                       for row in con.execute(f"select * from {table}").fetchall())
    assert PASSWORD not in dump


def _wait_for_schema(url: str, timeout: float = 120) -> None:
    """Until one of the searches has created the archive (a reader never creates one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with psycopg.connect(url) as con:
            if con.execute("select to_regclass('schema_version')").fetchone()[0]:
                return
        time.sleep(0.2)
    raise AssertionError("no search created the archive")


def test_export_reads_a_postgres_archive(pg_url):
    with Archive(pg_url) as a:
        run = a.create_run("architecture", "tpe", name="arch", config={
            "space": "architecture", "dataset": "ml-100k", "task": "ctr",
            "space_settings": {"seed": 3, "split": "global_time"}})
        c, [e] = a.admit(run.id, {"model": "fm", "embedding_dim": 8, "lr": 0.005, "epochs": 4},
                         members=[("candidate", "ml-100k", "ctr")], reference=True,
                         operator="reference")
        a.start_evaluation(e.id)
        a.finish_evaluation(e.id, "done", {"valid_auc": 0.78, "auc": 0.77, "params": 2e4})
        a.set_candidate_result(c.id, "done", fitness=0.0,
                               objectives={"valid_auc": 0.78, "params": 2e4})
    result = runner.invoke(app, ["export", "--best", "-r", "arch", "--format", "json",
                                 "--db", pg_url])
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)
    assert spec["model"] == "fm" and spec["settings"]["embedding_dim"] == 8
