"""Agent vs TPE vs random vs best-of-n: best-so-far fitness after 10/25/50 evaluations.

One search per invocation, its result written at once to
benchmarks/results/agent_<task>_<proposer>_s<seed>.json (so a cut-off run still leaves data):

    python benchmarks/agent_vs_baselines.py run --task synthetic --proposer agent --seed 0 --evals 25
    python benchmarks/agent_vs_baselines.py time --task ml-100k     # seconds of one evaluation
    python benchmarks/agent_vs_baselines.py summary                 # tables + agent_summary.json

Tasks (cut to what a busy 2-core machine affords):

- `synthetic`: space `embedding_dims` on dataset `synthetic` with the settings of
  benchmarks/tpe_vs_random.py (FM only, 2 epochs, lr 0.01, one thread); the planted optimum is
  known (`tpe_vs_random.planted`, `closeness`).
- `ml-100k`: space `architecture` on ML-100K CTR, models fm and deepfm, max_epochs 2, one thread.

Every search runs with workers=1 and threads=1. For `agent` (portfolio of llm + tpe + mutate
under a UCB bandit) and `best-of-n` the LLM is the local SmolLM2-135M on CPU. Per run it records
the best-so-far curve (Archive.best_so_far: invalid and duplicate proposals are left out, they
cost no evaluation), the candidates' statuses and operators, the portfolio's own shares/stats, and
every LLM call's tokens and latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
if "AUTOREC_RAY_TMPDIR" not in os.environ:
    os.environ["AUTOREC_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="arg-", dir="/tmp")

import tpe_vs_random as tvr  # noqa: E402  (the other benchmark's helpers, reused)

TASKS: dict[str, dict[str, Any]] = {
    "synthetic": {"space": "embedding_dims", "dataset": "synthetic",
                  "settings": dict(tvr.DEFAULT_SETTINGS)},
    "ml-100k": {"space": "architecture", "dataset": "ml-100k",
                "settings": {"models": ["fm", "deepfm"], "max_epochs": 2, "threads": 1}},
}
CHECKPOINTS = [10, 25, 50]
LLM_PROPOSERS = ("agent", "best-of-n")


def result_path(task: str, proposer: str, seed: int) -> Path:
    return RESULTS / f"agent_{task}_{proposer}_s{seed}.json"


def llm_calls(db: Path, run_id: int) -> list[dict[str, Any]]:
    from autorec.archive.tables import LLMCall

    with sqlite3.connect(db) as con:
        rows = con.execute(
            f"select candidate_id, tokens_in, tokens_out, latency_s, error "
            f"from {LLMCall.__tablename__} where run_id = ? order by id", (run_id,)).fetchall()
    return [{"candidate_id": c, "tokens_in": ti, "tokens_out": to, "latency_s": lat,
             "error": err} for c, ti, to, lat, err in rows]


def run_one(task: str, proposer_name: str, seed: int, evals: int,
            options: dict[str, Any]) -> dict[str, Any]:
    from autorec.agents import load_proposer
    from autorec.archive import Archive
    from autorec.engine import run_search
    from autorec.engine.tune_bridge import start_ray
    from autorec.search_config import SearchConfig
    from autorec.space import SpaceOptions, load_space

    spec = TASKS[task]
    folder = Path(tempfile.mkdtemp(prefix="arg-db-"))
    db = folder / "archive.db"
    archive = Archive(db)
    start_ray(None, cpus=os.cpu_count() or 1)
    config = SearchConfig(space=spec["space"], dataset=spec["dataset"],
                          space_settings=spec["settings"], proposer=proposer_name,
                          proposer_options=options, budget=evals, workers=1, threads=1,
                          seed=seed, run_name=f"{task}-{proposer_name}-s{seed}")
    space = load_space(config.space, SpaceOptions(dataset=config.dataset,
                                                  settings=config.space_settings))
    proposer = load_proposer(proposer_name, space, seed, **options)
    start = time.perf_counter()
    outcome = run_search(config, archive, proposer=proposer)
    wall = time.perf_counter() - start
    curve = archive.best_so_far(outcome.run_id)
    cands = archive.candidates(outcome.run_id)
    top = archive.top(outcome.run_id, n=1)
    statuses = Counter(str(getattr(c.status, "value", c.status)) for c in cands)
    evaluated = [c for c in cands if str(getattr(c.status, "value", c.status))
                 not in ("invalid", "duplicate", "screened")]
    result: dict[str, Any] = {
        "benchmark": "agent_vs_baselines", "task": task, "proposer": proposer_name,
        "seed": seed, "budget": evals, "options": options, "settings": spec["settings"],
        "space": spec["space"], "dataset": spec["dataset"], "workers": 1, "threads": 1,
        "wall_s": wall, "stop_reason": outcome.stop_reason,
        "evaluations": len(curve), "proposals": len(cands),
        "statuses": dict(statuses),
        "failed": sum(1 for row in curve if row.fitness is None),
        "best_so_far": [row.best for row in curve],
        "at": {str(k): curve[k - 1].best for k in CHECKPOINTS if k <= len(curve)},
        "operators_all": dict(Counter((c.operator or "?").split(":")[0].split("+")[0]
                                      for c in cands)),
        "operators_evaluated": dict(Counter((c.operator or "?").split(":")[0].split("+")[0]
                                            for c in evaluated)),
        "operators_detail": dict(Counter(c.operator or "?" for c in cands)),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    if top:
        best = top[0]
        result["best"] = {"candidate_id": best.id, "fitness": best.fitness,
                          "params": best.params, "operator": best.operator}
        if task == "synthetic":
            useful, noise = tvr.planted()
            result["best"].update(tvr.closeness(best.params, useful, noise))
    if hasattr(proposer, "shares"):
        result["portfolio_shares"] = proposer.shares()
        result["portfolio_stats"] = proposer.stats()
    llm = getattr(proposer, "ops", {}).get("llm", proposer)
    if hasattr(llm, "mode_stats"):
        result["llm_mode_stats"] = llm.mode_stats()
    if proposer_name in LLM_PROPOSERS:
        calls = llm_calls(db, outcome.run_id)
        result["llm_calls"] = calls
        result["llm"] = llm_summary(calls)
    archive.close()
    return result


def llm_summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    if not calls:
        return {"calls": 0}
    lat = [c["latency_s"] for c in calls]
    tin = [c["tokens_in"] for c in calls]
    tout = [c["tokens_out"] for c in calls]
    return {"calls": len(calls), "errors": sum(1 for c in calls if c["error"]),
            "latency_median_s": statistics.median(lat), "latency_min_s": min(lat),
            "latency_max_s": max(lat), "tokens_in_median": statistics.median(tin),
            "tokens_in_mean": statistics.fmean(tin), "tokens_out_median": statistics.median(tout),
            "tokens_in_total": sum(tin), "tokens_out_total": sum(tout),
            **per_proposal(calls)}


def per_proposal(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls grouped by the candidate they ended in (retries after a duplicate or invalid reply
    included): what one LLM proposal costs end to end."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for c in calls:
        groups.setdefault(c["candidate_id"], []).append(c)
    props = [g for cid, g in groups.items() if cid is not None]
    if not props:
        return {"proposals_with_calls": 0, "calls_without_candidate": len(groups.get(None, []))}
    return {
        "proposals_with_calls": len(props),
        "calls_without_candidate": len(groups.get(None, [])),
        "calls_per_proposal_mean": statistics.fmean(len(g) for g in props),
        "proposal_latency_median_s": statistics.median(sum(c["latency_s"] for c in g)
                                                       for g in props),
        "proposal_tokens_in_median": statistics.median(sum(c["tokens_in"] for c in g)
                                                       for g in props),
        "proposal_tokens_in_mean": statistics.fmean(sum(c["tokens_in"] for c in g)
                                                    for g in props),
    }


def time_one(task: str) -> dict[str, Any]:
    """Seconds of one evaluation of the space's reference (after a first, data-loading one)."""
    import torch

    from autorec.space import SpaceOptions, load_space

    torch.set_num_threads(1)
    spec = TASKS[task]
    space = load_space(spec["space"], SpaceOptions(dataset=spec["dataset"],
                                                   settings=spec["settings"]))
    member = space.suite()[0]
    ref = space.reference()
    t0 = time.perf_counter()
    metrics = space.evaluate(ref, member, lambda m: None)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    space.evaluate(ref, member, lambda m: None)
    second = time.perf_counter() - t0
    out = {"task": task, "first_s": first, "second_s": second, "metrics": metrics,
           "reference": ref.model_dump()}
    print(json.dumps(out, indent=1, default=str))
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def summary() -> dict[str, Any]:
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("agent_*_s*.json"))]
    out: dict[str, Any] = {"tasks": {}}
    for task in TASKS:
        mine = [r for r in runs if r["task"] == task]
        if not mine:
            continue
        t: dict[str, Any] = {}
        for prop in ("agent", "tpe", "random", "best-of-n"):
            rs = [r for r in mine if r["proposer"] == prop]
            if not rs:
                continue
            s: dict[str, Any] = {"seeds": sorted(r["seed"] for r in rs),
                                 "budget": sorted({r["budget"] for r in rs}), "at": {}}
            for k in CHECKPOINTS:
                vals = [r["at"][str(k)] for r in rs if str(k) in r["at"]]
                if vals:
                    s["at"][str(k)] = spread(vals)
            s["wall_s"] = spread([r["wall_s"] for r in rs])
            s["statuses"] = dict(sum((Counter(r["statuses"]) for r in rs), Counter()))
            s["operators_all"] = dict(sum((Counter(r["operators_all"]) for r in rs), Counter()))
            s["operators_evaluated"] = dict(sum((Counter(r["operators_evaluated"]) for r in rs),
                                                Counter()))
            calls = [c for r in rs for c in r.get("llm_calls", [])]
            if prop in LLM_PROPOSERS:
                s["llm"] = llm_summary(calls)
                s["llm_mode_stats"] = [r.get("llm_mode_stats") for r in rs]
                # Replies the LLM operator got back, summed over modes and runs: 'duplicates'
                # and 'invalid' are replies retried, 'fallbacks' proposals handed to mutation.
                replies: Counter = Counter()
                for r in rs:
                    for mode in (r.get("llm_mode_stats") or {}).values():
                        replies.update({k: v for k, v in mode.items() if k != "max_tokens_in"})
                s["llm_replies"] = dict(replies)
                s["operators_detail"] = dict(sum((Counter(r["operators_detail"]) for r in rs),
                                                 Counter()))
            if task == "synthetic":
                s["best_useful_mean_abs_octaves"] = spread(
                    [r["best"]["useful_mean_abs_octaves"] for r in rs if "best" in r])
            t[prop] = s
        out["tasks"][task] = t
    # The target: agent after 25 evaluations >= TPE after 50 (per task, on the means).
    target = {}
    for task, t in out["tasks"].items():
        a = t.get("agent", {}).get("at", {}).get("25")
        b = t.get("tpe", {}).get("at", {}).get("50")
        if a and b:
            target[task] = {"agent_at_25_mean": a["mean"], "tpe_at_50_mean": b["mean"],
                            "met_on_means": a["mean"] >= b["mean"], "agent_n": a["n"],
                            "tpe_n": b["n"]}
        else:
            target[task] = "not measurable (agent@25 or tpe@50 missing)"
    out["target"] = target
    out["paired"] = paired(runs)
    (RESULTS / "agent_summary.json").write_text(json.dumps(out, indent=2) + "\n")
    for task, t in out["tasks"].items():
        print(f"\n## {task}\n\n| proposer | seeds | after 10 | after 25 | after 50 |\n|---|---|---|---|---|")
        for prop, s in t.items():
            cells = []
            for k in CHECKPOINTS:
                a = s["at"].get(str(k))
                cells.append(f"{a['mean']:+.4f} ± {a['std']:.4f} [{a['min']:+.4f}, "
                             f"{a['max']:+.4f}] (n={a['n']})" if a else "—")
            print(f"| {prop} | {len(s['seeds'])} | " + " | ".join(cells) + " |")
        for prop, s in t.items():
            if "llm" in s:
                print(f"{prop}: statuses {s['statuses']}, operators {s['operators_all']} "
                      f"(evaluated {s['operators_evaluated']}), llm {s['llm']}, "
                      f"replies {s.get('llm_replies')}")
    print("\ntarget:", json.dumps(target, indent=1))
    print("paired (agent - tpe, per seed):", json.dumps(out["paired"], indent=1))
    return out


def paired(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task and checkpoint: agent@N - tpe@N on the seeds both ran, and agent@25 - tpe@50."""
    out: dict[str, Any] = {}
    for task in TASKS:
        by = {(r["proposer"], r["seed"]): r["at"] for r in runs if r["task"] == task}
        seeds = sorted(s for p, s in by if p == "agent" and ("tpe", s) in by)
        if not seeds:
            continue
        rows: dict[str, Any] = {}
        pairs = [(str(k), str(k)) for k in CHECKPOINTS] + [("25", "50")]
        for a_at, t_at in pairs:
            diffs = [by[("agent", s)][a_at] - by[("tpe", s)][t_at] for s in seeds
                     if a_at in by[("agent", s)] and t_at in by[("tpe", s)]]
            if diffs:
                rows[f"agent@{a_at} - tpe@{t_at}"] = {
                    "mean": statistics.fmean(diffs), "seeds": len(diffs),
                    "agent_not_worse": sum(d >= 0 for d in diffs)}
        out[task] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--task", choices=list(TASKS), required=True)
    r.add_argument("--proposer", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--evals", type=int, default=50)
    r.add_argument("--options", type=json.loads, default=None,
                   help="proposer_options JSON (default: {'llm': 'local'} for LLM proposers)")
    t = sub.add_parser("time")
    t.add_argument("--task", choices=list(TASKS), required=True)
    sub.add_parser("summary")
    args = parser.parse_args()
    if args.cmd == "time":
        time_one(args.task)
    elif args.cmd == "summary":
        summary()
    else:
        options = args.options
        if options is None:
            options = {"llm": "local"} if args.proposer in LLM_PROPOSERS else {}
        result = run_one(args.task, args.proposer, args.seed, args.evals, options)
        result["argv"] = sys.argv
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = result_path(args.task, args.proposer, args.seed)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        at = ", ".join(f"@{k} {v:+.4f}" for k, v in result["at"].items())
        print(f"{args.task} {args.proposer} seed {args.seed}: {at} ({result['wall_s']:.0f} s, "
              f"statuses {result['statuses']}, ops {result['operators_all']}, "
              f"llm {result.get('llm')}) -> {path}", flush=True)
        import ray

        ray.shutdown()


if __name__ == "__main__":
    main()
