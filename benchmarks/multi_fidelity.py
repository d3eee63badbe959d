"""Multi-fidelity side by side: autorec TPE with and without early stopping, autorec's agent with
early stopping, Optuna TPE with its MedianPruner, and Ray Tune with OptunaSearch and ASHA, on the
same space, trainer and fitness.

    # fixed number of candidates per system and seed
    python benchmarks/multi_fidelity.py --seeds 0 1 2 3 4 --evals 20 \\
        --out benchmarks/results/multi_fidelity.json
    # every system runs until its wall time is spent (run it on a quiet machine)
    python benchmarks/multi_fidelity.py --seeds 0 1 2 3 4 --wall-budget 120 \\
        --out benchmarks/results/multi_fidelity_wall.json
    # per-seed files made one at a time, merged into one summary
    python benchmarks/multi_fidelity.py --merge a.json b.json --out merged.json

Task: the `architecture` space on ML-100K (CTR, user_time split), families fm and deepfm,
`max_epochs` 9 (rungs at 1, 3, 9 epochs), one thread per trial, one trial at a time. Fitness is
autorec's for every system: relative validation-AUC gain over the space's reference candidate
plus 0.01 times the relative parameter saving, so the columns compare like with like; only
validation metrics choose or rank anything. Every system records a curve: after each finished
(or stopped) trial, the trials so far, the epochs trained so far, the wall seconds since the
system started (Ray and LLM start-up included) and the best validation fitness so far. The
summary reads those curves at equal evaluations, equal epochs and equal wall time.
"""

from __future__ import annotations

import argparse
import contextlib
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
MAX_EPOCHS = SETTINGS["max_epochs"]
SYSTEMS = ["autorec-tpe", "autorec-tpe-asha", "autorec-agent-asha", "optuna-median", "ray-asha"]
# What the summary reads off every curve (override with --at-evals/--at-epochs/--at-seconds).
AT_EVALS = [10, 20, 30, 40]
AT_EPOCHS = [50, 100, 150]
AT_SECONDS = [30, 60, 90, 120]


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


class Curve:
    """Best validation fitness so far after each finished trial, with its cost so far."""

    def __init__(self):
        self.started = time.perf_counter()
        self.points: list[dict] = []
        self.best: float | None = None
        self.epochs = self.evals = 0

    def trial_done(self, value: float | None, new: bool = True) -> None:
        """A trial finished or was stopped; `new` is False for a promoted candidate's re-run,
        which costs epochs and time but is not another candidate."""
        if value is not None and (self.best is None or value > self.best):
            self.best = value
        self.evals += new
        self.points.append({"evals": self.evals, "epochs": self.epochs,
                            "wall_s": round(time.perf_counter() - self.started, 2),
                            "best": self.best})


def limits(evals: int | None, wall: float | None) -> str:
    return f"{wall:g} s" if wall else f"{evals} evaluations"


def run_autorec(seed: int, evals: int | None, wall: float | None, proposer: str, early: bool,
                folder: str, halving: dict | None = None) -> dict:
    import autorec
    from autorec.archive import Archive

    db = str(Path(folder) / f"autorec-{proposer}-{seed}-{early}.db")
    curve = Curve()
    counted: set[tuple[int, int]] = set()  # (evaluation, attempt): a promoted one runs twice
    archive: list = []

    def on_progress(driver) -> None:
        # Called by the driver after each finished evaluation (one member: one per candidate).
        if not archive:
            archive.append(Archive(db, create=False))
        best, new = None, False
        for candidate in archive[0].candidates(driver.run_id):
            if candidate.fitness is not None and (best is None or candidate.fitness > best):
                best = candidate.fitness
            for e in archive[0].evaluations_for(candidate.id):
                if e.status in ("pending", "running") or (e.id, e.attempt) in counted:
                    continue
                new = new or e.id not in {evaluation for evaluation, _ in counted}
                counted.add((e.id, e.attempt))
                metrics = e.metrics or {}
                curve.epochs += int(metrics.get("epochs_run") or metrics.get("epoch") or 0)
        curve.trial_done(best, new)

    # autorec's budget counts its reference too: one more, so it gets `evals` candidates of its
    # own like the others; a wall budget is its max_time (Ray start-up comes on top, as it does
    # for a user, and is in the curve).
    limit = {"max_time": wall, "budget": 100_000} if wall else {"budget": evals + 1}
    with learning_curves() as learning:
        result = autorec.search("architecture", dataset=DATASET, proposer=proposer, seed=seed,
                                space_settings=SETTINGS, early_stopping=early, db=db, workers=1,
                                threads=1, on_progress=on_progress, **limit, **(halving or {}))
    reader = Archive(db, create=False)
    run = reader.get_run(result.run)
    candidates = []
    for c in reader.candidates(run.id):
        for e in reader.evaluations_for(c.id):
            candidates.append({"candidate": c.id, "evaluation": e.id, "status": c.status,
                               "fitness": c.fitness, "operator": c.operator,
                               "valid_auc": learning.get(e.id, [])})
    return {"best": result.best.fitness if result.best else None, "epochs": curve.epochs,
            "evals": curve.evals, "wall_s": time.perf_counter() - curve.started,
            "stopped": sum(c["status"] == "stopped" for c in candidates), "curve": curve.points,
            "candidates": candidates}


@contextlib.contextmanager
def learning_curves():
    """Record every evaluation's per-epoch validation AUC (the values successive halving judges)
    as the driver hears them, so rules can be replayed offline on full runs. Instrumentation of
    this benchmark only: the driver's behaviour is unchanged."""
    from autorec.engine.driver import SearchDriver
    from autorec.engine.worker import FINAL

    original = SearchDriver.on_epoch
    seen: dict[int, list[float]] = {}

    def recording(self, trial_id, result):
        evaluation_id = self.running.get(trial_id)
        if evaluation_id is not None and result.get(FINAL) == 0 and "valid_auc" in result:
            values = seen.setdefault(evaluation_id, [])
            if int(result.get("epoch", 0)) == 1:
                values.clear()  # a promoted evaluation's new attempt
            values.append(float(result["valid_auc"]))
        return original(self, trial_id, result)

    SearchDriver.on_epoch = recording
    try:
        yield seen
    finally:
        SearchDriver.on_epoch = original


def run_optuna(seed: int, evals: int | None, wall: float | None, data, reference: dict,
               objectives) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = space()
    curve = Curve()

    def objective(trial):
        candidate = s.sample(trial)
        best = float("-inf")

        def on_epoch(row):
            nonlocal best
            curve.epochs += 1
            best = max(best, row["valid_auc"])
            trial.report(best, row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        metrics, _ = train(candidate, data, on_epoch)
        return fitness(metrics, reference, objectives)

    def after_trial(study, trial) -> None:
        # A pruned trial carries its last intermediate value (a validation AUC), not a fitness.
        curve.trial_done(trial.value if trial.state.name == "COMPLETE" else None)

    folder = tempfile.mkdtemp(prefix="optuna-")
    study = optuna.create_study(
        direction="maximize", storage=f"sqlite:///{folder}/study.db",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    study.optimize(objective, n_trials=None if wall else evals, timeout=wall,
                   callbacks=[after_trial])
    return {"best": curve.best, "epochs": curve.epochs, "evals": curve.evals,
            "wall_s": time.perf_counter() - curve.started,
            "stopped": sum(t.state.name == "PRUNED" for t in study.trials), "curve": curve.points}


def define(trial) -> None:
    """OptunaSearch's define-by-run space: the architecture space's own sampler (module level:
    Tune pickles its searcher)."""
    space().sample(trial)


FINAL_EPOCH = 99  # the trainable's last report, with the fitness: not a training epoch


def run_ray_asha(seed: int, evals: int | None, wall: float | None, reference: dict,
                 objectives) -> dict:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    s = space()
    curve = Curve()

    def trainable(config):
        import torch

        from autorec.data import load_dataset

        torch.set_num_threads(1)
        data = load_dataset(DATASET).task("ctr")
        candidate = s.validate({k: v for k, v in config.items()})
        state = {"best": float("-inf")}

        def on_epoch(row):
            state["best"] = max(state["best"], row["valid_auc"])
            tune.report({"best_valid_auc": state["best"], "epoch": row["epoch"]})

        metrics, _ = train(candidate, data, on_epoch)
        tune.report({"best_valid_auc": state["best"],
                     "fitness": fitness(metrics, reference, objectives), "epoch": FINAL_EPOCH})

    class Track(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result.get("epoch", FINAL_EPOCH) < FINAL_EPOCH:
                curve.epochs += 1

        def on_trial_complete(self, iteration, trials, trial, **info):
            curve.trial_done((trial.last_result or {}).get("fitness"))

    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(define, metric="best_valid_auc", mode="max",
                                    sampler=optuna.samplers.TPESampler(seed=seed)),
            scheduler=ASHAScheduler(metric="best_valid_auc", mode="max", time_attr="epoch",
                                    grace_period=1, reduction_factor=3, max_t=MAX_EPOCHS),
            num_samples=-1 if wall else evals, time_budget_s=wall, max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="tune-"), verbose=0,
                                  callbacks=[Track()]),
    )
    results = tuner.fit()
    return {"best": curve.best, "epochs": curve.epochs, "evals": curve.evals,
            "wall_s": time.perf_counter() - curve.started,
            "stopped": sum(1 for r in results if r.metrics.get("fitness") is None),
            "curve": curve.points}


def read_curve(curve: list[dict], key: str, at: float) -> float | None:
    """The best fitness once `key` (evals, epochs or wall_s) had reached no more than `at`."""
    best = None
    for point in curve:
        if point[key] > at:
            break
        best = point["best"]
    return best


def mean_sd(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.mean(values),
            "sd": statistics.pstdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def summarise(rows: list[dict], at: dict[str, list[float]]) -> dict:
    best = [r["best"] for r in rows if r["best"] is not None]
    summary = {
        "best": mean_sd(best),
        "evals_mean": statistics.mean(r["evals"] for r in rows),
        "epochs_mean": statistics.mean(r["epochs"] for r in rows),
        "wall_s_mean": statistics.mean(r["wall_s"] for r in rows),
        "stopped_mean": statistics.mean(r["stopped"] for r in rows),
    }
    # A seed whose curve had no fitness yet at a checkpoint is left out of that checkpoint's
    # mean (n says how many seeds are in it), rather than counted as zero.
    for key, points in at.items():
        summary[f"best_at_{key}"] = {
            f"{p:g}": mean_sd([v for r in rows
                               if (v := read_curve(r.get("curve", []), key, p)) is not None])
            for p in points
        }
    return summary


def replay(run: dict, grace: int, eta: int, by: str, every: bool = False) -> dict:
    """Successive halving (the engine's own class) replayed on a full-evaluation run's recorded
    learning curves, in the order the run evaluated them: what the rule would have stopped, the
    epochs it would have trained and the best fitness it would have kept. Promotion included:
    a stopped evaluation that its rung later ranks among the best runs again in full. Proposals
    stay those of the full run (the proposer would have heard of the stops and moved on), so
    this isolates the rule from the search path. `every`: a rung at every epoch from `grace` on
    (with eta 2, a median rule like Optuna's MedianPruner) instead of grace * eta**k."""
    from autorec.engine.fidelity import SuccessiveHalving
    from autorec.fitness import relative_gain
    from autorec.space import Objective

    rows = [c for c in run["candidates"] if c["valid_auc"]]
    reference = next(c for c in rows if c["operator"] == "reference")
    ref_auc = max(reference["valid_auc"])
    # The params term of a candidate's fitness: its fitness less the AUC term of its best epoch.
    size = {c["evaluation"]: c["fitness"] - relative_gain(max(c["valid_auc"]), ref_auc, "max")
            for c in rows if c["fitness"] is not None}

    def score(member, metrics):
        return relative_gain(metrics["valid_auc"], ref_auc, "max") + metrics["size"]

    halving = SuccessiveHalving(Objective(name="valid_auc", direction="max"), grace, eta,
                                max_epoch=MAX_EPOCHS, score=score if by == "fitness" else None)
    if every:
        halving.rung_epochs = list(range(grace, MAX_EPOCHS + 1))
    epochs, kept, stopped = len(reference["valid_auc"]), [0.0], {}
    queue = [c for c in rows if c is not reference and c["evaluation"] in size]
    while queue:
        c = queue.pop(0)
        e = c["evaluation"]
        halving.start(e)
        for epoch, auc in enumerate(c["valid_auc"], start=1):
            epochs += 1
            decision = halving.report("m", e, epoch, {"valid_auc": auc, "size": size[e]})
            for p in halving.promotable("m", epoch, {k: v for k, (ep, v, _) in stopped.items()
                                                     if ep == epoch}):
                queue.insert(0, stopped.pop(p)[2])
            if decision.stop:
                stopped[e] = (epoch, decision.value, c)
                break
        else:
            kept.append(c["fitness"])
    full = max([0.0] + [c["fitness"] for c in rows if c["fitness"] is not None])
    return {"best": max(kept), "epochs": epochs, "stopped": len(stopped),
            "winner_kept": max(kept) >= full}


def replay_table(paths: list[str], rules: list[str]) -> None:
    runs = [r for path in paths for name, rows in json.loads(Path(path).read_text())["runs"].items()
            if name == "autorec-tpe" for r in rows]
    full_best = statistics.mean(max(0.0, r["best"]) for r in runs)
    full_epochs = statistics.mean(r["epochs"] for r in runs)
    print(f"full evaluation, {len(runs)} runs: best {full_best:.4f}, epochs {full_epochs:.1f}")
    for rule in rules:
        grace, eta, by, *where = rule.split(":")
        every = where == ["every"]
        out = [replay(r, int(grace), int(eta), by, every) for r in runs]
        print(f"grace {grace} eta {eta} by {by:8s}{' every epoch' if every else ''}: best {statistics.mean(o['best'] for o in out):.4f}"
              f", epochs {statistics.mean(o['epochs'] for o in out):.1f}"
              f", stopped {statistics.mean(o['stopped'] for o in out):.1f}"
              f", winner kept in {sum(o['winner_kept'] for o in out)}/{len(out)}")


def goal_table(payload: dict, full: str = "autorec-tpe", early: str = "autorec-tpe-asha") -> str:
    """The issue's goal per seed: the best validation fitness early stopping reaches within half
    the epochs full evaluation trained, beside full evaluation's best; and both at equal epochs."""
    full_runs = {r["seed"]: r for r in payload["runs"][full]}
    early_runs = {r["seed"]: r for r in payload["runs"][early]}
    lines = [f"| seed | {full}: best (epochs) | {early}: best within half those epochs | "
             f"{early}: best within the same epochs | {early}: best after as many candidates |",
             "|---|---|---|---|---|"]
    cells: dict[str, list[float]] = {"full": [], "half": [], "same": [], "evals": []}
    for seed in sorted(set(full_runs) & set(early_runs)):
        f, e = full_runs[seed], early_runs[seed]
        row = {"full": f["best"], "half": read_curve(e["curve"], "epochs", f["epochs"] / 2),
               "same": read_curve(e["curve"], "epochs", f["epochs"]),
               "evals": read_curve(e["curve"], "evals", f["evals"])}
        for key, value in row.items():
            if value is not None:
                cells[key].append(value)
        show = {k: "-" if v is None else f"{v:.4f}" for k, v in row.items()}
        lines.append(f"| {seed} | {show['full']} ({f['epochs']}) | {show['half']} | "
                     f"{show['same']} | {show['evals']} |")
    mean = {k: f"{statistics.mean(v):.4f} (n={len(v)})" if v else "-" for k, v in cells.items()}
    seeds = set(full_runs) & set(early_runs)
    epochs = statistics.mean(full_runs[s]["epochs"] for s in seeds) if seeds else 0.0
    lines.append(f"| mean | {mean['full']}, {epochs:.1f} epochs | {mean['half']} | {mean['same']} "
                 f"| {mean['evals']} |")
    return "\n".join(lines)


def checkpoints(args) -> dict[str, list[float]]:
    return {"evals": args.at_evals, "epochs": args.at_epochs, "wall_s": args.at_seconds}


def merge(paths: list[str], at: dict[str, list[float]]) -> dict:
    """Per-seed or per-system files into one: runs joined, summary recomputed."""
    runs: dict[str, list[dict]] = {}
    settings: dict = {}
    evals: dict[str, int | None] = {}  # per system: the protocol may give systems different counts
    halving: dict[str, dict] = {}  # per autorec early-stopping system: --grace/--eta, if given
    for path in paths:
        payload = json.loads(Path(path).read_text())
        settings = settings or dict(payload["settings"])
        for key in ("wall_budget", "space_settings"):
            if payload["settings"].get(key) != settings.get(key):
                sys.exit(f"error: {path} was made with another {key} than {paths[0]}")
        for name, rows in payload["runs"].items():
            count = payload["settings"]["evals"]
            count = count.get(name) if isinstance(count, dict) else count
            if evals.setdefault(name, count) != count:
                sys.exit(f"error: {path} ran {name} with another --evals than an earlier file")
            rule = payload["settings"].get("autorec_halving") or {}
            if name.endswith("-asha") and name.startswith("autorec"):
                if halving.setdefault(name, rule) != rule:
                    sys.exit(f"error: {path} ran {name} with other rungs than an earlier file")
            runs.setdefault(name, []).extend(rows)
    settings["evals"], settings["autorec_halving"] = evals, halving
    for rows in runs.values():
        rows.sort(key=lambda r: r["seed"])
    settings["seeds"] = sorted({r["seed"] for rows in runs.values() for r in rows})
    return {"settings": settings,
            "summary": {name: summarise(rows, at) for name, rows in runs.items()}, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--evals", type=int, default=20, help="candidates per system and seed")
    parser.add_argument("--wall-budget", type=float, default=None,
                        help="seconds per system and seed instead of a number of candidates")
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--grace", type=int, default=None,
                        help="autorec's first rung in epochs (its default when not given)")
    parser.add_argument("--eta", type=int, default=None,
                        help="autorec's rung ratio (its default when not given)")
    parser.add_argument("--at-evals", type=float, nargs="+", default=AT_EVALS)
    parser.add_argument("--at-epochs", type=float, nargs="+", default=AT_EPOCHS)
    parser.add_argument("--at-seconds", type=float, nargs="+", default=AT_SECONDS)
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="merge these result files into --out instead of running")
    parser.add_argument("--replay", nargs="+", metavar="JSON",
                        help="replay halving rules on these files' full autorec-tpe runs")
    parser.add_argument("--rules", nargs="+", default=[
        "1:3:valid_auc", "1:3:fitness", "1:2:fitness", "3:3:fitness", "2:2:fitness"],
        help="GRACE:ETA:valid_auc|fitness[:every] rules for --replay (every: a rung at every "
             "epoch)")
    parser.add_argument("--out", default=str(HERE / "results" / "multi_fidelity.json"))
    args = parser.parse_args()
    if args.replay:
        return replay_table(args.replay, args.rules)
    if args.wall_budget is not None and args.wall_budget <= 0:
        sys.exit("error: --wall-budget must be a positive number of seconds")
    if args.merge:
        payload = merge(args.merge, checkpoints(args))
        if {"autorec-tpe", "autorec-tpe-asha"} <= set(payload["runs"]):
            print(goal_table(payload))
    else:
        payload = run(args)
    Path(args.out).write_text(json.dumps(payload, indent=2))
    for name, row in payload["summary"].items():
        print(name, json.dumps({k: v for k, v in row.items() if not k.startswith("best_at")}))


def run(args) -> dict:
    import torch

    from autorec.data import load_dataset

    torch.set_num_threads(1)
    evals, wall = (None, args.wall_budget) if args.wall_budget else (args.evals, None)
    reference_metrics = data = objectives = None
    if {"optuna-median", "ray-asha"} & set(args.systems):
        # The baselines need the reference's metrics for autorec's fitness; autorec trains its
        # reference inside its own search. Not counted in the baselines' time.
        s = space()
        data = load_dataset(DATASET).task("ctr")
        reference_metrics, _ = train(s.reference(), data)
        objectives = s.objectives
    folder = tempfile.mkdtemp(prefix="multi-fidelity-")
    halving = {k: v for k, v in (("early_stopping_grace", args.grace),
                                 ("early_stopping_eta", args.eta)) if v is not None}
    runs: dict[str, list[dict]] = {name: [] for name in args.systems}
    for seed in args.seeds:
        for name in args.systems:
            print(f"seed {seed}: {name}, {limits(evals, wall)} ...", file=sys.stderr, flush=True)
            if name == "autorec-tpe":
                row = run_autorec(seed, evals, wall, "tpe", False, folder)
            elif name == "autorec-tpe-asha":
                row = run_autorec(seed, evals, wall, "tpe", True, folder, halving)
            elif name == "autorec-agent-asha":
                row = run_autorec(seed, evals, wall, "agent", True, folder, halving)
            elif name == "optuna-median":
                row = run_optuna(seed, evals, wall, data, reference_metrics, objectives)
            else:
                row = run_ray_asha(seed, evals, wall, reference_metrics, objectives)
            runs[name].append({"seed": seed, **row})
            brief = {k: v for k, v in row.items() if k not in ("curve", "candidates")}
            print(f"  {brief}", file=sys.stderr, flush=True)
    return {
        "settings": {"space": "architecture", "dataset": DATASET, "space_settings": SETTINGS,
                     "evals": evals, "wall_budget": wall, "seeds": args.seeds,
                     "autorec_halving": halving},
        "summary": {name: summarise(rows, checkpoints(args)) for name, rows in runs.items()},
        "runs": runs,
    }


if __name__ == "__main__":
    main()
