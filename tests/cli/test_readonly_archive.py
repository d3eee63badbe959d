"""A read-only archive: a search refuses it in one line and leaves nothing beside it; review
commands read it (SQLite's read-only / immutable open)."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorec.archive import Archive
from autorec.cli import app

runner = CliRunner()
FM = {"model": "fm", "embedding_dim": 8, "lr": 0.005, "epochs": 4}


def _archive(folder: Path) -> tuple[Path, int]:
    path = folder / "runs.db"
    with Archive(path) as a:
        run = a.create_run("architecture", "tpe", name="arch", space_version="1", config={
            "space": "architecture", "dataset": "ml-100k", "task": "ctr",
            "space_settings": {"seed": 3, "split": "global_time"},
        })
        ref = a.add_candidate(run.id, {"model": "deepfm"}, operator="reference")
        a.set_candidate_result(ref.id, "done", fitness=0.0,
                               objectives={"valid_auc": 0.78, "params": 9e4})
        a.set_reference_candidate(run.id, ref.id)
        fm = a.add_candidate(run.id, FM, parents=[ref.id], operator="tpe")
        a.set_candidate_result(fm.id, "done", fitness=0.03,
                               objectives={"valid_auc": 0.79, "params": 2e4})
    assert sorted(p.name for p in folder.iterdir()) == ["runs.db"]  # the WAL was checkpointed
    return path, fm.id


def _chattr(flag: str, path: Path) -> bool:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True)
    return done.returncode == 0


@contextmanager
def read_only(path: Path, how: str):
    """Make the archive (`file`) or its folder (`folder`) read-only in whichever way this
    machine honours: chattr +i for root (who ignores permission bits), else chmod."""
    target = path if how == "file" else path.parent
    root = os.geteuid() == 0
    if root and not _chattr("+i", target):
        pytest.skip("chattr +i is not available here, and root ignores file modes")
    mode = target.stat().st_mode
    if not root:
        target.chmod(0o444 if how == "file" else 0o555)
    try:
        yield
    finally:
        if root:
            _chattr("-i", target)
        else:
            target.chmod(mode)


@pytest.mark.parametrize("how", ["file", "folder"])
def test_search_refuses_a_read_only_archive_in_one_line(tmp_path, how):
    path, _ = _archive(tmp_path)
    before = path.read_bytes()
    with read_only(path, how):
        result = runner.invoke(app, ["search", "--space", "architecture", "--proposer", "tpe",
                                     "--budget", "2", "--db", str(path)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert "read-only" in lines[0] and str(path) in lines[0]
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]  # no -wal, no -shm
    assert path.read_bytes() == before


@pytest.mark.parametrize("how", ["file", "folder"])
def test_review_commands_read_a_read_only_archive(tmp_path, how):
    path, fm_id = _archive(tmp_path)
    db = ["--db", str(path)]
    with read_only(path, how):
        listed = runner.invoke(app, ["archive", "list", "--json", *db])
        assert listed.exit_code == 0, listed.output
        assert [r["name"] for r in json.loads(listed.output)["runs"]] == ["arch"]
        shown = runner.invoke(app, ["archive", "show", str(fm_id), "--json", *db])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["params"]["model"] == "fm"
        front = runner.invoke(app, ["archive", "pareto", "--run", "arch", *db])
        assert front.exit_code == 0, front.output
        exported = runner.invoke(app, ["export", "--best", "--run", "arch", *db])
        assert exported.exit_code == 0, exported.output
        assert "model: fm" in exported.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


def test_writing_to_an_archive_opened_read_only_is_one_clear_error(tmp_path):
    path, _ = _archive(tmp_path)
    archive = Archive(path, readonly=True)
    assert archive.readonly and archive.get_run("arch").name == "arch"
    from autorec.archive import ArchiveError

    with pytest.raises(ArchiveError, match="read-only"):
        archive.set_run_status(1, "finished")
    archive.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]
