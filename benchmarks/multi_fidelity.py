"""Multi-fidelity side by side: autorec TPE with and without --early-stopping, Optuna TPE with its
MedianPruner, and Ray Tune with OptunaSearch and ASHA, on the same space, trainer and fitness.

    python benchmarks/multi_fidelity.py --seeds 0 1 2 3 4 --evals 20 \\
        --out benchmarks/results/multi_fidelity.json

Task: the `architecture` space on ML-100K (CTR, user_time split), families fm and deepfm,
`max_epochs` 9 (rungs at 1, 3, 9 epochs), one thread per trial, one trial at a time. Fitness is
autorec's for every system: relative validation-AUC gain over the space's reference candidate
plus 0.01 times the relative parameter saving, so the columns compare like with like. Each
system gets `--evals` candidates per seed; reported per system: best validation fitness after
all of them (mean and spread over seeds), the epochs trained in all (the cost multi-fidelity
saves) and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
HERE = Path(__file__).resolve().parent
SETTINGS = {"models": ["fm", "deepfm"], "max_epochs": 9, "threads": 1}
DATASET = "ml-100k"


def space():
    from autorec.space import load_space

    return load_space("architecture", {"dataset": DATASET, "settings": SETTINGS})


def fitness(metrics: dict, reference: dict, objectives) -> float:
    from autorec.fitness import member_fitness

    return member_fitness(metrics, reference, objectives)


def train(candidate, data, on_epoch=None):
    from autorec.search_spaces.trained import training_metrics
    from autorec.trainer import train_model

    s = space()
    member = s.suite()[0]
    result = train_model(candidate.model, data, s.trainer_settings(candidate, member),
                         on_epoch=on_epoch)
    return training_metrics(result), result.epochs_run


def run_autorec(seed: int, evals: int, early: bool, folder: str) -> dict:
    import autorec
    from autorec.archive import Archive

    db = str(Path(folder) / f"autorec-{seed}-{early}.db")
    started = time.perf_counter()
    result = autorec.search("architecture", dataset=DATASET, proposer="tpe", budget=evals + 1,
                            seed=seed, space_settings=SETTINGS, early_stopping=early, db=db)
    wall = time.perf_counter() - started
    archive = Archive(db, create=False)
    run = archive.get_run(result.run)
    epochs = 0
    for candidate in archive.candidates(run.id):
        for evaluation in archive.evaluations_for(candidate.id):
            metrics = evaluation.metrics or {}
            epochs += int(metrics.get("epochs_run") or metrics.get("epoch") or 0)
    return {"best": result.best.fitness if result.best else None, "epochs": epochs,
            "wall_s": wall, "stopped": len(archive.candidates(run.id, "stopped"))}


def run_optuna(seed: int, evals: int, data, reference: dict, objectives) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = space()
    epochs = 0

    def objective(trial):
        nonlocal epochs
        candidate = s.sample(trial)
        best = float("-inf")

        def on_epoch(row):
            nonlocal best, epochs
            epochs += 1
            best = max(best, row["valid_auc"])
            trial.report(best, row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        metrics, _ = train(candidate, data, on_epoch)
        return fitness(metrics, reference, objectives)

    folder = tempfile.mkdtemp(prefix="optuna-")
    study = optuna.create_study(
        direction="maximize", storage=f"sqlite:///{folder}/study.db",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    started = time.perf_counter()
    study.optimize(objective, n_trials=evals)
    # A pruned trial carries its last intermediate value (a validation AUC), not a fitness.
    complete = [t.value for t in study.trials if t.state.name == "COMPLETE"]
    return {"best": max(complete) if complete else None, "epochs": epochs,
            "wall_s": time.perf_counter() - started,
            "stopped": sum(t.state.name == "PRUNED" for t in study.trials)}


def define(trial) -> None:
    """OptunaSearch's define-by-run space: the architecture space's own sampler (module level:
    Tune pickles its searcher)."""
    space().sample(trial)


def run_ray_asha(seed: int, evals: int, reference: dict, objectives) -> dict:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    s = space()

    def trainable(config):
        from autorec.data import load_dataset

        data = load_dataset(DATASET).task("ctr")
        candidate = s.validate({k: v for k, v in config.items()})
        state = {"best": float("-inf")}

        def on_epoch(row):
            state["best"] = max(state["best"], row["valid_auc"])
            tune.report({"best_valid_auc": state["best"], "epoch": row["epoch"]})

        metrics, _ = train(candidate, data, on_epoch)
        tune.report({"best_valid_auc": state["best"],
                     "fitness": fitness(metrics, reference, objectives), "epoch": 99})

    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(define, metric="best_valid_auc", mode="max",
                                    sampler=optuna.samplers.TPESampler(seed=seed)),
            scheduler=ASHAScheduler(metric="best_valid_auc", mode="max", time_attr="epoch",
                                    grace_period=1, reduction_factor=3, max_t=9),
            num_samples=evals, max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="tune-"), verbose=0),
    )
    results = tuner.fit()
    scores = [r.metrics.get("fitness") for r in results if r.metrics.get("fitness") is not None]
    epochs = sum(int(min(r.metrics.get("epoch", 0), 9)) for r in results)
    return {"best": max(scores) if scores else None, "epochs": epochs,
            "wall_s": time.perf_counter() - started,
            "stopped": sum(1 for r in results if r.metrics.get("fitness") is None)}


def summarise(rows: list[dict]) -> dict:
    best = [r["best"] for r in rows if r["best"] is not None]
    return {
        "best_mean": statistics.mean(best) if best else None,
        "best_sd": statistics.pstdev(best) if len(best) > 1 else 0.0,
        "epochs_mean": statistics.mean(r["epochs"] for r in rows),
        "wall_s_mean": statistics.mean(r["wall_s"] for r in rows),
        "stopped_mean": statistics.mean(r["stopped"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--evals", type=int, default=20)
    parser.add_argument("--systems", nargs="+",
                        default=["autorec-tpe", "autorec-tpe-asha", "optuna-median", "ray-asha"])
    parser.add_argument("--out", default=str(HERE / "results" / "multi_fidelity.json"))
    args = parser.parse_args()

    import torch

    from autorec.data import load_dataset

    torch.set_num_threads(1)
    s = space()
    data = load_dataset(DATASET).task("ctr")
    reference_metrics, _ = train(s.reference(), data)
    objectives = s.objectives
    folder = tempfile.mkdtemp(prefix="multi-fidelity-")
    runs: dict[str, list[dict]] = {name: [] for name in args.systems}
    for seed in args.seeds:
        for name in args.systems:
            print(f"seed {seed}: {name} ...", file=sys.stderr, flush=True)
            if name == "autorec-tpe":
                row = run_autorec(seed, args.evals, False, folder)
            elif name == "autorec-tpe-asha":
                row = run_autorec(seed, args.evals, True, folder)
            elif name == "optuna-median":
                row = run_optuna(seed, args.evals, data, reference_metrics, objectives)
            else:
                row = run_ray_asha(seed, args.evals, reference_metrics, objectives)
            runs[name].append({"seed": seed, **row})
            print(f"  {row}", file=sys.stderr, flush=True)
    payload = {
        "settings": {"space": "architecture", "dataset": DATASET, "space_settings": SETTINGS,
                     "evals": args.evals, "seeds": args.seeds},
        "summary": {name: summarise(rows) for name, rows in runs.items()},
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(payload, indent=2))
    for name, row in payload["summary"].items():
        print(name, json.dumps(row))


if __name__ == "__main__":
    main()
