"""Every model of the suite on ML-100K, several seeds: quality, size and training time.

    python benchmarks/model_suite.py --seeds 0 1 2 --jobs 2 --out benchmarks/results/model_suite.json

Each (model, seed) trains in its own process with one torch thread, `--jobs` at a time, and the
default settings of `autorec train`. The table printed at the end (mean ± std over seeds) is the
one in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CTR = ["mean", "lr", "fm", "deepfm", "dcnv2", "din", "dare", "reloop2"]
SEQUENTIAL = ["popularity", "sasrec", "hstu", "sra_cl", "bm3"]


def train_one(model: str, dataset: str, seed: int, split: str | None) -> dict:
    command = [sys.executable, "-m", "autorec.cli", "train", "--model", model, "--dataset", dataset,
               "--set", f"seed={seed}", "--set", "threads=1", "--json"]
    if split:
        command += ["--split", split]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"model": model, "seed": seed, "error": done.stderr.strip()[-500:]}
    result = json.loads(done.stdout)
    result.pop("history", None)
    result["seed"] = seed
    result["wall_seconds"] = time.perf_counter() - started
    return result


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for model in dict.fromkeys(r["model"] for r in results):
        runs = [r for r in results if r["model"] == model and "error" not in r]
        if not runs:
            rows.append({"model": model, "error": next(r["error"] for r in results if r["model"] == model)})
            continue
        row = {"model": model, "task": runs[0]["task"], "seeds": len(runs), "params": runs[0]["params"]}
        for key in runs[0]["metrics"]:
            values = [r["metrics"][key] for r in runs]
            row[key] = (statistics.mean(values), statistics.pstdev(values))
        seconds = [r["train_seconds"] for r in runs]
        row["train_seconds"] = (statistics.mean(seconds), statistics.pstdev(seconds))
        row["epochs"] = statistics.mean(r["best_epoch"] for r in runs)
        rows.append(row)
    return rows


def table(rows: list[dict], metrics: list[str]) -> str:
    head = ["model", *metrics, "params", "train s", "best epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | error: {row['error'][:80]} |")
            continue
        cells = [row["model"]]
        cells += [f"{row[m][0]:.4f} ± {row[m][1]:.4f}" for m in metrics]
        cells += [f"{row['params']:,}", f"{row['train_seconds'][0]:.0f} ± {row['train_seconds'][1]:.0f}",
                  f"{row['epochs']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=CTR + SEQUENTIAL)
    parser.add_argument("--split", default=None, help="CTR split (default user_time)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model_suite.json"))
    args = parser.parse_args()

    jobs = [(m, s) for m in args.models for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(
            lambda job: train_one(job[0], args.dataset, job[1], args.split if job[0] in CTR else None),
            jobs,
        ))
    rows = summarise(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dataset": args.dataset, "split": args.split, "seeds": args.seeds,
                                    "results": results, "summary": rows}, indent=2))
    ctr = [r for r in rows if r.get("task") == "ctr" or r["model"] in CTR]
    seq = [r for r in rows if r.get("task") == "sequential" or r["model"] in SEQUENTIAL]
    if ctr:
        print(table(ctr, ["auc", "logloss"]))
    if seq:
        print()
        print(table(seq, ["hr@10", "ndcg@10", "mrr@10", "hr@10_unfiltered"]))


if __name__ == "__main__":
    main()
