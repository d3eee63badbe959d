"""Parallel evaluation: `--workers 2` against `--workers 1` on single-thread trials (threads=1).

    python benchmarks/parallelism.py --spaces torch embedding_dims --evals 12 --reps 2 \\
        --out benchmarks/results/parallelism.json

Two workloads, each searched with proposer `random` (same seed, so both worker counts evaluate
the same candidates in the same order), budget `--evals` evaluations:

- `torch`: benchmarks/trivial_space.py with work=torch: a fixed number of single-threaded
  512 x 512 float32 matrix products, calibrated once at start to take about `--torch-seconds`
  on this machine. Pure compute: the cleanest view of what two workers buy.
- `embedding_dims`: the built-in space on dataset `synthetic`, suite fm + deepfm, 2 epochs,
  lr 0.01, threads 1: real training, data generated in each worker process.

For each workload and rep, both worker counts run back to back (the order alternates). Reported
per run: wall time of `run_search` and its throughput (evaluations / wall); the steady
throughput between the first and the last finished evaluation (without Ray's actor start, the
worker's imports and the data load, which a longer search amortises); how many evaluations were
in flight on average (their start-to-finish seconds summed over the span, from the archive's
timestamps); the mean seconds of the work itself inside an evaluation (`work_seconds` or
`train_seconds`: longer under contention); and the machine's load while it ran: the 1-minute
load average sampled every second, and the share of all CPU time that was busy (from
/proc/stat), which includes other people's jobs.

A control runs first: the same torch work in 1 and in 2 plain processes at once (no Ray, no
autorec), which says what the machine itself gives two single-thread jobs at that moment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRIVIAL = f"{HERE / 'trivial_space.py'}:TrivialSpace"
TORCH_N = 512

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
if "AUTOREC_RAY_TMPDIR" not in os.environ:
    os.environ["AUTOREC_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="arb-", dir="/tmp")


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class LoadSampler:
    """Samples the 1-minute load average every second while a run goes on."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(1.0)

    def __enter__(self) -> "LoadSampler":
        self._cpu = cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        busy, total = cpu_times()
        self.cpu_busy = (busy - self._cpu[0]) / max(total - self._cpu[1], 1e-9)


def calibrate_torch(seconds: float) -> int:
    """How many 512 x 512 products take about `seconds` on one thread here (now)."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.rand(TORCH_N, TORCH_N), torch.rand(TORCH_N, TORCH_N)
    for _ in range(5):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(3):  # the least disturbed of three samples
        start = time.perf_counter()
        for _ in range(20):
            a = torch.mm(a, b)
            a = a / a.abs().max()
        best = min(best, (time.perf_counter() - start) / 20)
    return max(1, round(seconds / best))


def _control_worker(torch_reps: int, queue) -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from trivial_space import do_work

    do_work({"work": "torch", "torch_n": TORCH_N, "torch_reps": 5})  # warm
    queue.put(do_work({"work": "torch", "torch_n": TORCH_N, "torch_reps": torch_reps}))


def control(torch_reps: int, counts: list[int], reps: int) -> dict[str, Any]:
    """The machine's own ceiling: the torch work in `n` plain processes at once, no Ray, no
    autorec. Throughput = n / (time until all are done), from the work's own timings."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out: dict[str, list[dict]] = {str(n): [] for n in counts}
    for rep in range(reps):
        for n in counts if rep % 2 == 0 else counts[::-1]:
            queue = ctx.Queue()
            procs = [ctx.Process(target=_control_worker, args=(torch_reps, queue))
                     for _ in range(n)]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            work = [queue.get() for _ in range(n)]
            out[str(n)].append({"work_s": work, "per_min": 60 * n / max(work),
                                "load": round(os.getloadavg()[0], 2)})
    few, many = (str(n) for n in counts)
    med = {n: statistics.median(r["per_min"] for r in rs) for n, rs in out.items()}
    return {"runs": out, "per_min_median": med, "ratio": med[many] / med[few],
            "work_s_median": {n: statistics.median(max(r["work_s"]) for r in rs)
                              for n, rs in out.items()}}


def workload(name: str, torch_reps: int) -> dict[str, Any]:
    if name == "torch":
        return {"space": TRIVIAL, "dataset": "none", "work_key": "work_seconds",
                "settings": {"work": "torch", "torch_n": TORCH_N, "torch_reps": torch_reps}}
    if name == "embedding_dims":
        return {"space": "embedding_dims", "dataset": "synthetic", "work_key": "train_seconds",
                "settings": {"models": ["fm", "deepfm"], "epochs": 2, "lr": 0.01, "threads": 1}}
    raise SystemExit(f"unknown workload {name}")


def run_once(spec: dict[str, Any], workers: int, evals: int, folder: Path, seed: int) -> dict:
    from autorec.archive import Archive
    from autorec.engine import run_search
    from autorec.search_config import SearchConfig

    db = folder / f"parallel-{time.time_ns()}.db"
    archive = Archive(db)
    config = SearchConfig(space=spec["space"], dataset=spec["dataset"],
                          space_settings=spec["settings"], proposer="random", budget=evals,
                          workers=workers, threads=1, seed=seed)
    completions: list[float] = []

    def on_progress(driver) -> None:
        completions.append(time.perf_counter())

    load_before = os.getloadavg()[0]
    with LoadSampler() as load:
        start = time.perf_counter()
        outcome = run_search(config, archive, on_progress=on_progress)
        wall = time.perf_counter() - start
    evaluations = [e for c in archive.candidates(outcome.run_id)
                   for e in archive.evaluations_for(c.id) if e.status == "done"]
    archive.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if len(evaluations) != evals:
        raise RuntimeError(f"{len(evaluations)} evaluations done, not {evals}: {outcome}")
    work = [e.metrics[spec["work_key"]] for e in evaluations]
    # How many evaluations were in flight on average, start to finish (archive timestamps).
    span = (max(e.finished_at for e in evaluations)
            - min(e.started_at for e in evaluations)).total_seconds()
    in_flight = sum(e.seconds for e in evaluations) / span
    steady = None
    if len(completions) >= 3:
        steady = (len(completions) - 1) / (completions[-1] - completions[0])
    return {
        "workers": workers, "wall_s": wall, "throughput_per_min": 60 * evals / wall,
        "steady_throughput_per_min": 60 * steady if steady else None,
        "first_done_s": completions[0] - start if completions else None,
        "work_s_mean": statistics.fmean(work), "work_s_sum": sum(work),
        "eval_s_mean": statistics.fmean(e.seconds for e in evaluations),
        "in_flight_mean": in_flight,
        "load_before": round(load_before, 2),
        "load_during_mean": round(statistics.fmean(load.samples), 2),
        "load_during_max": round(max(load.samples), 2),
        "cpu_busy_share": round(load.cpu_busy, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", nargs="+", default=["torch", "embedding_dims"],
                        choices=["torch", "embedding_dims"])
    parser.add_argument("--evals", type=int, default=12)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs=2, default=[1, 2], metavar=("FEW", "MANY"))
    parser.add_argument("--torch-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-control", action="store_true",
                        help="skip the plain-process control run of the torch work")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "parallelism.json")
    args = parser.parse_args()

    import ray

    from autorec.engine.tune_bridge import start_ray

    folder = Path(tempfile.mkdtemp(prefix="arb-parallel-"))
    torch_reps = calibrate_torch(args.torch_seconds) if "torch" in args.spaces else 0
    start_ray(None, cpus=max(max(args.workers), os.cpu_count() or 1))
    report: dict[str, Any] = {
        "benchmark": "parallelism", "argv": sys.argv,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__,
                    "load_at_start": [round(x, 2) for x in os.getloadavg()]},
        "torch_reps": torch_reps, "workloads": [],
    }
    print(f"torch workload: {torch_reps} products of {TORCH_N}x{TORCH_N} "
          f"(~{args.torch_seconds:g} s calibrated); load {os.getloadavg()[0]:.2f}", flush=True)
    if torch_reps and not args.no_control:
        report["control"] = control(torch_reps, args.workers, args.reps)
        c = report["control"]
        print(f"  control, plain processes without Ray: {c['per_min_median']} per min, "
              f"ratio {c['ratio']:.2f}, work s {c['work_s_median']}", flush=True)
    for name in args.spaces:
        spec = workload(name, torch_reps)
        runs: dict[int, list[dict]] = {w: [] for w in args.workers}
        for rep in range(args.reps):
            order = args.workers if rep % 2 == 0 else args.workers[::-1]
            for workers in order:
                result = run_once(spec, workers, args.evals, folder, args.seed)
                result["rep"] = rep
                runs[workers].append(result)
                print(f"  {name} workers={workers} rep={rep}: {result['wall_s']:.1f} s, "
                      f"{result['throughput_per_min']:.1f}/min (steady "
                      f"{result['steady_throughput_per_min']:.1f}/min), in flight "
                      f"{result['in_flight_mean']:.2f}, work "
                      f"{result['work_s_mean']:.2f} s/eval, load {result['load_during_mean']}, "
                      f"cpu busy {result['cpu_busy_share']:.0%}", flush=True)
        few, many = args.workers
        entry = {"workload": name, "settings": spec["settings"], "evals": args.evals,
                 "runs": {str(k): v for k, v in runs.items()}}
        for key in ("throughput_per_min", "steady_throughput_per_min"):
            a = [r[key] for r in runs[few]]
            b = [r[key] for r in runs[many]]
            entry[f"{key}_median"] = {str(few): statistics.median(a),
                                      str(many): statistics.median(b)}
            entry[f"{key}_ratio_of_medians"] = statistics.median(b) / statistics.median(a)
            entry[f"{key}_paired_ratios"] = [y / x for x, y in zip(a, b)]
        for key in ("wall_s", "work_s_mean", "in_flight_mean", "load_during_mean",
                    "cpu_busy_share"):
            entry[f"{key}_median"] = {str(w): statistics.median(r[key] for r in runs[w])
                                      for w in args.workers}
        report["workloads"].append(entry)
    report["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    shutil.rmtree(folder, ignore_errors=True)
    print_table(report, args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    ray.shutdown()


def print_table(report: dict[str, Any], workers: list[int]) -> None:
    few, many = (str(w) for w in workers)
    c = report.get("control")
    if c:
        print(f"\nControl (torch work in {few} / {many} plain processes, no Ray): "
              f"{c['per_min_median'][few]:.1f} / {c['per_min_median'][many]:.1f} per min, "
              f"ratio {c['ratio']:.2f}; work s each {c['work_s_median'][few]:.2f} / "
              f"{c['work_s_median'][many]:.2f}")
    print(f"\n| workload | evals | wall s ({few} / {many}) | throughput /min ({few} / {many}) "
          f"| ratio | steady /min ({few} / {many}) | steady ratio | in flight ({few} / {many}) "
          f"| work s/eval ({few} / {many}) "
          f"| load avg during ({few} / {many}) | CPU busy ({few} / {many}) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in report["workloads"]:
        t, s = w["throughput_per_min_median"], w["steady_throughput_per_min_median"]
        print(f"| {w['workload']} | {w['evals']} "
              f"| {w['wall_s_median'][few]:.1f} / {w['wall_s_median'][many]:.1f} "
              f"| {t[few]:.1f} / {t[many]:.1f} | {w['throughput_per_min_ratio_of_medians']:.2f} "
              f"| {s[few]:.1f} / {s[many]:.1f} "
              f"| {w['steady_throughput_per_min_ratio_of_medians']:.2f} "
              f"| {w['in_flight_mean_median'][few]:.2f} / {w['in_flight_mean_median'][many]:.2f} "
              f"| {w['work_s_mean_median'][few]:.2f} / {w['work_s_mean_median'][many]:.2f} "
              f"| {w['load_during_mean_median'][few]:.1f} / "
              f"{w['load_during_mean_median'][many]:.1f} "
              f"| {w['cpu_busy_share_median'][few]:.0%} / {w['cpu_busy_share_median'][many]:.0%} |")


if __name__ == "__main__":
    main()
