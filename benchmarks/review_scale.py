"""Review at scale: how long `autorec archive ...` and `autorec report` take on a run of 100,000
candidates.

    python benchmarks/review_scale.py --candidates 100000 --repeat 3 \\
        --out benchmarks/results/review_scale.json
    python benchmarks/review_scale.py --db postgresql://user:pw@host/db   # an empty database

Fills an archive (a fresh SQLite file in a temporary folder unless --db names one) with one run
shaped like a long agent search: candidates with params, validation objectives and test figures,
one evaluation each with metrics, parent links (a tournament over earlier done candidates, two
parents for a combine), failures with tracebacks, invalid and duplicate proposals, and an LLM
call behind every LLM proposal. The rows are bulk-inserted through the archive's own tables
(the same JSON encoding as the driver's writes), after `Archive(...)` created the schema.

Then each review command runs `--repeat` times in this process (typer's CliRunner, so the
figure is the command's own work: queries, formatting, figures; not Python's start-up) and once
as a subprocess (what a user waits for, start-up and imports included). Printed and written as
JSON: the median in-process seconds and the subprocess seconds per command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATORS = ["tpe", "mutate", "llm:refine", "llm:compare", "llm:combine", "llm:restart"]
CONTRACT = {
    "name": "architecture", "version": "1",
    "objectives": [{"name": "valid_auc", "direction": "max", "weight": 1.0},
                   {"name": "params", "direction": "min", "weight": 0.05}],
    "gates": [], "selection_metrics": ["valid_auc", "params"],
    "reported_metrics": ["auc", "logloss"], "description": "synthetic scale benchmark run",
}
ERRORS = ["RuntimeError: CUDA out of memory", "ValueError: NaN loss at epoch 2",
          "TimeoutError: evaluation passed its time limit of 600 s"]


def fill(url: str, n: int, seed: int = 0, batch: int = 5000) -> dict:
    """One run of `n` candidates; returns {"run": name, "show": an id with ancestry}."""
    import sqlalchemy as sa

    from autorec.archive import Archive, params_hash
    from autorec.archive.tables import Candidate, Evaluation, LLMCall, utcnow

    rng = random.Random(seed)
    with Archive(url) as archive:
        run = archive.create_run("architecture", "agent", name="scale", seed=seed,
                                 space_contract=CONTRACT)
        engine = archive._engine  # bulk inserts through the archive's own engine and tables
    start = utcnow()
    done: list[int] = []
    generation: dict[int, int] = {}
    reference: dict = {}
    candidates, evaluations, calls = [], [], []
    best_auc = 0.70

    def flush() -> None:
        with engine.begin() as conn:
            for table, rows in ((Candidate, candidates), (Evaluation, evaluations),
                                (LLMCall, calls)):
                if rows:
                    conn.execute(sa.insert(table.__table__), rows)
                    rows.clear()

    for cid in range(1, n + 1):
        op = "reference" if cid == 1 else OPERATORS[rng.randrange(len(OPERATORS))]
        k = 2 if op == "llm:combine" else (0 if op in ("reference", "llm:restart") else 1)
        pool = done[-2000:]  # a tournament over recent done candidates, like the agent's graph
        parents = rng.sample(pool, min(k, len(pool))) if pool else []
        params = {"model": rng.choice(["fm", "deepfm", "dcnv2", "din"]),
                  "embedding_dim": rng.choice([4, 8, 16, 32, 64]),
                  "lr": round(10 ** rng.uniform(-4, -2), 6), "layers": rng.randrange(1, 4),
                  "i": cid}
        roll = rng.random()
        status = ("done" if cid == 1 or roll < 0.85 else "failed" if roll < 0.93
                  else "invalid" if roll < 0.97 else "duplicate")
        when = start + timedelta(seconds=3 * cid)
        row = {
            "id": cid, "run_id": run.id, "hash": params_hash(params), "params": params,
            "parent_ids": parents, "operator": op,
            "generation": 1 + max(generation[p] for p in parents) if parents else 0, "rationale":
            f"{op}: try embedding_dim {params['embedding_dim']}", "status": status,
            "fitness": None, "error": None, "objectives": None, "reported": None,
            "duplicate_of": None, "created_at": when, "finished_at": None,
        }
        generation[cid] = row["generation"]
        reference = reference or {"hash": row["hash"], "params": params}
        if status == "duplicate":  # a repeat of the reference's params
            row["hash"], row["params"] = reference["hash"], reference["params"]
            row["duplicate_of"], row["error"] = 1, "duplicate of candidate 1"
        if status == "invalid":
            row["error"] = "embedding_dim: Input should be 4, 8, 16, 32 or 64"
        if status in ("done", "failed"):
            auc = min(0.83, 0.70 + rng.random() * (best_auc - 0.68))
            best_auc = max(best_auc, auc)
            size = float(rng.randrange(10_000, 500_000))
            metrics = {"valid_auc": auc, "auc": auc - 0.004, "logloss": 0.45, "params": size,
                       "valid_logloss": 0.44, "train_seconds": 30.0}
            error = None
            if status == "failed":
                error = "Traceback (most recent call last):\n  ...\n" + rng.choice(ERRORS)
                row["error"], metrics = error.splitlines()[-1], None
            else:
                row["objectives"] = {"valid_auc": auc, "params": size}
                row["reported"] = {"auc": auc - 0.004, "logloss": 0.45}
                row["fitness"] = (auc - 0.70) / 0.70 - 0.05 * (size - 250_000) / 250_000
                done.append(cid)
            row["finished_at"] = when + timedelta(seconds=2)
            evaluations.append({
                "run_id": run.id, "candidate_id": cid, "member": "candidate/ml-100k/ctr",
                "model": params["model"], "dataset": "ml-100k", "task": "ctr",
                "status": "done" if status == "done" else "failed", "metrics": metrics,
                "error": error, "started_at": when, "finished_at": row["finished_at"],
                "seconds": 2.0, "node": "node-1", "attempt": 1, "trial_id": f"t{cid}",
            })
        if op.startswith("llm"):
            calls.append({
                "run_id": run.id, "candidate_id": cid, "backend": "openai", "model": "m",
                "prompt": [{"role": "user", "content": "propose a candidate " * 40}],
                "response": json.dumps(params), "tokens_in": rng.randrange(2000, 4000),
                "tokens_out": rng.randrange(40, 200), "latency_s": rng.uniform(0.5, 4.0),
                "cost": 0.0004, "error": None, "created_at": when,
            })
        candidates.append(row)
        if len(candidates) >= batch:
            flush()
    flush()
    with Archive(url, create=False) as archive:
        archive.set_reference_candidate(run.id, 1)
        archive.set_run_status(run.id, "finished")
    deep = done[len(done) // 2]  # a mid-run candidate: ancestors above, descendants below
    return {"run": "scale", "show": deep}


def commands(url: str, run: str, show: int, out: str) -> dict[str, list[str]]:
    return {
        "archive list": ["archive", "list", "--db", url],
        "archive list --run --top 10": ["archive", "list", "--run", run, "--top", "10",
                                        "--db", url],
        "archive show": ["archive", "show", str(show), "--db", url],
        "archive lineage": ["archive", "lineage", str(show), "--db", url],
        "archive pareto": ["archive", "pareto", "--run", run, "--db", url],
        "report": ["report", run, "--db", url, "-o", out],
    }


def time_in_process(args: list[str], repeat: int) -> list[float]:
    from typer.testing import CliRunner

    from autorec.cli import app

    runner, times = CliRunner(), []
    for _ in range(repeat):
        began = time.perf_counter()
        result = runner.invoke(app, args)
        times.append(time.perf_counter() - began)
        if result.exit_code != 0:
            raise SystemExit(f"{' '.join(args)} failed: {result.output[-2000:]}")
    return times


def time_subprocess(args: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autorec.cli", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--db", help="an empty database URL or file (default: a temp file)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--label", default="loaded machine",
                        help="what the machine was doing, written beside the figures")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="review-scale-") as folder:
        url = args.db or str(Path(folder) / "runs.db")
        began = time.perf_counter()
        shape = fill(url, args.candidates)
        fill_s = time.perf_counter() - began
        print(f"filled {args.candidates:,} candidates in {fill_s:.1f} s", flush=True)
        results = {}
        for name, argv in commands(url, shape["run"], shape["show"],
                                   str(Path(folder) / "report.html")).items():
            inproc = time_in_process(argv, args.repeat)
            whole = time_subprocess(argv)
            results[name] = {"median_s": statistics.median(inproc), "runs_s": inproc,
                             "subprocess_s": whole}
            print(f"{name:30s} {statistics.median(inproc):7.3f} s in process, "
                  f"{whole:6.2f} s as a command", flush=True)
        size = Path(url).stat().st_size if Path(url).exists() else None
    payload = {
        "candidates": args.candidates, "database": "sqlite" if "://" not in url else url.split(":")[0],
        "archive_bytes": size, "fill_s": fill_s, "label": args.label,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
