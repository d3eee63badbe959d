"""Orchestration overhead: autorec's search loop against bare Ray Tune on a trivial trainable.

    python benchmarks/engine_overhead.py --trials 50 --workers 1 2 --work-ms 0 50 --reps 3 \\
        --micro 1000 --profile --out benchmarks/results/engine_overhead.json

Both sides run the same number of trials of the same work (benchmarks/trivial_space.py's
`do_work`: sleep for `--work-ms`), with the same resources (1 CPU a trial), the same
`max_concurrent_trials`, `reuse_actors=True`, in the same local Ray instance, started once:

- autorec: `run_search` with the trivial space, proposer `random`, budget = trials, on a fresh
  SQLite file archive per run. Timed: the whole `run_search` call (space, proposer, run row,
  driver, Tuner, fit, final status).
- bare: `tune.Tuner(trainable, param_space={"x": tune.uniform(0, 1)}, num_samples=trials)`.
  Timed: building the Tuner and `fit()`.

Each configuration runs `--reps` times, alternating which side goes first, after one untimed
warm-up of each side. Reported: the median wall time of each side, the ratio of the medians and
the median of the paired ratios (each pair ran back to back, so it shares the machine's load).

Where the driver's time goes: the archive the driver gets is wrapped in a timing proxy (every
method call timed), the proposer's methods and the driver's `next_trial` / `complete` are timed
too. `--micro N` times, without Ray, the exact sequence of archive calls the driver makes for one
single-member candidate, N times on a file archive, to show how it grows with the run's size.
`--profile` runs one more autorec search under cProfile and writes the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPACE = f"{HERE / 'trivial_space.py'}:TrivialSpace"

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
if "AUTOREC_RAY_TMPDIR" not in os.environ:
    os.environ["AUTOREC_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="arb-", dir="/tmp")


class Clock:
    """Counts and total seconds per name."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed

    def total(self, prefix: str = "") -> float:
        return sum(v for k, v in self.seconds.items() if k.startswith(prefix))


class TimedArchive:
    """Forwards every attribute to an Archive; every method call is timed, as 'loop.<name>' when
    made from inside the driver's next_trial/complete (the per-evaluation work), else as
    'setup.<name>' (opening the run, rebuilding state, the final status)."""

    def __init__(self, archive, clock: Clock):
        self._archive, self._clock = archive, clock
        self.in_loop = 0

    def __getattr__(self, name: str):
        value = getattr(self._archive, name)
        if callable(value):
            phase = "loop" if self.in_loop else "setup"
            return self._clock.wrap(f"{phase}.{name}", value)
        return value

    def loop_call(self, name: str, fn):
        timed = self._clock.wrap(name, fn)

        def call(*args, **kwargs):
            self.in_loop += 1
            try:
                return timed(*args, **kwargs)
            finally:
                self.in_loop -= 1

        return call


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# What the suggested fixes would save, emulated here without editing the engine (the side
# "autorec+fixes"; see docs/benchmarks-engine.md for the diffs they stand for).


def lean_trainable(config: dict[str, Any]) -> None:
    """autorec.engine.worker.evaluate_trial with the worker fix: it neither imports torch up
    front (a space that trains imports it itself, after OMP_NUM_THREADS is set) nor the
    autorec.engine package (whose __init__ pulls in the archive, sqlmodel and the proposers).
    Shipped by value, like the bare trainable."""
    import math
    import socket
    import traceback
    import types

    from ray import tune

    from autorec.space import SuiteMember, load_space

    threads = int(config["threads"])
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    cache = sys.modules.setdefault("_arb_spaces", types.ModuleType("_arb_spaces"))
    spaces = cache.__dict__.setdefault("spaces", {})
    node = socket.gethostname()
    try:
        key = repr((config["space"], sorted(config["space_options"].items())))
        if key not in spaces:
            spaces[key] = load_space(config["space"], config["space_options"])
        space = spaces[key]
        candidate = space.validate(config["params"])
        member = SuiteMember.from_dict(config["member"])

        def numbers(metrics):
            return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))
                    and (not isinstance(v, float) or math.isfinite(v))}

        metrics = space.evaluate(candidate, member,
                                 lambda m: tune.report({**numbers(m), "autorec_final": 0}))
        tune.report({**numbers(metrics), "autorec_final": 1, "autorec_node": node})
    except Exception as err:  # noqa: BLE001
        summary = "".join(traceback.format_exception_only(type(err), err)).strip()
        tune.report({"autorec_final": 1, "autorec_error": summary[-2000:], "autorec_node": node})


class DriverArchive:
    """Between the driver and its archive, emulating three driver fixes: the proposer's state
    is written at most once a second (and when the search stops), not twice per evaluation;
    a candidate's params come from memory, not get_candidate; the reference's evaluations are
    read once, after they are all done, not on every completion."""

    STATE_PERIOD_S = 1.0

    def __init__(self, archive):
        self._archive = archive
        self._state: tuple | None = None
        self._state_due = 0.0
        self._candidates: dict[int, Any] = {}
        self._frozen: dict[int, list] = {}
        self.reference_id: int | None = None

    def __getattr__(self, name: str):
        return getattr(self._archive, name)

    def save_proposer_state(self, run_id, state) -> None:
        self._state = (run_id, state)
        if time.monotonic() >= self._state_due:
            self.flush()

    def flush(self) -> None:
        if self._state is not None:
            self._archive.save_proposer_state(*self._state)
            self._state = None
            self._state_due = time.monotonic() + self.STATE_PERIOD_S

    def add_candidate(self, *args, **kwargs):
        row = self._archive.add_candidate(*args, **kwargs)
        self._candidates[row.id] = row
        return row

    def get_candidate(self, candidate_id):
        row = self._candidates.get(candidate_id)
        return row if row is not None else self._archive.get_candidate(candidate_id)

    def evaluations_for(self, candidate_id):
        if candidate_id in self._frozen:
            return self._frozen[candidate_id]
        rows = self._archive.evaluations_for(candidate_id)
        if candidate_id == self.reference_id and rows and all(r.status == "done" for r in rows):
            self._frozen[candidate_id] = rows
        return rows


def patched_driver_class():
    from autorec.engine.driver import SearchDriver

    class PatchedDriver(SearchDriver):
        def __init__(self, config, archive, *args, **kwargs):
            super().__init__(config, DriverArchive(archive), *args, **kwargs)
            self.archive.reference_id = self._reference_id

        def interrupted(self) -> None:
            self.archive.flush()
            super().interrupted()

    return PatchedDriver


# The two sides.


def autorec_run(trials: int, workers: int, settings: dict, folder: Path, seed: int,
                profile: cProfile.Profile | None = None, patched: bool = False) -> dict[str, Any]:
    import autorec.engine.search as search_module
    import autorec.engine.tune_bridge as bridge
    from autorec.agents import load_proposer
    from autorec.archive import Archive
    from autorec.engine import run_search
    from autorec.search_config import SearchConfig
    from autorec.space import SpaceOptions, load_space

    db = folder / f"overhead-{time.time_ns()}.db"
    archive = Archive(db)  # schema creation is not part of a search: outside the timing
    clock = Clock()
    timed = TimedArchive(archive, clock)
    config = SearchConfig(space=SPACE, dataset="none", space_settings=settings,
                          proposer="random", budget=trials, workers=workers, threads=1, seed=seed)
    proposer_space = load_space(SPACE, SpaceOptions(dataset="none", settings=settings))
    proposer = load_proposer("random", proposer_space, seed)
    for method in ("propose", "observe", "state_dict"):
        setattr(proposer, method, clock.wrap(f"proposer.{method}", getattr(proposer, method)))

    completions: list[float] = []

    def on_start(driver) -> None:
        driver.next_trial = timed.loop_call("driver.next_trial", driver.next_trial)
        complete = timed.loop_call("driver.complete", driver.complete)

        def complete_and_stamp(*args, **kwargs):
            out = complete(*args, **kwargs)
            completions.append(time.perf_counter())
            return out

        driver.complete = complete_and_stamp

    original = (search_module.SearchDriver, bridge.evaluate_trial)
    if patched:
        search_module.SearchDriver, bridge.evaluate_trial = patched_driver_class(), lean_trainable
    try:
        start = time.perf_counter()
        if profile is not None:
            profile.enable()
        outcome = run_search(config, timed, on_start=on_start, proposer=proposer)
        if profile is not None:
            profile.disable()
        wall = time.perf_counter() - start
    finally:
        search_module.SearchDriver, bridge.evaluate_trial = original
    seconds = sorted(e.seconds for c in archive.candidates(outcome.run_id)
                     for e in archive.evaluations_for(c.id) if e.seconds is not None)
    first = archive.evaluations_for(archive.get_run(outcome.run_id).reference_candidate_id)[0]
    archive.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if outcome.evaluations != trials:
        raise RuntimeError(f"autorec ran {outcome.evaluations} evaluations, not {trials}")
    evaluations = outcome.evaluations
    loop_s = clock.total("loop.")
    return {
        "wall_s": wall,
        "evaluations": evaluations,
        **phases(start, completions),
        # Archive calls the driver makes per evaluation (inside next_trial/complete).
        "archive_ms_per_eval": 1000 * loop_s / evaluations,
        # One-off archive calls: run row, driver state, reference, final status.
        "archive_setup_ms": 1000 * clock.total("setup."),
        # start_evaluation -> finish_evaluation: Tune's scheduling, the worker, the result's trip.
        "first_eval_s": first.seconds,
        "eval_s_median": statistics.median(seconds),
        "driver_ms_per_eval": 1000 * (clock.seconds["driver.next_trial"]
                                      + clock.seconds["driver.complete"]) / evaluations,
        "proposer_ms_per_eval": 1000 * clock.total("proposer.") / evaluations,
        "archive_calls_per_eval": sum(v for k, v in clock.calls.items()
                                      if k.startswith("loop.")) / evaluations,
        "by_call_ms_per_eval": {k: 1000 * v / evaluations for k, v in
                                sorted(clock.seconds.items(), key=lambda kv: -kv[1])},
        "calls": dict(clock.calls),
    }


def bare_run(trials: int, workers: int, settings: dict, folder: Path,
             searcher: bool = False) -> dict[str, Any]:
    """Bare Tune; with `searcher`, trials come from a minimal Searcher (random x, no archive)
    instead of Tune's variant generator: the path autorec's trials take through Tune."""
    from ray import tune
    from ray.tune.search import Searcher

    import trivial_space

    do_work = trivial_space.do_work

    def trainable(config):
        seconds = do_work(config["settings"])
        tune.report({"score": 1.0, "work_seconds": seconds})

    completions: list[float] = []

    class Stamp(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            completions.append(time.perf_counter())

    class RandomX(Searcher):
        def __init__(self):
            super().__init__(metric=None, mode=None)
            self.left = trials

        def suggest(self, trial_id):
            if self.left == 0:
                return Searcher.FINISHED
            self.left -= 1
            return {"x": random.random(), "settings": settings}

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass

    storage = tempfile.mkdtemp(prefix="bare-tune-", dir=folder)
    start = time.perf_counter()
    space = {} if searcher else {"param_space": {"x": tune.uniform(0.0, 1.0), "settings": settings}}
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        **space,
        tune_config=tune.TuneConfig(num_samples=-1 if searcher else trials,
                                    search_alg=RandomX() if searcher else None,
                                    max_concurrent_trials=workers, reuse_actors=True),
        run_config=tune.RunConfig(name="bare", storage_path=storage, verbose=0, log_to_file=False,
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  callbacks=[Stamp()]),
    )
    results = tuner.fit()
    wall = time.perf_counter() - start
    shutil.rmtree(storage, ignore_errors=True)
    errors = sum(1 for r in results if r.error is not None)
    if len(results) != trials or errors:
        raise RuntimeError(f"bare Tune: {len(results)} trials, {errors} errors")
    return {"wall_s": wall, "evaluations": len(results), **phases(start, completions)}


def phases(start: float, completions: list[float]) -> dict[str, float]:
    """Startup (to the first finished trial: actors, worker imports) and the steady per-trial
    time after it (first to last finished trial, per trial), and the tail after the last."""
    if len(completions) < 2:
        return {}
    return {
        "first_complete_s": completions[0] - start,
        "steady_ms_per_trial": 1000 * (completions[-1] - completions[0]) / (len(completions) - 1),
    }


# The archive alone.


def archive_micro(n: int, folder: Path) -> dict[str, Any]:
    """The driver's archive calls for n one-member candidates, in the driver's order."""
    from autorec.agents import load_proposer
    from autorec.archive import Archive
    from autorec.space import SpaceOptions, load_space

    space = load_space(SPACE, SpaceOptions(dataset="none"))
    proposer = load_proposer("random", space, 0)
    member = space.suite()[0]
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "micro.db"
    archive = Archive(db)
    run = archive.create_run(SPACE, "random", config={}, seed=0)
    reference = archive.add_candidate(run.id, {"x": 0.5}, operator="reference", generation=0)
    archive.set_reference_candidate(run.id, reference.id)
    ref_eval = archive.add_evaluations(reference.id, [member])[0]
    archive.start_evaluation(ref_eval.id, trial_id="t0")
    archive.finish_evaluation(ref_eval.id, "done", metrics={"score": 1.0})
    archive.set_candidate_result(reference.id, "done", 0.0, {"score": 1.0})
    per_eval: list[float] = []
    steps: list[dict[str, float]] = []

    from autorec.agents.base import CandidateResult, ProposalContext

    for i in range(n):
        # The proposer's own state grows as a real one's does (one Optuna trial per candidate).
        params = proposer.propose(ProposalContext(space, run.id, [], None, 0), 1)[0].params
        times: dict[str, float] = defaultdict(float)

        def step(name, fn, *args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            times[name] += time.perf_counter() - t
            return out

        # next_trial -> _propose: context, admit, proposer state; then start the evaluation.
        step("candidates", archive.candidates, run.id)
        c = step("add_candidate", archive.add_candidate, run.id, params, operator="random")
        e = step("add_evaluations", archive.add_evaluations, c.id, [member])[0]
        step("save_proposer_state", archive.save_proposer_state, run.id, proposer.state_dict())
        step("start_evaluation", archive.start_evaluation, e.id, trial_id=f"t{i}")
        step("get_candidate", archive.get_candidate, c.id)
        # complete -> finish, settle (own and reference's evaluations), record, proposer state.
        step("finish_evaluation", archive.finish_evaluation, e.id, "done", metrics={"score": 1.0},
             node="host")
        step("evaluations_for", archive.evaluations_for, c.id)
        step("evaluations_for", archive.evaluations_for, reference.id)
        step("set_candidate_result", archive.set_candidate_result, c.id, "done", 0.0,
             {"score": 1.0})
        proposer.observe(CandidateResult(c.id, params, "done", 0.0, {"score": 1.0}, "random"))
        step("save_proposer_state", archive.save_proposer_state, run.id, proposer.state_dict())
        per_eval.append(sum(times.values()))
        steps.append(dict(times))
    size = len(json.dumps(proposer.state_dict()))
    archive.close()

    def median_ms(values):
        return 1000 * statistics.median(values) if values else None

    k = min(50, n)
    return {
        "n": n,
        "median_ms_per_eval": median_ms(per_eval),
        "median_ms_first_50": median_ms(per_eval[:k]),
        "median_ms_last_50": median_ms(per_eval[-k:]),
        "mean_ms_per_eval": 1000 * statistics.fmean(per_eval),
        "proposer_state_bytes_at_end": size,
        "mean_ms_first_50": 1000 * statistics.fmean(per_eval[:k]),
        "mean_ms_last_50": 1000 * statistics.fmean(per_eval[-k:]),
        # Per step, ms per evaluation over the first and the last 50 candidates:
        # [median first, median last, mean first, mean last].
        "by_step_first_last_50_ms": {
            name: [median_ms([t[name] for t in steps[:k]]),
                   median_ms([t[name] for t in steps[-k:]]),
                   1000 * statistics.fmean(t[name] for t in steps[:k]),
                   1000 * statistics.fmean(t[name] for t in steps[-k:])]
            for name in steps[0]
        },
    }


def store_fix():
    """Emulate the suggested store.py fix: never load Run.proposer_state just to check that a run
    exists or to replace the state (Archive._get defers that column for Run rows)."""
    from sqlalchemy.orm import defer

    from autorec.archive import store
    from autorec.archive.errors import NotFoundError
    from autorec.archive.tables import Run

    original = store.Archive._get

    def _get(self, s, table, key, kind):
        options = [defer(Run.proposer_state)] if table is Run else []
        row = s.get(table, key, options=options)
        if row is None:
            raise NotFoundError(kind, key, self.location)
        return row

    store.Archive._get = _get
    return lambda: setattr(store.Archive, "_get", original)


def import_seconds(module: str, repeats: int = 3) -> float:
    """Median time of `import module` in a fresh interpreter (what a new Ray worker pays)."""
    times = []
    for _ in range(repeats):
        code = (f"import time; t = time.perf_counter(); import {module}; "
                "print(time.perf_counter() - t)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work-ms", type=float, nargs="+", default=[0.0, 50.0])
    parser.add_argument("--work", choices=["sleep", "spin"], default="sleep")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--micro", type=int, default=0, help="archive-only sequences (0: skip)")
    parser.add_argument("--micro-store-fix", action="store_true",
                        help="run the archive-only sequences again with the store fix emulated")
    parser.add_argument("--profile", action="store_true", help="cProfile one autorec search")
    parser.add_argument("--fixes", action="store_true",
                        help="also run autorec with the suggested driver and worker fixes emulated")
    parser.add_argument("--bare-searcher", action="store_true",
                        help="also run bare Tune with a minimal Searcher (autorec's path in Tune)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "engine_overhead.json")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    import ray
    import ray.cloudpickle

    import trivial_space
    from autorec.engine.tune_bridge import start_ray

    # Ship the bare trainable's work function by value: a bare Tune worker imports neither
    # autorec nor this folder.
    ray.cloudpickle.register_pickle_by_value(trivial_space)

    folder = Path(tempfile.mkdtemp(prefix="arb-overhead-"))
    max_workers = max(args.workers)
    t = time.perf_counter()
    start_ray(None, cpus=max(max_workers, os.cpu_count() or 1))
    ray_start_s = time.perf_counter() - t
    report: dict[str, Any] = {
        "benchmark": "engine_overhead",
        "argv": sys.argv,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "load_at_start": load_average()},
        "ray_start_s": ray_start_s,
        "configs": [],
    }
    print(f"Ray started in {ray_start_s:.1f} s; load average {load_average()}", flush=True)

    sides = ["autorec", "bare"] + (["autorec+fixes"] if args.fixes else []) + (
        ["bare+searcher"] if args.bare_searcher else [])

    def run_side(side: str, trials: int, workers: int, settings: dict, seed: int) -> dict:
        if side.startswith("bare"):
            return bare_run(trials, workers, settings, folder, searcher=side != "bare")
        return autorec_run(trials, workers, settings, folder, seed, patched=side != "autorec")

    if not args.no_warmup and args.reps:
        for side in sides:
            run_side(side, min(args.trials, 10), max_workers, {"work": args.work, "work_ms": 0}, 99)
        print("warm-up done", flush=True)

    for workers in args.workers if args.reps else []:
        for work_ms in args.work_ms:
            settings = {"work": args.work, "work_ms": work_ms}
            runs: dict[str, list[dict]] = {side: [] for side in sides}
            loads = []
            for rep in range(args.reps):
                # Rotate who goes first, so no side always follows the same neighbour.
                order = sides[rep % len(sides):] + sides[:rep % len(sides)]
                for side in order:
                    result = run_side(side, args.trials, workers, settings, seed=rep)
                    result["rep"] = rep
                    runs[side].append(result)
                    loads.append(load_average()[0])
                    print(f"  workers={workers} work={work_ms:g}ms rep={rep} {side:13s} "
                          f"{result['wall_s']:.2f} s", flush=True)
            report["configs"].append(
                summarise(runs, workers, args.work, work_ms, args.trials, loads))

    if args.micro:
        report["archive_micro"] = archive_micro(args.micro, folder / "as-is")
        if args.micro_store_fix:
            undo = store_fix()
            try:
                report["archive_micro_store_fix"] = archive_micro(args.micro, folder / "fixed")
            finally:
                undo()
    report["import_s"] = {m: import_seconds(m) for m in
                          ("torch", "autorec.space", "autorec.engine.worker", "ray.tune",
                           "ray.tune, autorec.engine.worker")}

    if args.profile:
        profile = cProfile.Profile()
        autorec_run(args.trials, 1, {"work": args.work, "work_ms": 0}, folder, seed=123,
                    profile=profile)
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        profile_path = args.out.with_name(args.out.stem + "_profile.txt")
        profile_path.parent.mkdir(parents=True, exist_ok=True)
        profile_path.write_text(text.getvalue())
        report["profile"] = str(profile_path)
    report["machine"]["load_at_end"] = load_average()
    shutil.rmtree(folder, ignore_errors=True)

    print_tables(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    ray.shutdown()


def summarise(runs: dict[str, list[dict]], workers: int, work: str, work_ms: float, trials: int,
              loads: list[float]) -> dict[str, Any]:
    def median(side, key):
        values = [r[key] for r in runs[side] if key in r]
        return statistics.median(values) if values else None

    bare = [r["wall_s"] for r in runs["bare"]]
    sides = {}
    for side, results in runs.items():
        walls = [r["wall_s"] for r in results]
        entry = {
            "wall_s": walls,
            "median_s": statistics.median(walls),
            "first_complete_s": median(side, "first_complete_s"),
            "steady_ms_per_trial": median(side, "steady_ms_per_trial"),
        }
        if side != "bare":
            entry.update(
                ratio_of_medians=statistics.median(walls) / statistics.median(bare),
                median_paired_ratio=statistics.median(x / y for x, y in zip(walls, bare)),
                extra_ms_per_trial=1000 * (statistics.median(walls) - statistics.median(bare))
                / trials,
            )
        if side.startswith("autorec"):
            entry.update(
                **{key: median(side, key) for key in (
                    "archive_ms_per_eval", "driver_ms_per_eval", "proposer_ms_per_eval",
                    "archive_calls_per_eval", "archive_setup_ms", "first_eval_s", "eval_s_median")},
            )
            calls = defaultdict(list)
            for r in results:
                for name, ms in r["by_call_ms_per_eval"].items():
                    calls[name].append(ms)
            entry["by_call_ms_per_eval"] = {k: statistics.median(v) for k, v in calls.items()}
        sides[side] = entry
    return {"workers": workers, "work": work, "work_ms": work_ms, "trials": trials,
            "sides": sides, "load_1min": loads, "runs": runs}


def print_tables(report: dict[str, Any]) -> None:
    if report["configs"]:
        print_comparison(report)
    for c in report["configs"][:1]:
        print(f"\nautorec, workers={c['workers']}, work={c['work_ms']:g} ms: ms per evaluation "
              "by call (median of reps; loop.* = archive calls inside next_trial/complete)")
        calls = c["sides"]["autorec"]["by_call_ms_per_eval"]
        for name, ms in sorted(calls.items(), key=lambda kv: -kv[1]):
            if ms >= 0.01:
                print(f"  {name:32s} {ms:.3f}")
    for key, label in (("archive_micro", "as is"),
                       ("archive_micro_store_fix", "store fix emulated")):
        micro = report.get(key)
        if not micro:
            continue
        print(f"\nArchive alone, {label} ({micro['n']} one-member candidates, file SQLite): "
              f"median {micro['median_ms_per_eval']:.2f} ms/eval; proposer state at the end: "
              f"{micro['proposer_state_bytes_at_end'] / 1024:.0f} KiB")
        last = f"{micro['n'] - 49}-{micro['n']}"
        print(f"\n| archive call (per evaluation) | median ms, candidates 1-50 | median ms, {last} "
              f"| mean ms, 1-50 | mean ms, {last} |")
        print("|---|---|---|---|---|")
        for name, (a, b, c, d) in micro["by_step_first_last_50_ms"].items():
            print(f"| {name} | {a:.2f} | {b:.2f} | {c:.2f} | {d:.2f} |")
        print(f"| total | {micro['median_ms_first_50']:.2f} | {micro['median_ms_last_50']:.2f} "
              f"| {micro['mean_ms_first_50']:.2f} | {micro['mean_ms_last_50']:.2f} |")
    print("\nimport in a fresh interpreter: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in report["import_s"].items()))


def print_comparison(report: dict[str, Any]) -> None:
    print("\n| workers | work | side | median wall s | ratio to bare (of medians) "
          "| median paired ratio | extra ms/trial | first trial done s | steady ms/trial |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in report["configs"]:
        for side, e in c["sides"].items():
            ratio = "" if side == "bare" else f"{e['ratio_of_medians']:.2f}"
            paired = "" if side == "bare" else f"{e['median_paired_ratio']:.2f}"
            extra = "" if side == "bare" else f"{e['extra_ms_per_trial']:.0f}"
            print(f"| {c['workers']} | {c['work_ms']:g} ms {c['work']} | {side} "
                  f"| {e['median_s']:.2f} | {ratio} | {paired} | {extra} "
                  f"| {e['first_complete_s']:.2f} | {e['steady_ms_per_trial']:.1f} |")
    print("\n| workers | work | side | archive ms/eval (driver loop) | archive calls/eval "
          "| driver ms/eval (next_trial+complete) | proposer ms/eval | archive setup ms/run "
          "| first evaluation s | median evaluation s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in report["configs"]:
        for side, e in c["sides"].items():
            if not side.startswith("autorec"):
                continue
            print(f"| {c['workers']} | {c['work_ms']:g} ms {c['work']} | {side} "
                  f"| {e['archive_ms_per_eval']:.2f} | {e['archive_calls_per_eval']:.1f} "
                  f"| {e['driver_ms_per_eval']:.2f} | {e['proposer_ms_per_eval']:.2f} "
                  f"| {e['archive_setup_ms']:.0f} | {e['first_eval_s']:.2f} "
                  f"| {e['eval_s_median']:.3f} |")


if __name__ == "__main__":
    main()
