"""Searches as separate OS processes: kill -9 and resume, two searches on one archive, a cluster."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autorec.archive import Archive

AUTOREC = [sys.executable, "-m", "autorec.cli"]


def _env(ray_tmp: str) -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "AUTOREC_RAY_TMPDIR": ray_tmp}


def _search(args, ray_tmp, **kwargs):
    return subprocess.Popen(
        [*AUTOREC, "search", *args], env=_env(ray_tmp), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True, **kwargs,
    )


def _done_evaluations(db: Path, run: str) -> int:
    if not db.exists():
        return 0
    try:
        archive = Archive(str(db), create=False)
        run_id = archive.get_run(run).id
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return sum(
        e.status == "done"
        for c in archive.candidates(run_id)
        for e in archive.evaluations_for(c.id)
    )


@pytest.mark.slow  # separate processes
def test_kill_9_then_resume(tmp_path, bowl, short_tmp):
    ray_tmp = short_tmp
    db = tmp_path / "runs.db"
    args = ["--space", bowl, "--proposer", "tpe", "--budget", "8", "--workers", "2",
            "--run-name", "crash", "--db", str(db), "--set", "delay=1.5"]
    driver = _search(args, ray_tmp)
    deadline = time.time() + 120
    while _done_evaluations(db, "crash") < 3:
        assert driver.poll() is None, driver.stdout.read()
        assert time.time() < deadline, "the search made no progress"
        time.sleep(0.3)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, mid-evaluation
    driver.wait()

    archive = Archive(str(db), create=False)
    run = archive.get_run("crash")
    before = {
        e.id: (e.status, e.attempt, e.metrics)
        for c in archive.candidates(run.id) for e in archive.evaluations_for(c.id)
    }
    assert any(status == "running" for status, _, _ in before.values())
    state_before = archive.load_proposer_state(run.id)
    assert state_before["proposed"]  # the proposer's state was saved as the search went
    told_before = [t for t in state_before["trials"] if t["state"] == "COMPLETE"]

    resumed = _search(["--resume", "crash", "--db", str(db)], ray_tmp)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output

    candidates = archive.candidates(run.id)
    originals = [c for c in candidates if c.status not in ("duplicate", "invalid")]
    assert len({c.hash for c in originals}) == len(originals)  # no candidate twice
    after = {e.id: e for c in candidates for e in archive.evaluations_for(c.id)}
    assert sum(e.status == "done" for e in after.values()) == 8
    for evaluation_id, (status, attempt, metrics) in before.items():
        if status == "done":  # completed work is never redone
            assert after[evaluation_id].attempt == attempt
            assert after[evaluation_id].metrics == metrics
        if status == "running":  # what was running ran again
            assert after[evaluation_id].status == "done"
            assert after[evaluation_id].attempt == attempt + 1
    assert archive.get_run("crash").status == "finished"
    # The state was restored, not only saved: the resumed TPE still knows which trial proposed
    # each candidate before the kill (a fresh one would only meet them as repeats, under trial
    # numbers of its own) and holds every result it had been told.
    state_after = archive.load_proposer_state(run.id)
    assert state_before["proposed"].items() <= state_after["proposed"].items()
    for trial in told_before:
        after = state_after["trials"][trial["number"]]
        assert (after["state"], after["params"], after["value"]) == (
            "COMPLETE", trial["params"], trial["value"])


@pytest.mark.slow  # separate processes
def test_two_searches_on_one_archive(tmp_path, bowl, short_tmp):
    db = tmp_path / "runs.db"
    searches = [
        _search(["--space", bowl, "--proposer", "random", "--budget", "10", "--workers", "1",
                 "--run-name", name,
                 "--db", str(db), "--json"], f"{short_tmp}/{name}")
        for name in ("left", "right")
    ]
    for search in searches:
        output, _ = search.communicate(timeout=300)
        assert search.returncode == 0, output
        assert "database is locked" not in output
    archive = Archive(str(db), create=False)
    for name in ("left", "right"):
        run = archive.get_run(name)
        done = [
            e for c in archive.candidates(run.id) for e in archive.evaluations_for(c.id)
            if e.status == "done"
        ]
        assert len(done) == 10
        assert run.status == "finished"


NODE_BOWL = """

class NodeBowl(Bowl):
    def evaluate(self, candidate, member, report):
        import ray

        with open(self.options.settings["node_log"], "a") as log:
            log.write(ray.get_runtime_context().get_node_id() + "\\n")
        return super().evaluate(candidate, member, report)
"""


@pytest.mark.slow
def test_search_on_a_two_node_ray_cluster(tmp_path, bowl, short_tmp):
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    env = _env(short_tmp)
    port = "6391"
    # `--block` keeps each node in the foreground, so the test stops exactly its own two nodes
    # (`ray stop` would stop every Ray on the machine, this test process's own included).
    nodes = []

    def node(*args):
        nodes.append(subprocess.Popen([*ray, "start", "--block", *args], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))

    def alive_nodes() -> int:
        probe = subprocess.run(
            [sys.executable, "-c",
             "import ray, json; ray.init(address='127.0.0.1:%s', logging_level='ERROR');"
             "print(json.dumps(sum(n['Alive'] for n in ray.nodes())))" % port],
            env=env, capture_output=True, text=True, timeout=120,
        )
        lines = probe.stdout.strip().splitlines()
        return int(lines[-1]) if probe.returncode == 0 and lines else 0

    try:
        node("--head", "--port", port, "--num-cpus", "1", "--include-dashboard", "false",
             "--temp-dir", short_tmp)
        deadline = time.time() + 120
        while alive_nodes() < 1:
            assert time.time() < deadline, "the head node did not start"
            time.sleep(1)
        node("--address", f"127.0.0.1:{port}", "--num-cpus", "1")
        while alive_nodes() < 2:
            assert time.time() < deadline, "the second node did not join"
            time.sleep(1)
        db = tmp_path / "runs.db"
        # The plugin space, plus a line per evaluation naming the Ray node it ran on (both nodes
        # run on this machine, so the host name alone cannot tell them apart).
        space = tmp_path / "node_bowl.py"
        space.write_text(Path(bowl.rpartition(":")[0]).read_text() + NODE_BOWL)
        node_log = tmp_path / "nodes.txt"
        search = _search(["--space", f"{space}:NodeBowl", "--proposer", "tpe", "--budget", "6",
                          "--workers", "2", "--run-name", "cluster", "--db", str(db),
                          "--ray-address", f"127.0.0.1:{port}", "--set", "delay=0.5",
                          "--set", f"node_log={node_log}", "--json"],
                         short_tmp)
        output, _ = search.communicate(timeout=300)
        assert search.returncode == 0, output
        summary = json.loads(output[output.index("{"):])
        assert summary["evaluations"] == 6
        assert alive_nodes() == 2
        # One CPU per node and two trials at a time: evaluations ran on both nodes.
        assert len(set(node_log.read_text().split())) == 2
    finally:
        for process in reversed(nodes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
