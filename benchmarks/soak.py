"""Soak: searches killed with SIGKILL at seeded moments, then resumed; nothing may be lost.

    python benchmarks/soak.py --searches 20 --seed 0 --out benchmarks/results/soak.json

Each search runs in its own process group (the driver and the Ray it starts) on a fresh SQLite
archive, over a cheap space defined here (`SoakSpace`: one float, two suite members, each
evaluation sleeps `--delay` seconds). A seeded schedule picks, per search, a phase and which
occurrence of it to kill at:

- `start-up`: a random moment in the first seconds (Ray starting, the run being created);
- `mid-proposal`: inside the proposer's `propose` (the child pauses there);
- `mid-admission`: inside the transaction that writes a candidate and its evaluations;
- `mid-evaluation`: while a trial sleeps in `evaluate` on a worker;
- `settling`: between a candidate's last evaluation and its fitness being written.

The child process announces each phase on a status file as it enters it and pauses there for
`--pause` seconds; the parent kills the whole process group (SIGKILL) during the pause of the
chosen occurrence, then runs the same search again with `--resume` (or afresh, when the kill
came before the run existed) until it finishes. Then it checks the archive:

- lost: an evaluation done before the kill that is not done, or has other metrics, after it;
- duplicated: a done evaluation run again (its attempt grew), two originals with one params
  hash, two evaluations of one (candidate, member), or more evaluations than the budget;
- stuck: a candidate not settled (pending/running) or an evaluation not finished in a run that
  says it finished; a candidate without evaluations that is neither invalid nor duplicate.

Resume overhead: (time to the kill + time of the resumed run) minus the median time of
`--baselines` uninterrupted runs of the same search. Everything listens on 127.0.0.1 only
(Ray runs locally). `--postgres` runs the same on PostgreSQL: a throwaway server (the tests'
tests/archive_pg/pg_server.py: initdb in a temporary folder, a free loopback port) with one
database per search; results go to results/soak_postgres.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pydantic

from autorec.space import Objective, SearchSpace, SuiteMember

HERE = Path(__file__).resolve()
PHASES = ("start-up", "mid-proposal", "mid-admission", "mid-evaluation", "settling")
RESULTS = HERE.parent / "results" / "soak.json"


# The space (loaded by path in the Ray workers: keep this module importable and cheap).


class SoakCandidate(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    x: float = pydantic.Field(0.5, ge=0.0, le=1.0)


class SoakSpace(SearchSpace):
    name = "soak"
    version = "1"
    Candidate = SoakCandidate
    objectives = [Objective(name="score", direction="max")]

    def describe(self) -> str:
        return "Soak benchmark: x in [0, 1], best at 0.3; two members that each sleep a little."

    def reference(self) -> SoakCandidate:
        return SoakCandidate()

    def sample(self, trial) -> SoakCandidate:
        return SoakCandidate(x=trial.suggest_float("x", 0.0, 1.0))

    def suite(self) -> list[SuiteMember]:
        return [SuiteMember("a", "none", "toy"), SuiteMember("b", "none", "toy")]

    def evaluate(self, candidate, member, report) -> dict[str, float]:
        settings = self.options.settings
        announce(settings.get("status"), "mid-evaluation")
        time.sleep(float(settings.get("delay", 0.3)))
        return {"score": 1.0 - (candidate.x - 0.3) ** 2}


def announce(status: str | None, phase: str) -> None:
    """Append a phase line to the status file (one write: lines never interleave)."""
    if status:
        with open(status, "a") as f:
            f.write(f"{phase}\n")


# The child: one search (or its resume), instrumented to announce and pause in each phase.


def child(args: argparse.Namespace) -> None:
    from autorec.agents import load_proposer
    from autorec.archive import Archive
    from autorec.engine import run_search
    from autorec.engine.driver import SearchDriver
    from autorec.engine.search import resumed_config
    from autorec.search_config import SearchConfig
    from autorec.space import load_space

    status, pause = args.status, args.pause

    def pausing(phase, method):
        def wrapped(*a, **k):
            announce(status, phase)
            time.sleep(pause)
            return method(*a, **k)
        return wrapped

    # Admission pauses inside its transaction (after the candidate row, before its evaluations).
    Archive._insert_evaluations = staticmethod(pausing("mid-admission", Archive._insert_evaluations))
    # Settling: the candidate's last evaluation is stored, its fitness is not yet.
    SearchDriver._record = pausing("settling", SearchDriver._record)

    archive = Archive(args.db)
    if args.resume:
        run_id, config = resumed_config(archive, args.run, {})
    else:
        run_id = None
        config = SearchConfig(
            space=f"{HERE}:SoakSpace", proposer="tpe", budget=args.budget, workers=args.workers,
            seed=args.seed, run_name=args.run,
            space_settings={"status": status, "delay": args.delay},
        )
    space = load_space(config.space, config.space_options())
    proposer = load_proposer(config.proposer, space, config.seed)
    proposer.propose = pausing("mid-proposal", proposer.propose)
    run_search(config, archive, resume_run_id=run_id, proposer=proposer)


# The parent: schedule, kill, resume, check.


def launch(args, db: Path, run: str, status: Path, resume: bool) -> subprocess.Popen:
    command = [sys.executable, str(HERE), "--child", "--db", str(db), "--run", run,
               "--status", str(status), "--budget", str(args.budget), "--workers",
               str(args.workers), "--delay", str(args.delay), "--pause", str(args.pause),
               "--seed", str(args.seed)]
    if resume:
        command.append("--resume")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def count(status: Path, phase: str) -> int:
    try:
        return status.read_text().splitlines().count(phase)
    except FileNotFoundError:
        return 0


def kill_at(process: subprocess.Popen, status: Path, phase: str, occurrence: int,
            startup_s: float, pause: float, limit_s: float) -> bool:
    """SIGKILL the process group in the chosen moment; False if the search ended first."""
    start = time.monotonic()
    while process.poll() is None and time.monotonic() - start < limit_s:
        if phase == "start-up":
            hit = time.monotonic() - start >= startup_s
        else:
            hit = count(status, phase) >= occurrence
        if hit:
            if phase != "start-up":
                time.sleep(pause / 2)  # inside the pause the child announced
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)
    if process.poll() is None:  # the phase never came: stop it anyway
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True
    return False


def snapshot(db: Path | str, run: str) -> dict[int, tuple]:
    """Every evaluation's (status, attempt, metrics), or {} when the run does not exist yet."""
    from autorec.archive import Archive

    if isinstance(db, Path) and not db.exists():
        return {}
    try:
        archive = Archive(db, create=False)
    except Exception:  # noqa: BLE001 - killed before the archive existed
        return {}
    try:
        run_id = archive.get_run(run).id
    except Exception:  # noqa: BLE001 - killed before the run row existed
        archive.close()
        return {}
    out = {e.id: (e.status, e.attempt, e.metrics) for c in archive.candidates(run_id)
           for e in archive.evaluations_for(c.id)}
    archive.close()
    return out


def check(db: Path, run: str, before: dict[int, tuple], budget: int) -> dict[str, Any]:
    from autorec.archive import Archive

    archive = Archive(db, create=False)
    found = archive.get_run(run)
    candidates = archive.candidates(found.id)
    evaluations = {e.id: e for c in candidates for e in archive.evaluations_for(c.id)}
    lost = sum(1 for i, (status, _, metrics) in before.items()
               if status == "done" and (i not in evaluations or evaluations[i].status != "done"
                                        or evaluations[i].metrics != metrics))
    redone = sum(1 for i, (status, attempt, _) in before.items()
                 if status == "done" and i in evaluations and evaluations[i].attempt != attempt)
    originals = [c for c in candidates if c.status not in ("duplicate", "invalid")]
    pairs = [(e.candidate_id, e.member) for e in evaluations.values()]
    duplicated = (redone + len(originals) - len({c.hash for c in originals})
                  + len(pairs) - len(set(pairs)) + max(0, len(evaluations) - budget))
    stuck_candidates = sum(1 for c in candidates if c.status in ("pending", "running"))
    orphans = sum(1 for c in originals if not archive.evaluations_for(c.id))
    stuck_evaluations = sum(1 for e in evaluations.values() if e.status in ("pending", "running"))
    result = {
        "run_status": found.status, "candidates": len(candidates), "evaluations": len(evaluations),
        "lost": lost, "duplicated": duplicated,
        "stuck": stuck_candidates + stuck_evaluations + orphans,
        "stuck_candidates": stuck_candidates, "stuck_evaluations": stuck_evaluations,
        "orphan_candidates": orphans,
        "rerun_evaluations": sum(max(0, e.attempt - 1) for e in evaluations.values()),
    }
    archive.close()
    return result


def finish(args, db: Path, run: str, status: Path) -> tuple[float, int, str]:
    """Resume (or start afresh when no run exists) until the search exits cleanly."""
    seconds, launches, output = 0.0, 0, ""
    while launches < 3:
        resume = bool(snapshot_run_exists(db, run))
        start = time.monotonic()
        process = launch(args, db, run, status, resume)
        output, _ = process.communicate(timeout=args.limit)
        seconds += time.monotonic() - start
        launches += 1
        if process.returncode == 0:
            return seconds, launches, output
    raise RuntimeError(f"search {run} did not finish after {launches} launches:\n{output[-3000:]}")


def snapshot_run_exists(db: Path, run: str) -> bool:
    from autorec.archive import Archive

    if isinstance(db, Path) and not db.exists():
        return False
    try:
        with Archive(db, create=False) as archive:
            archive.get_run(run)
        return True
    except Exception:  # noqa: BLE001
        return False


def baseline(args, folder: Path, k: int, db: Path | str) -> float:
    status = folder / f"baseline-{k}.status"
    start = time.monotonic()
    process = launch(args, db, f"baseline-{k}", status, resume=False)
    output, _ = process.communicate(timeout=args.limit)
    if process.returncode != 0:
        raise RuntimeError(f"baseline run failed:\n{output[-3000:]}")
    return time.monotonic() - start


def parent(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    os.environ.setdefault("AUTOREC_RAY_TMPDIR", str(folder / "ray"))
    if not args.postgres:
        soak(args, folder, lambda name: folder / f"{name}.db", "sqlite")
        return
    sys.path.insert(0, str(HERE.parent.parent / "tests" / "archive_pg"))
    import pg_server

    server = pg_server.start()
    try:
        soak(args, folder, lambda name: server.create_database(name.replace("-", "_")), "postgresql")
    finally:
        server.stop()


def soak(args: argparse.Namespace, folder: Path, new_db, backend: str) -> None:
    """`new_db(name)`: a fresh archive (a SQLite path or a database URL) for one search."""
    rng = random.Random(args.seed)
    base = [baseline(args, folder, k, new_db(f"baseline-{k}")) for k in range(args.baselines)]
    base_s = statistics.median(base)
    print(f"baseline: {base_s:.1f} s (median of {len(base)})", flush=True)
    rows = []
    for i in range(args.searches):
        phase = PHASES[i % len(PHASES)] if args.cycle else rng.choice(PHASES)
        occurrence = rng.randint(1, 3)
        startup_s = rng.uniform(0.5, 6.0)
        db, status, run = new_db(f"soak-{i}"), folder / f"soak-{i}.status", f"soak-{i}"
        start = time.monotonic()
        process = launch(args, db, run, status, resume=False)
        killed = kill_at(process, status, phase, occurrence, startup_s, args.pause, args.limit)
        to_kill = time.monotonic() - start
        before = snapshot(db, run)
        resume_s, launches, _ = finish(args, db, run, status)
        row = {"search": i, "phase": phase, "occurrence": occurrence,
               "startup_s": round(startup_s, 2) if phase == "start-up" else None,
               "killed": killed, "run_existed": bool(before) or snapshot_run_exists(db, run),
               "done_before_kill": sum(1 for s, _, _ in before.values() if s == "done"),
               "seconds_to_kill": round(to_kill, 2), "resume_seconds": round(resume_s, 2),
               "launches_after_kill": launches,
               "overhead_s": round(to_kill + resume_s - base_s, 2),
               **check(db, run, before, args.budget)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = summarise(rows, base_s)
    report = {"benchmark": "soak", "backend": backend, "seed": args.seed, "searches": args.searches,
              "budget": args.budget, "workers": args.workers, "delay_s": args.delay,
              "pause_s": args.pause, "baseline_s": round(base_s, 2),
              "baselines_s": [round(b, 2) for b in base], "machine": machine(),
              "summary": summary, "runs": rows}
    out = args.out or (RESULTS.with_name("soak_postgres.json") if backend == "postgresql"
                       else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def summarise(rows: list[dict], base_s: float) -> dict[str, Any]:
    by_phase: dict[str, Any] = {}
    for phase in PHASES:
        mine = [r for r in rows if r["phase"] == phase]
        if not mine:
            continue
        by_phase[phase] = {
            "searches": len(mine), "killed": sum(r["killed"] for r in mine),
            "lost": sum(r["lost"] for r in mine), "duplicated": sum(r["duplicated"] for r in mine),
            "stuck": sum(r["stuck"] for r in mine),
            "rerun_evaluations": sum(r["rerun_evaluations"] for r in mine),
            "finished": sum(r["run_status"] == "finished" for r in mine),
            "median_overhead_s": round(statistics.median(r["overhead_s"] for r in mine), 2),
        }
    return {"lost": sum(r["lost"] for r in rows), "duplicated": sum(r["duplicated"] for r in rows),
            "stuck": sum(r["stuck"] for r in rows),
            "finished": sum(r["run_status"] == "finished" for r in rows),
            "median_overhead_s": round(statistics.median(r["overhead_s"] for r in rows), 2),
            "median_overhead_fraction": round(
                statistics.median(r["overhead_s"] for r in rows) / base_s, 2),
            "by_phase": by_phase}


def table(report: dict[str, Any]) -> str:
    """The docs table: one row per phase, then all."""
    lines = ["| phase | searches | killed | finished | lost | duplicated | stuck | evaluations "
             "run again | median resume overhead |", "|---|---|---|---|---|---|---|---|---|"]
    rows = list(report["summary"]["by_phase"].items())
    total = report["summary"]
    rows.append(("all", {
        "searches": len(report["runs"]), "killed": sum(r["killed"] for r in report["runs"]),
        "finished": total["finished"], "lost": total["lost"], "duplicated": total["duplicated"],
        "stuck": total["stuck"],
        "rerun_evaluations": sum(r["rerun_evaluations"] for r in report["runs"]),
        "median_overhead_s": total["median_overhead_s"],
    }))
    for phase, r in rows:
        lines.append(f"| {phase} | {r['searches']} | {r['killed']} | {r['finished']} | {r['lost']} "
                     f"| {r['duplicated']} | {r['stuck']} | {r['rerun_evaluations']} "
                     f"| {r['median_overhead_s']:.1f} s |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_1min_at_end": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=8, help="evaluations per search")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds per evaluation")
    parser.add_argument("--pause", type=float, default=0.4, help="seconds the child pauses in a phase")
    parser.add_argument("--baselines", type=int, default=3)
    parser.add_argument("--cycle", action=argparse.BooleanOptionalAction, default=True,
                        help="phases in turn (every phase equally often); --no-cycle draws them")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds one launch may take")
    parser.add_argument("--out", type=Path, help=f"results file (default {RESULTS})")
    parser.add_argument("--postgres", action="store_true",
                        help="archive on a throwaway local PostgreSQL server instead of SQLite")
    parser.add_argument("--table", type=Path, help="print the docs table of a results file and exit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--status", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
    elif args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
