"""TPE against random search on the synthetic CTR task, whose useful fields and ranks are planted.

    python benchmarks/tpe_vs_random.py --seeds 0 1 2 3 4 --evals 50 --workers 2 \\
        --out benchmarks/results/tpe_vs_random.json

The space is `embedding_dims` on dataset `synthetic` (12 fields f0..f11, each width one of 1, 2,
4, ..., 64): 7^12 candidates. Five fields carry signal with planted ranks f1:16, f3:4, f4:8,
f6:2, f8:4; the seven others are noise, best at the smallest width. The suite is cut to what
this 2-core machine affords: FM only, 2 epochs, lr 0.01, one thread (`--settings`). Fitness is
the engine's: relative test AUC against the reference (every field at 16), plus 0.05 times the
relative embedding-table saving.

Before the searches the script evaluates one candidate to estimate the runtime (and shrinks
`--evals` if the estimate passes `--max-minutes`), and scores a few hand-made candidates in the
same setting as yardsticks: the planted optimum (useful fields at their rank, noise at 1) and
neighbours of it. Each (proposer, seed) is one search with `--workers` concurrent trials; the
best-so-far fitness is read from the archive (`Archive.best_so_far`) after 10, 25 and 50
evaluations (the reference counts as the first). For each search's best candidate it reports
how far its widths are from the planted ranks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SETTINGS = {"models": ["fm"], "epochs": 2, "lr": 0.01, "threads": 1}

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
if "AUTOREC_RAY_TMPDIR" not in os.environ:
    os.environ["AUTOREC_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="arb-", dir="/tmp")


def planted() -> tuple[dict[str, int], list[str]]:
    from autorec.data.synthetic import SyntheticDataset

    info = SyntheticDataset().info()["planted"]
    return dict(info["useful"]), list(info["noise"])


def closeness(dims: dict[str, int], useful: dict[str, int], noise: list[str]) -> dict[str, Any]:
    """How far a candidate's widths are from the planted optimum, in octaves (log2 steps)."""
    off = {f: math.log2(dims[f] / rank) for f, rank in useful.items()}
    return {
        "useful_dims": {f: dims[f] for f in useful},
        "useful_mean_abs_octaves": statistics.fmean(abs(v) for v in off.values()),
        "useful_within_one_octave": sum(abs(v) <= 1 for v in off.values()),
        "useful_mean_signed_octaves": statistics.fmean(off.values()),
        "noise_dims": {f: dims[f] for f in noise},
        "noise_mean_log2": statistics.fmean(math.log2(dims[f]) for f in noise),
        "noise_at_most_2": sum(dims[f] <= 2 for f in noise),
    }


def yardsticks(settings: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Seconds of one evaluation (data already loaded), and the fitness of hand-made candidates."""
    import torch

    from autorec.fitness import candidate_fitness
    from autorec.space import SpaceOptions, load_space

    torch.set_num_threads(1)
    useful, noise = planted()
    space = load_space("embedding_dims", SpaceOptions(dataset="synthetic", settings=settings))
    member = space.suite()[0]
    fields = list(space.fields)

    def evaluate(dims: dict[str, int]) -> tuple[dict[str, float], float]:
        start = time.perf_counter()
        metrics = space.evaluate(space.Candidate.model_validate(dims), member, lambda m: None)
        return metrics, time.perf_counter() - start

    reference, _ = evaluate({f: 16 for f in fields})  # also loads the data
    _, seconds = evaluate({f: 16 for f in fields})
    candidates = {
        "reference (all 16)": {f: 16 for f in fields},
        "planted optimum (useful = rank, noise = 1)": {**{f: 1 for f in fields}, **useful},
        "useful x2, noise 1": {**{f: 1 for f in fields}, **{f: 2 * r for f, r in useful.items()}},
        "useful 16, noise 1": {**{f: 1 for f in fields}, **{f: 16 for f in useful}},
        "all 1": {f: 1 for f in fields},
        "useful = rank, noise 16": {**{f: 16 for f in fields}, **useful},
    }
    out = {}
    for name, dims in candidates.items():
        metrics = reference if name.startswith("reference") else evaluate(dims)[0]
        fitness = candidate_fitness({member.key: metrics}, {member.key: reference},
                                    space.objectives, space.gates)
        out[name] = {"dims": dims, "fitness": fitness, "auc": metrics["auc"],
                     "embedding_params": metrics["embedding_params"]}
    return seconds, out


def search(proposer: str, seed: int, evals: int, workers: int, settings: dict[str, Any],
           archive, checkpoints: list[int]) -> dict[str, Any]:
    from autorec.engine import run_search
    from autorec.search_config import SearchConfig

    useful, noise = planted()
    config = SearchConfig(space="embedding_dims", dataset="synthetic", space_settings=settings,
                          proposer=proposer, budget=evals, workers=workers, threads=1, seed=seed,
                          run_name=f"{proposer}-seed{seed}-{time.time_ns()}")
    start = time.perf_counter()
    outcome = run_search(config, archive)
    wall = time.perf_counter() - start
    curve = archive.best_so_far(outcome.run_id)
    best = archive.top(outcome.run_id, n=1)[0]
    failed = sum(1 for row in curve if row.fitness is None)
    return {
        "proposer": proposer, "seed": seed, "wall_s": wall, "evaluations": len(curve),
        "failed": failed,
        "best_so_far": [row.best for row in curve],
        "at": {str(k): curve[min(k, len(curve)) - 1].best for k in checkpoints},
        "best": {"candidate_id": best.id, "fitness": best.fitness, "params": best.params,
                 "objectives": best.objectives, **closeness(best.params, useful, noise)},
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--proposers", nargs="+", default=["tpe", "random"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settings", type=json.loads, default=DEFAULT_SETTINGS,
                        help="embedding_dims space settings, JSON")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--max-minutes", type=float, default=25.0)
    parser.add_argument("--startup-s", type=float, default=12.0,
                        help="per-search fixed cost assumed by the estimate (Tune, actors, data)")
    parser.add_argument("--db", type=Path, default=None, help="keep the archive here")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tpe_vs_random.json")
    args = parser.parse_args()

    import ray

    from autorec.archive import Archive
    from autorec.engine.tune_bridge import start_ray

    started = time.perf_counter()
    one_eval_s, sticks = yardsticks(args.settings)
    searches = len(args.seeds) * len(args.proposers)
    # Two single-thread trials share two cores; each worker also runs Tune and the driver.
    per_search = args.startup_s + args.evals * one_eval_s / max(1, min(args.workers, 2)) * 1.25
    estimate_min = searches * per_search / 60
    print(f"one evaluation: {one_eval_s:.2f} s; estimate: {searches} searches x "
          f"{per_search:.0f} s = {estimate_min:.1f} min", flush=True)
    evals, reduced = args.evals, False
    if estimate_min > args.max_minutes:
        budget_s = args.max_minutes * 60 / searches - args.startup_s
        evals = max(10, int(budget_s * min(args.workers, 2) / (one_eval_s * 1.25)))
        reduced = True
        print(f"over {args.max_minutes:g} min: evals reduced to {evals}", flush=True)
    checkpoints = [k for k in args.checkpoints if k <= evals] or [evals]

    print("\nyardsticks (same setting, evaluated in this process):")
    for name, s in sticks.items():
        print(f"  {name:44s} fitness {s['fitness']:+.4f}  auc {s['auc']:.4f}  "
              f"params {s['embedding_params']:.0f}")

    folder = Path(tempfile.mkdtemp(prefix="arb-tpe-"))
    db = args.db or folder / "tpe_vs_random.db"
    archive = Archive(db)
    start_ray(None, cpus=max(args.workers, os.cpu_count() or 1))
    results = []
    for seed in args.seeds:
        for i, proposer in enumerate(args.proposers):
            # Alternate which proposer goes first for each seed (the machine's load drifts).
            proposer = args.proposers[(i + seed) % len(args.proposers)]
            result = search(proposer, seed, evals, args.workers, args.settings, archive,
                            checkpoints)
            results.append(result)
            at = ", ".join(f"@{k} {v:+.4f}" for k, v in result["at"].items())
            print(f"  {proposer:6s} seed {seed}: {at} ({result['wall_s']:.0f} s, "
                  f"{result['failed']} failed, load {os.getloadavg()[0]:.1f})", flush=True)
    archive.close()
    if args.db is None:
        shutil.rmtree(folder, ignore_errors=True)

    summary = {}
    for proposer in args.proposers:
        mine = [r for r in results if r["proposer"] == proposer]
        summary[proposer] = {
            "at": {str(k): spread([r["at"][str(k)] for r in mine]) for k in checkpoints},
            "useful_mean_abs_octaves": spread([r["best"]["useful_mean_abs_octaves"] for r in mine]),
            "useful_within_one_octave": spread(
                [r["best"]["useful_within_one_octave"] for r in mine]),
            "noise_mean_log2": spread([r["best"]["noise_mean_log2"] for r in mine]),
            "noise_at_most_2": spread([r["best"]["noise_at_most_2"] for r in mine]),
            "wall_s": spread([r["wall_s"] for r in mine]),
        }
    wins = None
    if {"tpe", "random"} <= set(args.proposers):
        last = str(checkpoints[-1])
        by = {(r["proposer"], r["seed"]): r["at"][last] for r in results}
        wins = sum(by[("tpe", s)] > by[("random", s)] for s in args.seeds)
    useful, noise = planted()
    report = {
        "benchmark": "tpe_vs_random", "argv": sys.argv,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "load_at_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": args.settings, "workers": args.workers, "evals": evals, "reduced": reduced,
        "one_eval_s": one_eval_s, "estimate_min": estimate_min,
        "total_min": (time.perf_counter() - started) / 60,
        "planted": {"useful": useful, "noise": noise},
        "yardsticks": sticks, "summary": summary, "tpe_wins_at_last_checkpoint": wins,
        "runs": results,
    }
    print_tables(report, checkpoints)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    ray.shutdown()


def print_tables(report: dict[str, Any], checkpoints: list[int]) -> None:
    n = len({r["seed"] for r in report["runs"]})
    print(f"\nBest-so-far fitness, mean ± std [min, max] over {n} seeds "
          f"({report['evals']} evaluations, workers={report['workers']}):")
    print("\n| proposer | " + " | ".join(f"after {k}" for k in checkpoints) + " |")
    print("|---|" + "---|" * len(checkpoints))
    for proposer, s in report["summary"].items():
        cells = [f"{a['mean']:+.4f} ± {a['std']:.4f} [{a['min']:+.4f}, {a['max']:+.4f}]"
                 for a in (s["at"][str(k)] for k in checkpoints)]
        print(f"| {proposer} | " + " | ".join(cells) + " |")
    if report["tpe_wins_at_last_checkpoint"] is not None:
        print(f"\nTPE ahead of random after {checkpoints[-1]} evaluations in "
              f"{report['tpe_wins_at_last_checkpoint']} of {n} seeds")
    useful = report["planted"]["useful"]
    print("\nBest candidate of each search against the planted ranks "
          f"({', '.join(f'{f}:{r}' for f, r in useful.items())}; noise fields best at 1):")
    print("\n| proposer | seed | fitness | useful widths | mean abs octaves off | "
          "useful within 1 octave | noise widths | noise fields <= 2 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(report["runs"], key=lambda r: (r["proposer"], r["seed"])):
        b = r["best"]
        print(f"| {r['proposer']} | {r['seed']} | {b['fitness']:+.4f} "
              f"| {' '.join(str(v) for v in b['useful_dims'].values())} "
              f"| {b['useful_mean_abs_octaves']:.2f} "
              f"| {b['useful_within_one_octave']}/{len(useful)} "
              f"| {' '.join(str(v) for v in b['noise_dims'].values())} "
              f"| {b['noise_at_most_2']}/{len(b['noise_dims'])} |")
    print("\nYardsticks (same setting):")
    print("\n| candidate | fitness | test AUC | embedding params |")
    print("|---|---|---|---|")
    for name, s in report["yardsticks"].items():
        print(f"| {name} | {s['fitness']:+.4f} | {s['auc']:.4f} | {s['embedding_params']:.0f} |")


if __name__ == "__main__":
    main()
